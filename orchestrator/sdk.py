"""The Python SDK; the CLI and the REST server are thin layers over this class."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from agents.errors import UnknownNameError
from agents.pool import ExpertPool
from agents.types import Message
from orchestrator.aggregators.registry import AGGREGATORS
from orchestrator.config import SignoriaConfig, load_config
from orchestrator.limits import RequestLimits
from orchestrator.pipeline import Pipeline
from orchestrator.resilience import ExpertHealth
from orchestrator.result import AskResult
from routers.registry import ROUTERS

T = TypeVar("T")


class Orchestrator:
    """Owns the expert pool and the named pipelines of one config.

    `ask` is the blocking twin of `aask`: it runs on a private event loop in a background
    thread that lives as long as the orchestrator, so loaded models and their locks are
    reused across calls instead of being tied to a throwaway loop.
    """

    def __init__(self, config: SignoriaConfig) -> None:
        self.config = config
        self.pool = ExpertPool(config.models, config.runtime.llamacpp)
        # Circuit breakers per expert, shared by every request of this orchestrator.
        self.health = ExpertHealth(config.runtime.breaker)
        self.pipelines: dict[str, Pipeline] = {
            name: Pipeline(
                name=name,
                router=ROUTERS[spec.router.name].build(spec.router.params),
                aggregator=AGGREGATORS[spec.aggregator.name].build(spec.aggregator.params),
                limits=spec.limits,
                system=spec.system,
            )
            for name, spec in config.pipelines.items()
        }
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_config(cls, path: str | Path | None = None) -> Orchestrator:
        """Load a YAML config; `None` means `$SIGNORIA_CONFIG` or the embedded default."""
        return cls(load_config(path))

    def pipeline(self, name: str | None) -> Pipeline:
        key = name or self.config.default_pipeline
        if key not in self.pipelines:
            known = ", ".join(sorted(self.pipelines))
            raise UnknownNameError(f"unknown pipeline {key!r} (known: {known})")
        return self.pipelines[key]

    async def aask(
        self,
        prompt: str | Sequence[Message],
        *,
        pipeline: str | None = None,
        limits: RequestLimits | None = None,
    ) -> AskResult:
        """Answer a question (or a chat, as messages) with a named pipeline.

        `limits` may tighten the pipeline's limits for this request, never loosen them.
        """
        if isinstance(prompt, str) and not prompt.strip():
            raise ValueError("the query is empty")
        return await self.pipeline(pipeline).run(
            prompt, self.pool, overrides=limits, health=self.health
        )

    def ask(
        self,
        prompt: str | Sequence[Message],
        *,
        pipeline: str | None = None,
        limits: RequestLimits | None = None,
    ) -> AskResult:
        return self.run_sync(self.aask(prompt, pipeline=pipeline, limits=limits))

    def run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on this orchestrator's private loop, from synchronous code."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._loop.run_forever, name="signoria-loop", daemon=True
            )
            self._thread.start()
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def aclose(self) -> None:
        await self.pool.aclose()

    def close(self) -> None:
        if self._loop is not None:
            self.run_sync(self.aclose())
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._loop.close()
            self._loop = None
        else:
            asyncio.run(self.aclose())

    def __enter__(self) -> Orchestrator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Orchestrator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
