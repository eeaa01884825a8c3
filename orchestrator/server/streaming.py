"""`stream: true` as the answer is written: the final call's pieces reach the client as
they are generated (agents/streaming.py says which call that is).

The request runs as a task with an `AnswerStream`. The response starts with the first
piece; until then nothing is sent, so a request that fails before its first token is a
proper HTTP error (401, 402, 503, ...) exactly as without streaming, and a pipeline whose
answer cannot stream (a vote, a cached replay) is replayed whole when it is done. After
the last piece comes the final chunk with finish_reason, usage and the whole trace. A
failure after the first piece can no longer change the status: the stream ends with an
OpenAI-style error event (`data: {"error": {...}}`, which the official SDK raises), and
the request is recorded as failed like any other. The headers leave with the first
piece, before the record is written, so a failed record write is said in the last chunk
(`signoria.recorded: false`) instead of the `X-Signoria-Recorded` header.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi.responses import StreamingResponse

from signoria.agents.streaming import AnswerStream, streaming_answer
from signoria.orchestrator.result import AskResult
from signoria.orchestrator.server.errors import SERVER, ApiError, error_body
from signoria.orchestrator.server.recording import RECORDED_HEADER
from signoria.orchestrator.server.responses import (
    DONE,
    chunk_events,
    delta_event,
    final_event,
)

log = logging.getLogger("signoria.server")

Work = Callable[[], Awaitable[tuple[AskResult, dict[str, str]]]]
SSE_HEADERS = {"Cache-Control": "no-cache"}


async def live_stream(completion_id: str, model: str, work: Work) -> StreamingResponse:
    """The streamed response of `work` (the request's run); raises its ApiError when it
    fails before the first piece."""
    stream = AnswerStream()
    with streaming_answer(stream):
        task = asyncio.ensure_future(work())  # the task keeps the stream in its context
    first: asyncio.Future[str] = asyncio.ensure_future(stream.queue.get())
    await _either(task, first)
    if not first.done() and stream.queue.empty():
        first.cancel()
        result, headers = task.result()  # an ApiError propagates: a proper HTTP error
        return StreamingResponse(
            chunk_events(completion_id, model, result.answer, result),
            media_type="text/event-stream",
            headers={**headers, **SSE_HEADERS},
        )
    return StreamingResponse(
        _events(completion_id, model, task, stream, first),
        media_type="text/event-stream",
        headers={"X-Request-Id": completion_id, **SSE_HEADERS},
    )


async def _events(
    completion_id: str,
    model: str,
    task: asyncio.Future[tuple[AskResult, dict[str, str]]],
    stream: AnswerStream,
    pending: asyncio.Future[str],
) -> AsyncIterator[str]:
    created = int(time.time())
    yield delta_event(completion_id, created, model, {"role": "assistant", "content": ""})
    sent: list[str] = []
    try:
        while True:
            if not pending.done():
                await _either(task, pending)
            if pending.done():
                piece = pending.result()
                sent.append(piece)
                yield delta_event(completion_id, created, model, {"content": piece})
                pending = asyncio.ensure_future(stream.queue.get())
            elif task.done() and stream.queue.empty():
                break
    finally:
        pending.cancel()
    try:
        result, headers = await task
    except ApiError as exc:
        yield _error_event(exc.body())
        return
    except Exception:
        log.exception("streamed request %s failed", completion_id)
        yield _error_event(error_body("internal server error", SERVER, None, "internal_error"))
        return
    text, answer = "".join(sent), result.answer
    if answer.startswith(text):
        if answer[len(text) :]:
            yield delta_event(completion_id, created, model, {"content": answer[len(text) :]})
    elif text.rstrip() != answer.rstrip():
        # The streamed call did not give the answer (it failed mid-way and a fallback
        # answered): the client holds text that is not the answer. Say so.
        message = "the streamed answer broke off; the request's answer is in its record"
        yield _error_event(error_body(message, SERVER, None, "stream_interrupted"))
        return
    recorded = False if headers.get(RECORDED_HEADER) == "false" else None
    yield final_event(completion_id, created, model, answer, result, recorded)
    yield DONE


async def _either(a: asyncio.Future[Any], b: asyncio.Future[Any]) -> None:
    """Until one of the two is done."""
    await asyncio.wait({a, b}, return_when=asyncio.FIRST_COMPLETED)


def _error_event(body: dict[str, dict[str, str | None]]) -> str:
    return f"data: {json.dumps(body)}\n\n"
