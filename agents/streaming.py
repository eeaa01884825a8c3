"""Streaming the final answer as it is written: who receives the pieces, and which call.

A request that streams sets an `AnswerStream` for itself (`streaming_answer`); only the
call that writes the final answer streams into it, inside `final_call()` (the single
expert of a routed pipeline, the last synthesis call of MoA / Self-MoA / SMoA). Both are
context variables, so concurrent requests never see each other's stream and the calls
an ensemble makes before its final one generate as usual. A backend asks `active_stream()`:
None means generate in one piece.

Backends may run in worker threads (llama.cpp): `AnswerStream.write` is thread-safe and
hands pieces to the request's event loop. Once a piece is out, the call cannot be retried
(the client has it): `started` tells the call runner so.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from signoria.agents.types import GenerationParams


class AnswerStream:
    """Pieces of the final answer, in order, for one request; `None` is never written."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop or asyncio.get_running_loop()
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self._lock = threading.Lock()
        self._started = False
        self._leading = True  # answers are stripped: leading whitespace is not sent

    @property
    def started(self) -> bool:
        return self._started

    def write(self, piece: str) -> None:
        with self._lock:
            if self._leading:
                piece = piece.lstrip()
                if not piece:
                    return
                self._leading = False
            self._started = True
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self.queue.put_nowait(piece)
        else:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, piece)


_request_stream: ContextVar[AnswerStream | None] = ContextVar("answer_stream", default=None)
_final: ContextVar[bool] = ContextVar("final_call", default=False)


@contextmanager
def streaming_answer(stream: AnswerStream) -> Iterator[AnswerStream]:
    """The request's stream, for the code (and tasks) run inside this block."""
    token = _request_stream.set(stream)
    try:
        yield stream
    finally:
        _request_stream.reset(token)


@contextmanager
def final_call() -> Iterator[None]:
    """Mark the call made inside as the one that writes the final answer."""
    token = _final.set(True)
    try:
        yield
    finally:
        _final.reset(token)


def active_stream() -> AnswerStream | None:
    """Where this call should stream its text, or None (generate in one piece)."""
    return _request_stream.get() if _final.get() else None


def stream_for(params: GenerationParams) -> AnswerStream | None:
    """Where a backend streams this call: `active_stream()`, except that a call offered
    the client's tools never streams (a tool call is only known once it is complete)."""
    tool_use = params.tool_use
    return None if tool_use is not None and tool_use.offers_tools else active_stream()


def stream_started() -> bool:
    """Whether this call's stream already sent a piece (then it must not be retried)."""
    stream = active_stream()
    return stream is not None and stream.started
