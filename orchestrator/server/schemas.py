"""Request and response bodies of the OpenAI-compatible API, as pydantic models.

The request side is deliberately tolerant of fields OpenAI clients send by habit (they
are ignored) but strict about the ones that would change where or how a call is made:
credentials and backend addresses are rejected outright (the operator's config alone
decides those), and features this server cannot honour (tools, logprobs, ...) are
rejected rather than silently dropped.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Fields that would let a client point the server at another backend or key.
FORBIDDEN_FIELDS = (
    "api_base",
    "base_url",
    "api_key",
    "api_version",
    "custom_llm_provider",
    "backend",
)
# Fields whose meaning the server cannot honour; rejected when set to anything truthy.
UNSUPPORTED_FIELDS = (
    "tools",
    "tool_choice",
    "functions",
    "function_call",
    "parallel_tool_calls",
    "response_format",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "audio",
    "modalities",
    "prediction",
)


class TextPart(BaseModel):
    """One part of a multi-part message; only text parts are understood."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None
    name: str | None = Field(default=None, max_length=256)

    def text(self) -> str:
        """The content as one string: parts are joined with newlines, None is empty."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text for part in self.content)


class SignoriaOptions(BaseModel):
    """The `signoria` extension object: per-request limits that may only tighten the
    pipeline's own (see `signoria.orchestrator.limits.RequestLimits`)."""

    model_config = ConfigDict(extra="forbid")

    budget_usd: float | None = Field(default=None, ge=0.0, description="USD cap")
    max_experts: int | None = Field(default=None, ge=1, description="expert calls")
    deadline_s: float | None = Field(default=None, gt=0, description="wall-clock seconds")


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """POST /v1/chat/completions. `temperature` and `seed` steer raw expert ids; a named
    pipeline keeps its configured sampling. `stop` is applied to the final answer."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=256)
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1)
    user: str | None = Field(default=None, max_length=256)
    seed: int | None = None
    stop: str | list[str] | None = None
    signoria: SignoriaOptions | None = None

    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        items = [self.stop] if isinstance(self.stop, str) else self.stop
        return tuple(s for s in items if s)


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length"] = "stop"
    logprobs: None = None


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class SignoriaTrace(BaseModel):
    """How the answer was made: every expert call (tokens, latency, cost, error), the
    routing decision and the aggregation. `cost` is null when any price is unknown."""

    pipeline: str
    cost: float | None
    latency_s: float
    calls: list[dict[str, Any]]
    routing: dict[str, Any] | None
    aggregation: dict[str, Any] | None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage
    signoria: SignoriaTrace


class ChunkChoice(BaseModel):
    index: int = 0
    delta: dict[str, str]
    finish_reason: Literal["stop"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One `data:` event of a streamed completion; the last carries usage and trace."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = None
    signoria: SignoriaTrace | None = None


class ModelInfo(BaseModel):
    kind: Literal["pipeline", "expert"]
    description: str = ""


class ModelObject(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "signoria"
    signoria: ModelInfo


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelObject]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail
