"""In-process GGUF experts through llama-cpp-python.

A `Llama` object is not thread-safe, so each loaded model has its own lock; different
models run in parallel, samples of one model queue. Calls run in worker threads so the
event loop stays free, and a cancelled call (timeout, deadline) stops at the next token
through a stopping criterion instead of running on in the background.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from signoria.agents.pricing import call_cost
from signoria.agents.sources import EmbeddedSource, HubSource, ModelSource, PathSource, resolve
from signoria.agents.streaming import AnswerStream, stream_for
from signoria.agents.tools import local_arguments, local_result
from signoria.agents.types import (
    Availability,
    Completion,
    ExpertError,
    GenerationParams,
    Message,
    ModelCard,
    Usage,
)

# A loaded model costs about its file size (weights, mmapped) plus the KV cache and
# scratch buffers; 25% on top of the file is a deliberately rough, documented estimate.
_OVERHEAD = 1.25
# Chat-template tokens per message, for the pre-call estimate that budgets use.
_TEMPLATE_TOKENS_PER_MESSAGE = 8


class LlamaCppSettings(BaseModel):
    """Process-wide settings of the local runtime (one runtime per orchestrator)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_threads: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    memory_cap_mb: int = Field(default=6144, ge=64)
    cache_dir: Path = Path("~/.cache/signoria/models")


