"""A pipeline: route, call the chosen experts concurrently, aggregate. Read top to bottom."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass

from agents.errors import SignoriaError
from agents.types import Completion, Expert, GenerationParams, Message
from orchestrator.aggregators.protocol import AggregationContext, Aggregator
from orchestrator.calls import CallRunner
from orchestrator.limits import Limits
from orchestrator.result import AskResult
from routers.protocol import Assignment, Router


class PipelineFailed(SignoriaError):
    """No answer could be produced; `result` keeps the trace of every call that was tried."""

    def __init__(self, message: str, result: AskResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class Pipeline:
    name: str
    router: Router
    aggregator: Aggregator
    limits: Limits
    system: str | None = None

    def messages(self, query: str) -> list[Message]:
        system = [Message(role="system", content=self.system)] if self.system else []
        return [*system, Message(role="user", content=query)]

    async def run(self, query: str, pool: Mapping[str, Expert]) -> AskResult:
        t0 = time.perf_counter()
        runner = CallRunner(pool, self.limits)
        decision = await self.router.route(query, pool, budget_usd=self.limits.budget_usd)
        assignments = decision.assignments[: self.limits.max_experts]
        messages = self.messages(query)
        completions = await asyncio.gather(
            *(self._answer(runner, a, messages) for a in assignments)
        )
        ctx = AggregationContext(
            call=lambda name, msgs, params: runner.call(name, msgs, params, role="aggregator"),
            max_tokens=self.limits.max_tokens,
        )
        aggregate = await self.aggregator.aggregate(query, completions, ctx)
        result = AskResult(
            answer=aggregate.text,
            pipeline=self.name,
            calls=tuple(runner.calls),
            cost=runner.cost,
            latency_s=time.perf_counter() - t0,
            routing=decision,
            aggregation=aggregate,
        )
        if not aggregate.text:
            raise PipelineFailed(f"pipeline {self.name!r}: {aggregate.error}", result)
        return result

    async def _answer(
        self, runner: CallRunner, assignment: Assignment, messages: list[Message]
    ) -> Completion:
        params = GenerationParams(
            max_tokens=self.limits.max_tokens,
            temperature=assignment.temperature or 0.0,
            seed=assignment.seed,
        )
        completion = await runner.call(assignment.expert, messages, params)
        fallback = self.limits.fallback
        if completion.ok or fallback is None or fallback == assignment.expert:
            return completion
        return await runner.call(fallback, messages, params, role="fallback")
