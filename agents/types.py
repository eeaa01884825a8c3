"""Core value types shared by every expert backend.

They are pydantic models so that they serialise the same way into JSON output, storage and
the REST layer, and frozen where a value must not change once produced.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant", "tool"]


class ToolCall(BaseModel):
    """A function call an expert asked for; `arguments` is JSON text, as OpenAI sends it
    (a model may write JSON that does not parse: the client decides what to do then)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str
    arguments: str = "{}"

    def to_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


class Message(BaseModel):
    """One chat message, in the OpenAI shape every backend understands: an assistant turn
    may carry the tool calls it made, a `tool` turn answers one of them by id."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    def to_openai(self) -> dict[str, Any]:
        """The message as chat-completions APIs take it; tool fields only when set."""
        message: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [call.to_openai() for call in self.tool_calls]
        if self.tool_call_id is not None:
            message["tool_call_id"] = self.tool_call_id
        return message


ToolChoice = Literal["none", "auto", "required"] | dict[str, Any]


class ToolUse(BaseModel):
    """The client's tools and output format, in OpenAI's shapes (the server validated
    them): given only to the call that writes the final answer, never to the calls an
    ensemble makes on its way there."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None

    def openai_fields(self) -> dict[str, Any]:
        """The request fields an OpenAI-compatible provider takes as they are."""
        fields: dict[str, Any] = {
            "tools": list(self.tools) or None,
            "tool_choice": self.tool_choice,
            "parallel_tool_calls": self.parallel_tool_calls,
            "response_format": self.response_format,
        }
        return {name: value for name, value in fields.items() if value is not None}

    def forced_function(self) -> str | None:
        """The function the client requires by name (`tool_choice: {"function": ...}`)."""
        if isinstance(self.tool_choice, dict):
            name = self.tool_choice.get("function", {}).get("name")
            return str(name) if name else None
        return None

    def functions(self) -> list[dict[str, Any]]:
        """The offered functions' definitions (`name`, `parameters`, ...)."""
        return [t["function"] for t in self.tools if t.get("type", "function") == "function"]

    @property
    def offers_tools(self) -> bool:
        return bool(self.tools) and self.tool_choice != "none"

    @property
    def requires_call(self) -> bool:
        """The answer must be a call (`required`, or a named function), not text."""
        return self.offers_tools and (
            self.forced_function() is not None or self.tool_choice == "required"
        )


class GenerationParams(BaseModel):
    """Sampling parameters for one call. `seed` is what makes Self-MoA samples differ."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = None
    stop: tuple[str, ...] = ()
    tool_use: ToolUse | None = None


class ModelCard(BaseModel):
    """What Signoria knows about one model: an expert of the pool, or a model of a
    routing-outcome table's models file (which names no backend). One shape for both, so
    a router trained on a table and the pool that serves it describe a model alike.

    Prices are USD per 1M tokens. `None` means unknown and makes every cost derived from it
    unknown too: a made-up 0 would make an expensive model look free to routers and budgets.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    backend: str | None = Field(default=None, description="None: known only from a table")
    context_length: int = Field(default=2048, ge=128)
    input_price: float | None = Field(default=None, ge=0.0)
    output_price: float | None = Field(default=None, ge=0.0)
    description: str = ""
    skills: tuple[str, ...] = ()
    params_b: float | None = None

    @classmethod
    def from_entry(cls, name: str, entry: Mapping[str, Any]) -> ModelCard:
        """A card from a models-file entry (or an artifact's), which may carry keys of
        its own that a card does not hold: those are ignored, the rest validated."""
        known = {k: v for k, v in entry.items() if k in cls.model_fields and k != "name"}
        return cls.model_validate({**known, "name": name})


class Usage(BaseModel):
    model_config = ConfigDict(frozen=True)

    tokens_in: int = 0
    tokens_out: int = 0


class Completion(BaseModel):
    """The outcome of one expert call, successful or not.

    Backends return failures as values (`error` set) rather than raising when the failure is
    a property of the call (timeout, provider 5xx), so that a pipeline can keep the partial
    trace of every call it made.
    """

    model_config = ConfigDict(frozen=True)

    expert: str
    text: str = ""
    usage: Usage = Usage()
    cost: float | None = None
    latency_s: float = 0.0
    started_at: float = 0.0
    error: str | None = None
    finish_reason: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None


class Availability(BaseModel):
    """Whether a model can be called here and now, for `signoria models list`."""

    model_config = ConfigDict(frozen=True)

    available: bool
    size_bytes: int | None = None
    detail: str = ""


class ExpertError(Exception):
    """A backend failure. `retryable` tells the one retry loop whether trying again can help."""

    def __init__(
        self, message: str, *, retryable: bool = False, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        # The provider's Retry-After, in seconds: the retry loop waits at least this long.
        self.retry_after_s = retry_after_s


class ExpertMisconfigured(ExpertError):
    """The expert cannot be called as configured (an unset API key, a missing driver): the
    operator's setup is at fault, not the provider. Never retried, never counted against
    the provider's circuit breaker, and a command that fails only on these exits with 2
    like any other configuration error. The message names the cause and the fix."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


@runtime_checkable
class Expert(Protocol):
    """Anything that can answer chat messages: a local GGUF, an API model, a test double.

    `generate` raises `ExpertError` on failure; the orchestrator turns that into a
    `Completion` with `error` set. `count_tokens` lets budgets price a call before it is made.
    """

    @property
    def card(self) -> ModelCard: ...

    async def generate(
        self, messages: list[Message], *, params: GenerationParams
    ) -> Completion: ...

    async def count_tokens(self, messages: list[Message]) -> int: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Loadable(Protocol):
    """An expert whose first call would include a slow load (a local model reading its
    weights). Loading is not answering: the orchestrator gives it its own limit instead
    of the call's timeout, and `signoria serve` loads these at startup."""

    async def load(self, *, only_if_room: bool = False) -> bool:
        """Make the expert ready; True when it is. With `only_if_room`, do nothing (and
        return False) if loading would push out another loaded model."""
        ...