class LlamaCppOptions(BaseModel):
    """A local model's options in a config: where its GGUF comes from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: EmbeddedSource | PathSource | HubSource

    def availability(self) -> Availability:
        return self.source.availability()


def _footprint(path: Path) -> int:
    """What a loaded model is reckoned to cost in memory (see `_OVERHEAD`)."""
    return int(path.stat().st_size * _OVERHEAD)


class _Cancelled(Exception):
    pass


@dataclass
class _Loaded:
    path: Path
    n_ctx: int
    llama: Any
    bytes: int
    lock: threading.Lock = field(default_factory=threading.Lock)


class LlamaCppRuntime:
    """Loads models lazily and evicts the least recently used one above the memory cap."""

    def __init__(self, settings: LlamaCppSettings) -> None:
        self.settings = settings
        self._loaded: OrderedDict[tuple[Path, int], _Loaded] = OrderedDict()
        self._registry_lock = threading.Lock()
        # One lock per model being loaded: a load (seconds) holds only callers of that
        # model, never the registry that every other model's calls pass through.
        self._loading: dict[tuple[Path, int], threading.Lock] = {}
        # Enough workers that calls queued on one model's lock never starve other models.
        self._executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="llamacpp")
        self.loads = 0  # how many times a model was (re)loaded, for tests and traces
        # (file, start, end) of the last calls while holding the model: what really ran when.
        self.spans: deque[tuple[Path, float, float]] = deque(maxlen=256)

    @property
    def cap_bytes(self) -> int:
        return self.settings.memory_cap_mb * 1024 * 1024

    def loaded_paths(self) -> list[Path]:
        with self._registry_lock:
            return [key[0] for key in self._loaded]

    async def run(self, path: Path, n_ctx: int, fn: Any, cancel: threading.Event) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, self._run_locked, path, n_ctx, fn, cancel)
        try:
            return await future
        except asyncio.CancelledError:
            cancel.set()  # the worker thread stops at its next token and frees the model
            raise

    def _run_locked(self, path: Path, n_ctx: int, fn: Any, cancel: threading.Event) -> Any:
        while True:
            entry = self._acquire(path, n_ctx)
            with entry.lock:
                if cancel.is_set():
                    raise _Cancelled
                if entry.llama is None:  # evicted between lookup and lock: load again
                    continue
                start = time.perf_counter()
                try:
                    return fn(entry.llama)
                finally:
                    self.spans.append((path, start, time.perf_counter()))

    def _acquire(self, path: Path, n_ctx: int) -> _Loaded:
        key = (path, n_ctx)
        while True:
            with self._registry_lock:
                entry = self._loaded.get(key)
                if entry is not None and entry.llama is not None:
                    self._loaded.move_to_end(key)
                    return entry
                loading = self._loading.setdefault(key, threading.Lock())
            with loading:
                with self._registry_lock:
                    entry = self._loaded.get(key)
                    if entry is not None and entry.llama is not None:
                        continue  # loaded by the caller we waited for
                    size = _footprint(path)
                    self._evict_for(size)
                llama = self._load(path, n_ctx)
                with self._registry_lock:
                    entry = _Loaded(path=path, n_ctx=n_ctx, llama=llama, bytes=size)
                    self._loaded[key] = entry
                    self.loads += 1
                    return entry

    def ensure_loaded(self, path: Path, n_ctx: int, *, only_if_room: bool = False) -> bool:
        """Load the model unless it is loaded; with `only_if_room`, only if it fits beside
        the loaded ones without evicting any (what a startup preload wants). True when the
        model is loaded on return."""
        with self._registry_lock:
            entry = self._loaded.get((path, n_ctx))
            if entry is not None and entry.llama is not None:
                return True
            if only_if_room and self._used_bytes() + _footprint(path) > self.cap_bytes:
                return False
        self._acquire(path, n_ctx)
        return True

    async def load(self, path: Path, n_ctx: int, *, only_if_room: bool = False) -> bool:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, lambda: self.ensure_loaded(path, n_ctx, only_if_room=only_if_room)
        )

    def _used_bytes(self) -> int:
        return sum(e.bytes for e in self._loaded.values())

    def _evict_for(self, incoming: int) -> None:
        used = self._used_bytes()
        for key in list(self._loaded):
            if used + incoming <= self.cap_bytes:
                return
            entry = self._loaded[key]
            if not entry.lock.acquire(blocking=False):
                continue  # in use: never pull a model from under a running call
            try:
                entry.llama.close()
                entry.llama = None
                used -= entry.bytes
                del self._loaded[key]
            finally:
                entry.lock.release()

    def _load(self, path: Path, n_ctx: int) -> Any:
        from llama_cpp import Llama  # heavy import, paid only when a local model is used

        # chat_format is left unset so llama-cpp uses the template stored in the GGUF.
        return Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=self.settings.n_threads,
            n_threads_batch=self.settings.n_threads,
            verbose=False,
        )

    def close(self) -> None:
        with self._registry_lock:
            for entry in self._loaded.values():
                with entry.lock:
                    if entry.llama is not None:
                        entry.llama.close()
                        entry.llama = None
            self._loaded.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)


class LlamaCppExpert:
    """One GGUF model as an `Expert`; the file is resolved and verified on first use."""

    def __init__(self, card: ModelCard, source: ModelSource, runtime: LlamaCppRuntime) -> None:
        self._card = card
        self._source = source
        self._runtime = runtime
        self._path: Path | None = None

    @property
    def card(self) -> ModelCard:
        return self._card

    def model_path(self) -> Path:
        if self._path is None:
            self._path = resolve(self._source, self._runtime.settings.cache_dir.expanduser())
        return self._path

    async def count_tokens(self, messages: list[Message]) -> int:
        text = "\n".join(m.content for m in messages).encode()

        def tokenize(llama: Any) -> int:
            return len(llama.tokenize(text, add_bos=True, special=False))

        tokens: int = await self._call(tokenize, threading.Event())
        return tokens + _TEMPLATE_TOKENS_PER_MESSAGE * len(messages)

    async def generate(self, messages: list[Message], *, params: GenerationParams) -> Completion:
        cancel = threading.Event()
        tool_use = params.tool_use
        stream = stream_for(params)

        def complete(llama: Any) -> dict[str, Any]:
            import numpy as np
            from llama_cpp import LogitsProcessorList

            eos = llama.token_eos()

            def end_when_cancelled(_ids: Any, logits: Any) -> Any:
                # Runs once per token inside llama.cpp's sampler, where an exception would be
                # swallowed; forcing end-of-sequence is the way to stop a running generation.
                if cancel.is_set():
                    logits[:] = -np.inf
                    logits[eos] = 0.0
                return logits

            if params.seed is not None and params.temperature > 0:
                # Reusing the KV cache of a previous prompt changes the logits in the last
                # bits, enough to change a sample: reset so a seed means the same answer.
                llama.reset()
            arguments: dict[str, Any] = {
                "messages": [m.to_openai() for m in messages],
                "max_tokens": params.max_tokens,
                "temperature": params.temperature,
                "top_p": params.top_p,
                "seed": params.seed,
                "stop": list(params.stop) or None,
                "logits_processor": LogitsProcessorList([end_when_cancelled]),
                **local_arguments(tool_use),
            }
            if stream is None:
                result: dict[str, Any] = llama.create_chat_completion(**arguments)
                return result
            return _streamed(llama, llama.create_chat_completion(**arguments, stream=True), stream)

        started = time.time()
        t0 = time.perf_counter()
        try:
            result = await self._call(complete, cancel)
        except ValueError as exc:  # llama-cpp's way of saying the prompt does not fit
            raise ExpertError(f"{self._card.name}: {exc}", retryable=False) from exc
        choice = result["choices"][0]
        usage = Usage(
            tokens_in=int(result["usage"]["prompt_tokens"]),
            tokens_out=int(result["usage"]["completion_tokens"]),
        )
        try:
            text, tool_calls = local_result((choice["message"]["content"] or "").strip(), tool_use)
        except ValueError as exc:  # a required call cut at max_tokens
            raise ExpertError(f"{self._card.name}: {exc}", retryable=False) from exc
        return Completion(
            expert=self._card.name,
            text=text,
            usage=usage,
            cost=call_cost(self._card, usage.tokens_in, usage.tokens_out),
            latency_s=time.perf_counter() - t0,
            started_at=started,
            finish_reason="tool_calls" if tool_calls else choice.get("finish_reason"),
            tool_calls=tool_calls,
        )

    async def load(self, *, only_if_room: bool = False) -> bool:
        """Resolve the file and load the weights, on the caller's clock rather than a
        call's (see `Loadable`); concurrent loads of one model share one load."""
        path = await asyncio.to_thread(self.model_path)
        return await self._runtime.load(path, self._card.context_length, only_if_room=only_if_room)

    async def _call(self, fn: Any, cancel: threading.Event) -> Any:
        path = await asyncio.to_thread(self.model_path)
        return await self._runtime.run(path, self._card.context_length, fn, cancel)

    async def aclose(self) -> None:
        return None


def _streamed(llama: Any, chunks: Any, stream: AnswerStream) -> dict[str, Any]:
    """Send each piece as llama.cpp writes it; the result in the one-piece call's shape.

    Streamed chunks carry no usage: the completion is counted by tokenizing its text, the
    prompt from the tokens llama.cpp holds afterwards (prompt + completion, less the last
    token, which is sampled but never evaluated).
    """
    text, finish = [], None
    for chunk in chunks:
        choice = chunk["choices"][0]
        piece = choice["delta"].get("content") or ""
        if piece:
            text.append(piece)
            stream.write(piece)
        finish = choice.get("finish_reason") or finish
    content = "".join(text)
    tokens_out = len(llama.tokenize(content.encode(), add_bos=False, special=False))
    tokens_in = max(1, llama.n_tokens + 1 - tokens_out)
    return {
        "choices": [{"message": {"content": content}, "finish_reason": finish}],
        "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out},
    }


def build_expert(card: ModelCard, options: LlamaCppOptions, context: Any) -> LlamaCppExpert:
    return LlamaCppExpert(card, options.source, context.llamacpp_runtime)
