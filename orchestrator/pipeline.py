"""A pipeline: route, call the chosen experts concurrently, aggregate. Read top to bottom."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from signoria.agents.types import Completion, Expert, GenerationParams, Message
from signoria.errors import SignoriaError
from signoria.orchestrator.aggregators.first import FirstAnswer, FirstParams
from signoria.orchestrator.aggregators.protocol import AggregationContext, Aggregator
from signoria.orchestrator.calls import CallRunner
from signoria.orchestrator.limits import Limits, RequestLimits
from signoria.orchestrator.resilience import ExpertHealth
from signoria.orchestrator.result import AskResult
from signoria.routers.fixed import FixedRouter, FixedRouterParams
from signoria.routers.protocol import Assignment, Router


def last_user_message(messages: Sequence[Message]) -> str:
    """The query that routers and aggregators reason about: the latest user turn."""
    for message in reversed(messages):
        if message.role == "user" and message.content.strip():
            return message.content
    raise ValueError("the conversation has no user message with content")


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

    @classmethod
    def fixed(
        cls,
        experts: str | Sequence[str],
        *,
        aggregator: Aggregator | None = None,
        temperature: float | None = None,
        seed: int = 0,
        limits: Limits | None = None,
        name: str | None = None,
    ) -> Pipeline:
        """Named experts, each asked once: what a model id naming an expert runs (one
        expert, its answer as is), and what red-teaming seats experts with. Same timeouts,
        retries, trace and recording as any configured pipeline."""
        names = (experts,) if isinstance(experts, str) else tuple(experts)
        params = FixedRouterParams(experts=names, temperature=temperature, seed=seed)
        return cls(
            name=name or names[0],
            router=FixedRouter(params),
            aggregator=aggregator or FirstAnswer(FirstParams()),
            limits=limits or Limits(),
        )

    def messages(self, prompt: str | Sequence[Message]) -> list[Message]:
        """The conversation the experts see; the pipeline's system prompt comes first
        unless the caller brought one of its own."""
        chat = [Message(role="user", content=prompt)] if isinstance(prompt, str) else [*prompt]
        if self.system and not any(m.role == "system" for m in chat):
            chat.insert(0, Message(role="system", content=self.system))
        return chat

    async def run(
        self,
        prompt: str | Sequence[Message],
        pool: Mapping[str, Expert],
        *,
        overrides: RequestLimits | None = None,
        health: ExpertHealth | None = None,
    ) -> AskResult:
        """`health` carries the circuit breakers that outlive this request (the
        orchestrator's); without it, every expert is called as if healthy."""
        t0 = time.perf_counter()
        limits = self.limits.tightened(overrides)
        messages = self.messages(prompt)
        query = last_user_message(messages)
        runner = CallRunner(pool, limits, health)
        decision = await self.router.route(query, pool, budget_usd=limits.budget_usd)
        assignments = decision.assignments[: limits.max_experts]
        completions = await asyncio.gather(
            *(self._answer(runner, i, a, messages) for i, a in enumerate(assignments))
        )
        ctx = AggregationContext(
            call=lambda name, msgs, params: runner.call(name, msgs, params, role="aggregator"),
            max_tokens=limits.max_tokens,
            pool=pool,
            routing=decision.model_copy(update={"assignments": assignments}),
            messages=tuple(messages),
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
        self, runner: CallRunner, slot: int, assignment: Assignment, messages: list[Message]
    ) -> Completion:
        params = GenerationParams(
            max_tokens=runner.limits.max_tokens,
            temperature=assignment.temperature or 0.0,
            seed=assignment.seed,
        )
        completion = await runner.call(assignment.expert, messages, params, slot=slot)
        fallback = runner.limits.fallback
        if completion.ok or fallback is None or fallback == assignment.expert:
            return completion
        return await runner.call(fallback, messages, params, role="fallback", slot=slot)
