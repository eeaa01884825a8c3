"""Deterministic experts for fault injection and red-teaming.

Not a stand-in for real models in tests of the real paths: it exists to make the failure
paths (hangs, provider errors, garbage, liars) reproducible.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import string
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from signoria.agents.pricing import call_cost
from signoria.agents.streaming import stream_for
from signoria.agents.types import (
    Availability,
    Completion,
    ExpertError,
    GenerationParams,
    Message,
    ModelCard,
    ToolCall,
    ToolUse,
    Usage,
)

Behaviour = Literal["answer", "hang", "error", "garbage", "echo"]

# A word with the whitespace before it: what one streamed piece of a scripted answer is.
_PIECES = re.compile(r"\s*\S+")


class ScriptedBehaviour(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    behaviour: Behaviour = "answer"
    answer: str = "42"
    # A conversation partner: the n-th answered call writes the n-th text (the last repeats),
    # e.g. a routing policy's turns. Empty: every call answers `answer`.
    sequence: tuple[str, ...] = ()
    latency_s: float = Field(default=0.0, ge=0.0)
    # Fail (retryably, like a provider 5xx) this many times before behaving.
    fail_first: int = Field(default=0, ge=0)
    error_message: str = "503 Service Unavailable"
    retryable: bool = True
    retry_after_s: float | None = Field(default=None, ge=0.0, description="sent with errors")
    # A lying provider: usage and cost reported whatever was produced (the answer itself
    # ignores max_tokens already, so a long `answer` is a provider that overruns).
    report_tokens_out: int | None = Field(
        default=None, ge=0, description="output tokens reported, whatever the text"
    )
    report_cost_usd: float | None = Field(
        default=None, ge=0.0, description="cost reported, whatever the usage"
    )

    # An honest provider: an answer longer than max_tokens (a word a token) is cut there
    # and says finish_reason "length", as a real model stopped by its limit does.
    stop_at_max_tokens: bool = False
    # Generation speed: this many seconds per word after `latency_s` (the time to the first
    # token); a streamed call sends each word as it is "written".
    token_latency_s: float = Field(default=0.0, ge=0.0)
    # A stream that breaks: after this many words were sent, the call fails (retryably).
    fail_after_words: int | None = Field(default=None, ge=0)
    # A slow load before the first answer (a local model reading its weights): taken once,
    # shared by concurrent callers, and going on when a waiting caller gives up.
    load_s: float = Field(default=0.0, ge=0.0)
    # The call it makes when offered a tool of this name (`{"name": .., "arguments": {..}}`);
    # without one it answers in text, and refuses a request that requires a call.
    tool_call: dict[str, Any] | None = None

    def availability(self) -> Availability:
        return Availability(available=True, detail=f"scripted: {self.behaviour}")


def _count(text: str) -> int:
    return max(1, len(text.split()))


def _words(messages: list[Message]) -> int:
    """One token a word, no framing: exact, so metering can cut a text to a word count."""
    return sum(len(m.content.split()) for m in messages)


class ScriptedExpert:
    def __init__(self, card: ModelCard, behaviour: ScriptedBehaviour) -> None:
        self._card = card
        self._behaviour = behaviour
        self.calls = 0
        self.answered = 0  # calls that got as far as writing their text
        self.loads = 0
        self._load: asyncio.Future[None] | None = None

    async def load(self, *, only_if_room: bool = False) -> bool:
        if self._behaviour.load_s:
            if self._load is None:
                self._load = asyncio.ensure_future(self._read_weights())
            await asyncio.shield(self._load)
        return True

    async def _read_weights(self) -> None:
        await asyncio.sleep(self._behaviour.load_s)
        self.loads += 1

    @property
    def card(self) -> ModelCard:
        return self._card

    async def count_tokens(self, messages: list[Message]) -> int:
        return _words(messages)

    async def generate(self, messages: list[Message], *, params: GenerationParams) -> Completion:
        b = self._behaviour
        self.calls += 1
        started = time.time()
        t0 = time.perf_counter()
        if b.latency_s:
            await asyncio.sleep(b.latency_s)
        if self.calls <= b.fail_first or b.behaviour == "error":
            raise ExpertError(
                f"{self._card.name}: {b.error_message}",
                retryable=b.retryable,
                retry_after_s=b.retry_after_s,
            )
        if b.behaviour == "hang":
            await asyncio.Event().wait()  # never set: only a timeout ends this call
        calls = self._tool_calls(params.tool_use)
        if calls:
            return self._completion(messages, "", t0, started, "tool_calls", calls)
        text, finish = self._text(messages, params), "stop"
        if b.stop_at_max_tokens and len(text.split()) > params.max_tokens:
            text, finish = " ".join(text.split()[: params.max_tokens]), "length"
        await self._write(text, params)
        return self._completion(messages, text, t0, started, finish)

    def _completion(
        self,
        messages: list[Message],
        text: str,
        t0: float,
        started: float,
        finish: str,
        tool_calls: tuple[ToolCall, ...] = (),
    ) -> Completion:
        b = self._behaviour
        tokens_out = _count(text) if b.report_tokens_out is None else b.report_tokens_out
        usage = Usage(tokens_in=_words(messages), tokens_out=tokens_out)
        cost = call_cost(self._card, usage.tokens_in, usage.tokens_out)
        return Completion(
            expert=self._card.name,
            text=text,
            usage=usage,
            cost=cost if b.report_cost_usd is None else b.report_cost_usd,
            latency_s=time.perf_counter() - t0,
            started_at=started,
            finish_reason=finish,
            tool_calls=tool_calls,
        )

    def _tool_calls(self, tool_use: ToolUse | None) -> tuple[ToolCall, ...]:
        """Its scripted call when the client offers that tool; a required call it cannot
        make is refused (as a provider refuses a malformed request: not retried)."""
        if tool_use is None or not tool_use.offers_tools:
            return ()
        offered = {f.get("name") for f in tool_use.functions()}
        script = self._behaviour.tool_call or {}
        forced = tool_use.forced_function()
        name = script.get("name")
        if name in offered and forced in (None, name):
            arguments = json.dumps(script.get("arguments", {}))
            call_id = f"call_{self._card.name}_{self.calls}"
            return (ToolCall(id=call_id, name=str(name), arguments=arguments),)
        if tool_use.requires_call:
            raise ExpertError(f"{self._card.name}: has no scripted call of the tool required")
        return ()

    async def _write(self, text: str, params: GenerationParams) -> None:
        """Take the generation time, word by word into the answer stream when there is one."""
        b = self._behaviour
        stream = stream_for(params)
        if stream is None:
            if b.token_latency_s:
                await asyncio.sleep(b.token_latency_s * len(text.split()))
            return
        for sent, piece in enumerate(_PIECES.findall(text)):
            if b.fail_after_words is not None and sent >= b.fail_after_words:
                raise ExpertError(f"{self._card.name}: stream broken", retryable=True)
            if b.token_latency_s:
                await asyncio.sleep(b.token_latency_s)
            stream.write(piece)

    def _text(self, messages: list[Message], params: GenerationParams) -> str:
        b = self._behaviour
        if b.behaviour == "garbage":
            rng = random.Random(params.seed)
            return "".join(rng.choice(string.printable) for _ in range(40))
        if b.behaviour == "echo":
            return messages[-1].content
        self.answered += 1
        if b.sequence:
            return b.sequence[min(self.answered, len(b.sequence)) - 1]
        return b.answer

    async def aclose(self) -> None:
        return None


def build_expert(card: ModelCard, options: ScriptedBehaviour, context: object) -> ScriptedExpert:
    return ScriptedExpert(card, options)
