"""Turning an `AskResult` into OpenAI response shapes: a completion or chunk events.

Where the final answer is written by one call that can stream (streaming.py), the events
carry its pieces as they are generated; otherwise (votes, a cached replay, stop
sequences) the answer exists whole before the first byte and is replayed in a few
chunks, which is honest about what it is: the same text, not token-by-token generation.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from signoria.orchestrator.result import AskResult, FinishReason
from signoria.orchestrator.server.schemas import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    CompletionUsage,
    FunctionCallOut,
    SignoriaTrace,
    ToolCallOut,
)

_PIECES = re.compile(r"\s*\S+\s*|\s+")
MAX_STREAM_CHUNKS = 8


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def apply_stops(text: str, stops: Sequence[str]) -> str:
    """Cut the answer at the earliest stop sequence, as an OpenAI server would.

    Pipelines do not take stop sequences, so they are applied to the final answer; the
    token counts in `usage` still report what the experts really generated.
    """
    cut = min((i for s in stops if (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


def usage_of(result: AskResult) -> CompletionUsage:
    """Real sums over every call of the request, aggregator calls included: that is what
    the request cost in tokens."""
    prompt = sum(c.tokens_in for c in result.calls)
    completion = sum(c.tokens_out for c in result.calls)
    return CompletionUsage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def finish_reason_of(answer: str, result: AskResult) -> FinishReason:
    """The answer's OpenAI finish reason: "tool_calls" when it calls the client's tools,
    "length" when the call that wrote it stopped at max_tokens, unless a stop sequence
    cut the answer before that end (then "stop", as OpenAI says for a stop sequence)."""
    full = result.aggregation.text if result.aggregation is not None else answer
    if len(answer) < len(full) and not result.tool_calls:
        return "stop"
    return result.finish_reason


def trace_of(result: AskResult) -> SignoriaTrace:
    return SignoriaTrace(
        pipeline=result.pipeline,
        cost=result.cost,
        latency_s=result.latency_s,
        calls=[c.model_dump(mode="json", exclude={"text"}) for c in result.calls],
        routing=None if result.routing is None else result.routing.model_dump(mode="json"),
        aggregation=(
            None if result.aggregation is None else result.aggregation.model_dump(mode="json")
        ),
        finish_reason=result.finish_reason,
        truncated=result.truncated,
        max_tokens_applied=result.max_tokens,
        max_tokens_requested=result.max_tokens_requested,
        cached_from=result.cached_from,
    )


def tool_calls_of(result: AskResult) -> list[ToolCallOut] | None:
    calls = [
        ToolCallOut(id=c.id, function=FunctionCallOut(name=c.name, arguments=c.arguments))
        for c in result.tool_calls
    ]
    return calls or None


def completion(completion_id: str, model: str, answer: str, result: AskResult) -> ChatCompletion:
    calls = tool_calls_of(result)
    return ChatCompletion(
        id=completion_id,
        created=int(time.time()),
        model=model,
        choices=[
            Choice(
                message=AssistantMessage(
                    content=None if calls and not answer else answer, tool_calls=calls
                ),
                finish_reason=finish_reason_of(answer, result),
            )
        ],
        usage=usage_of(result),
        signoria=trace_of(result),
    )


def split_answer(text: str, max_chunks: int = MAX_STREAM_CHUNKS) -> list[str]:
    """At most `max_chunks` pieces, cut at whitespace, that concatenate back to `text`."""
    words = _PIECES.findall(text)
    if not words:
        return [text] if text else []
    per_chunk = -(-len(words) // max_chunks)  # ceiling division
    return ["".join(words[i : i + per_chunk]) for i in range(0, len(words), per_chunk)]


def sse(chunk: ChatCompletionChunk) -> str:
    """One SSE event; `usage: null` mid-stream is what OpenAI sends, and the trace only
    rides the last chunk."""
    exclude = {"signoria"} if chunk.signoria is None else None
    return f"data: {chunk.model_dump_json(exclude=exclude)}\n\n"


def delta_event(completion_id: str, created: int, model: str, delta: dict[str, Any]) -> str:
    return sse(
        ChatCompletionChunk(
            id=completion_id, created=created, model=model, choices=[ChunkChoice(delta=delta)]
        )
    )


def final_event(
    completion_id: str,
    created: int,
    model: str,
    answer: str,
    result: AskResult,
    recorded: bool | None = None,
) -> str:
    """The last chunk: finish_reason, usage and the trace (`recorded: false` in it when a
    live stream's record could not be written)."""
    return sse(
        ChatCompletionChunk(
            id=completion_id,
            created=created,
            model=model,
            choices=[ChunkChoice(delta={}, finish_reason=finish_reason_of(answer, result))],
            usage=usage_of(result),
            signoria=trace_of(result).model_copy(update={"recorded": recorded}),
        )
    )


DONE = "data: [DONE]\n\n"


def chunk_events(completion_id: str, model: str, answer: str, result: AskResult) -> Iterator[str]:
    """The SSE lines of an answer that exists whole (a pipeline that cannot stream, a
    cached replay): role, content pieces, the final chunk, then `[DONE]`."""
    created = int(time.time())
    yield delta_event(completion_id, created, model, {"role": "assistant", "content": ""})
    for piece in split_answer(answer):
        yield delta_event(completion_id, created, model, {"content": piece})
    calls = tool_calls_of(result) or []
    if calls:  # each call whole, in one delta, as OpenAI's last tool-call chunk has it
        deltas = [{"index": i, **call.model_dump()} for i, call in enumerate(calls)]
        yield delta_event(completion_id, created, model, {"tool_calls": deltas})
    yield final_event(completion_id, created, model, answer, result)
    yield DONE
