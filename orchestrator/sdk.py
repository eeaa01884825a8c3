"""The Python SDK; the CLI and the REST server are thin layers over this class."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from signoria.agents.pool import ExpertPool
from signoria.agents.types import Message, ToolUse
from signoria.errors import UnknownNameError
from signoria.orchestrator.aggregators.protocol import passes_through
from signoria.orchestrator.aggregators.registry import AGGREGATORS
from signoria.orchestrator.config import PipelineSpec, SignoriaConfig, load_config
from signoria.orchestrator.limits import RequestLimits
from signoria.orchestrator.pipeline import Pipeline
from signoria.orchestrator.resilience import ExpertHealth
from signoria.orchestrator.result import AskResult
from signoria.registry import BuiltOnUse
from signoria.routers.registry import ROUTERS

T = TypeVar("T")
TargetKind = Literal["pipeline", "expert"]


def build_pipeline(name: str, spec: PipelineSpec) -> Pipeline:
    """A configured pipeline, its router and aggregator imported and built by name."""
    router, aggregator = spec.router, spec.aggregator
    return Pipeline(
        name=name,
        router=ROUTERS.build(router.name, router.params),
        aggregator=AGGREGATORS.build(aggregator.name, aggregator.params),
        limits=spec.limits,
        system=spec.system,
    )


class Pipelines(BuiltOnUse[PipelineSpec, Pipeline]):
    """The configured pipelines by name, each built on first use: a pipeline whose router
    needs an extra that is not installed fails when asked for, not when another runs."""

    def build(self, name: str, spec: PipelineSpec) -> Pipeline:
        return build_pipeline(name, spec)


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
        self.pipelines = Pipelines(config.pipelines)
        # One-expert pipelines for model ids that name an expert, built once per name.
        self._expert_pipelines: dict[str, Pipeline] = {}
        # Per pipeline, whether it takes tools: asked on every /v1/models listing.
        self._takes_tools: dict[str, bool] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_config(cls, path: str | Path | None = None) -> Orchestrator:
        """Load a YAML config; `None` means `$SIGNORIA_CONFIG` or the embedded default."""
        return cls(load_config(path))

    def kind(self, name: str) -> TargetKind | None:
        """What a model id names: a configured pipeline (which wins a tie), an expert of
        the pool, or nothing."""
        if name in self.pipelines:
            return "pipeline"
        if name in self.pool:
            return "expert"
        return None

    def accepts_tool_use(self, name: str) -> bool:
        """Whether a model id's answer is one expert's call, which can take the client's
        tools and response format (`Pipeline.accepts_tool_use`), without building the
        pipeline's router."""
        if self.kind(name) != "pipeline":
            return True
        if name not in self._takes_tools:
            spec = self.config.pipelines[name].aggregator
            self._takes_tools[name] = passes_through(AGGREGATORS.build(spec.name, spec.params))
        return self._takes_tools[name]

    def pipeline(
        self, name: str | None, *, temperature: float | None = None, seed: int | None = None
    ) -> Pipeline:
        """A configured pipeline, or for an expert's name that expert alone.

        `temperature` and `seed` are honoured by a one-expert pipeline (the client asked
        for that model's sampling); a configured pipeline keeps its own.
        """
        key = name or self.config.default_pipeline
        kind = self.kind(key)
        if kind == "pipeline":
            return self.pipelines[key]
        if kind == "expert":
            if temperature is not None or seed is not None:
                return Pipeline.fixed(key, temperature=temperature, seed=seed or 0)
            if key not in self._expert_pipelines:
                self._expert_pipelines[key] = Pipeline.fixed(key)
            return self._expert_pipelines[key]
        known = ", ".join(sorted(self.pipelines))
        raise UnknownNameError(f"unknown pipeline {key!r} (pipelines: {known}; or an expert)")

    async def aask(
        self,
        prompt: str | Sequence[Message],
        *,
        pipeline: str | None = None,
        limits: RequestLimits | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        tool_use: ToolUse | None = None,
    ) -> AskResult:
        """Answer a question (or a chat, as messages) with a named pipeline, or with one
        expert when `pipeline` names an expert of the pool.

        `limits` may tighten the pipeline's limits for this request, never loosen them;
        `temperature` and `seed` apply to a single expert (see `pipeline`); `tool_use`
        (tools, response format) to a pipeline whose answer is one expert's call
        (`Pipeline.accepts_tool_use`); the result's `tool_calls` are the calls it asks for.
        """
        if isinstance(prompt, str) and not prompt.strip():
            raise ValueError("the query is empty")
        chosen = self.pipeline(pipeline, temperature=temperature, seed=seed)
        return await chosen.run(
            prompt, self.pool, overrides=limits, health=self.health, tool_use=tool_use
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
