"""Where the benchmark runner's items are answered: this event loop, or a Ray cluster.

The runner only needs answers as they finish; it stores each one itself (one transaction
per item, on the driver), so resuming a killed run works the same whichever executor
answered. An executor never changes an answer: the pipeline, its router's seeds and the
models are the same, only the process that runs them differs.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from signoria.agents.types import Completion
from signoria.evals.datasets import EvalItem
from signoria.orchestrator.limits import RequestLimits
from signoria.orchestrator.pipeline import PipelineFailed
from signoria.orchestrator.result import AskResult
from signoria.orchestrator.sdk import Orchestrator


def item_limits(item: EvalItem) -> RequestLimits | None:
    """The item's prompt asks for the tokens it needs, as a client's max_tokens would."""
    return None if item.max_tokens is None else RequestLimits(max_tokens=item.max_tokens)


Positioned = tuple[int, EvalItem]
# (position, item, result, error): error is set when the pipeline produced no answer.
Answered = tuple[int, EvalItem, AskResult, str | None]


class Executor(Protocol):
    def answers(self, todo: Sequence[Positioned], pipeline: str) -> AsyncIterator[Answered]:
        """Each item's result, in the order they finish."""
        ...


class AsyncioExecutor:
    """`concurrency` items in flight on this process's event loop."""

    def __init__(self, orchestrator: Orchestrator, concurrency: int = 1) -> None:
        self.orchestrator = orchestrator
        self.concurrency = concurrency

    async def answers(self, todo: Sequence[Positioned], pipeline: str) -> AsyncIterator[Answered]:
        semaphore = asyncio.Semaphore(self.concurrency)

        async def one(position: int, item: EvalItem) -> Answered:
            async with semaphore:
                try:
                    result = await self.orchestrator.aask(
                        item.prompt, pipeline=pipeline, limits=item_limits(item)
                    )
                except PipelineFailed as exc:
                    return position, item, exc.result, str(exc)
                return position, item, result, None

        # Started in the file's order, the items take the semaphore in that order: at
        # concurrency 1 they are answered one after another as listed (a scripted expert's
        # sequence of turns then meets the items it was written for).
        started = [asyncio.ensure_future(one(p, i)) for p, i in todo]
        for finished in asyncio.as_completed(started):
            yield await finished


class ByExpertExecutor:
    """Symbolic-MoE's batch schedule: route a batch of items, run its expert calls expert
    by expert (each model loaded once per batch even when memory holds only one), then
    aggregate each item.

    The calls are those the per-query schedule makes, through each request's own call
    runner (budget, retries, breakers, trace): only their order differs, so answers are
    the same at temperature 0. A request's deadline starts at its first call, not while it
    waits for its turn. Items are stored batch by batch, so a killed run loses at most one
    batch (`batch` items), which a resume then redoes.
    """

    def __init__(self, orchestrator: Orchestrator, batch: int = 32) -> None:
        self.orchestrator = orchestrator
        self.batch = max(1, batch)

    async def answers(self, todo: Sequence[Positioned], pipeline: str) -> AsyncIterator[Answered]:
        chosen = self.orchestrator.pipeline(pipeline)
        pool, health = self.orchestrator.pool, self.orchestrator.health
        for start in range(0, len(todo), self.batch):
            items = todo[start : start + self.batch]
            requests = [
                await chosen.start(
                    item.prompt,
                    pool,
                    overrides=item_limits(item),
                    health=health,
                    clock_from_first_call=True,
                )
                for _, item in items
            ]
            calls = sorted(
                (a.expert, k, slot)
                for k, request in enumerate(requests)
                for slot, a in enumerate(request.assignments)
            )
            completions: list[dict[int, Completion]] = [{} for _ in requests]
            for _, k, slot in calls:
                completions[k][slot] = await chosen.answer(requests[k], slot)
            for (position, item), request, row in zip(items, requests, completions, strict=True):
                ordered = [row[slot] for slot in sorted(row)]
                try:
                    yield position, item, await chosen.finish(request, ordered), None
                except PipelineFailed as exc:
                    yield position, item, exc.result, str(exc)


class _Worker:
    """A Ray actor: one orchestrator (its models loaded once) answering item after item."""

    def __init__(self, config: str | None) -> None:
        self.orchestrator = Orchestrator.from_config(config)

    def ask(
        self, prompt: str, pipeline: str, max_tokens: int | None = None
    ) -> tuple[dict[str, Any], str | None]:
        limits = None if max_tokens is None else RequestLimits(max_tokens=max_tokens)
        try:
            result = self.orchestrator.ask(prompt, pipeline=pipeline, limits=limits)
        except PipelineFailed as exc:
            return exc.result.model_dump(mode="json"), str(exc)
        return result.model_dump(mode="json"), None


def _signoria_env() -> dict[str, str]:
    """The variables a worker needs to find the same config, models and keys."""
    return {k: v for k, v in os.environ.items() if k.startswith("SIGNORIA_")}


class RayExecutor:
    """`workers` Ray actors, each with its own orchestrator, fed one item at a time.

    `address` is passed to `ray.init` (None starts a local cluster; "auto" or
    "ray://host:10001" joins an existing one, whose nodes must have signoria installed and
    the config's model files at the same paths). Requires the `signoria[ray]` extra.
    """

    def __init__(
        self,
        config: Path | None,
        workers: int = 2,
        *,
        address: str | None = None,
        cpus_per_worker: float = 1.0,
    ) -> None:
        try:
            import ray
        except ImportError:  # pragma: no cover - depends on the extra being installed
            from signoria.errors import SignoriaError

            raise SignoriaError("the ray executor needs Ray: pip install 'signoria[ray]'") from None
        self._ray = ray
        self._owns_cluster = not ray.is_initialized()
        if self._owns_cluster:
            ray.init(
                address=address,
                runtime_env={"env_vars": _signoria_env()},
                include_dashboard=False,
                log_to_driver=False,
            )
        path = None if config is None else str(config.resolve())
        actor = ray.remote(num_cpus=cpus_per_worker)(_Worker)
        # Ray's actor handles are typed loosely; `Any` keeps mypy honest about that.
        self._actors: list[Any] = [actor.remote(path) for _ in range(workers)]

    async def answers(self, todo: Sequence[Positioned], pipeline: str) -> AsyncIterator[Answered]:
        queue = list(todo)
        idle = list(self._actors)
        running: dict[asyncio.Future[Any], tuple[Any, int, EvalItem]] = {}
        while queue or running:
            while idle and queue:
                actor, (position, item) = idle.pop(), queue.pop(0)
                ref: Any = actor.ask.remote(item.prompt, pipeline, item.max_tokens)
                running[asyncio.ensure_future(ref)] = (actor, position, item)
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for future in done:
                actor, position, item = running.pop(future)
                idle.append(actor)
                payload, error = future.result()
                yield position, item, AskResult.model_validate(payload), error

    def close(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
        if self._owns_cluster:
            self._ray.shutdown()
