"""A pipeline: route, call the chosen experts concurrently, aggregate. Read top to bottom."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from signoria.agents.streaming import final_call, stream_started
from signoria.agents.types import Completion, Expert, GenerationParams, Message, ToolUse
from signoria.errors import SignoriaError
from signoria.orchestrator.aggregators.first import FirstAnswer, FirstParams
from signoria.orchestrator.aggregators.protocol import (
    AggregationContext,
    Aggregator,
    passes_through,
)
from signoria.orchestrator.calls import CallRunner
from signoria.orchestrator.limits import Limits, RequestLimits
from signoria.orchestrator.metering import MISCONFIGURED
from signoria.orchestrator.resilience import ExpertHealth
from signoria.orchestrator.result import AskResult
from signoria.routers.fixed import FixedRouter, FixedRouterParams
from signoria.routers.protocol import Assignment, Router, RoutingDecision


def last_user_message(messages: Sequence[Message]) -> str:
    """The query that routers and aggregators reason about: the latest user turn."""
    for message in reversed(messages):
        if message.role == "user" and message.content.strip():
            return message.content
    raise ValueError("the conversation has no user message with content")


class ToolUseNotAccepted(SignoriaError):
    """Tools or a response format for a pipeline whose answer no single call writes (a
    vote, a synthesis of drafts): there is no one call they could be given to."""


class PipelineFailed(SignoriaError):
    """No answer could be produced; `result` keeps the trace of every call that was tried."""

    def __init__(self, message: str, result: AskResult) -> None:
        super().__init__(message)
        self.result = result

    def every_failure_has(self, flag: str) -> bool:
        """Whether calls failed and each failed one carries `flag`: one cause for the
        whole failure (every call refused by the budget, every call misconfigured)."""
        failed = [call for call in self.result.calls if call.error]
        return bool(failed) and all(flag in call.flags for call in failed)

    @property
    def misconfigured(self) -> str | None:
        """The cause, when every call failed because the setup cannot work (an unset
        key): a configuration error for the operator to fix, not a failed request."""
        if not self.every_failure_has(MISCONFIGURED):
            return None
        return next(call.error for call in self.result.calls if call.error)


@dataclass(frozen=True)
class Request:
    """One routed request: what its experts are asked, and the runner that keeps its
    limits and its trace."""

    messages: list[Message]
    query: str
    runner: CallRunner
    decision: RoutingDecision
    assignments: tuple[Assignment, ...]
    # When the request began, routing included: what its latency is measured from.
    started: float
    # The caller's own max_tokens (None: the pipeline's default applies).
    max_tokens_requested: int | None = None
    # The client's tools and output format, for the expert calls whose text is the answer.
    tool_use: ToolUse | None = None


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

    @property
    def accepts_tool_use(self) -> bool:
        """Whether the client's tools and response format can reach the call that writes
        the answer: only when the answer is one expert's text as it is (`first`)."""
        return passes_through(self.aggregator)

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
        tool_use: ToolUse | None = None,
    ) -> AskResult:
        """Route, call the chosen experts concurrently, aggregate.

        `health` carries the circuit breakers that outlive this request (the
        orchestrator's); without it, every expert is called as if healthy. `tool_use`
        (the client's tools, response format) needs `accepts_tool_use`.
        """
        if tool_use is not None and not self.accepts_tool_use:
            raise ToolUseNotAccepted(
                f"pipeline {self.name!r} aggregates several answers; tools and response_format "
                "are taken by expert ids and pipelines whose aggregator is 'first'"
            )
        request = await self.start(prompt, pool, overrides=overrides, health=health)
        if tool_use is not None:
            request = replace(request, tool_use=tool_use)
        if len(request.assignments) == 1 and passes_through(self.aggregator):
            with final_call():  # the one expert's text is the answer: it may stream
                return await self.finish(request, [await self.answer(request, 0)])
        slots = range(len(request.assignments))
        completions = await asyncio.gather(*(self.answer(request, slot) for slot in slots))
        return await self.finish(request, completions)

    async def start(
        self,
        prompt: str | Sequence[Message],
        pool: Mapping[str, Expert],
        *,
        overrides: RequestLimits | None = None,
        health: ExpertHealth | None = None,
        clock_from_first_call: bool = False,
    ) -> Request:
        """Route one request. A batch schedule starts many before calling any expert; its
        requests start their deadline at their first call, not while they wait their turn."""
        started = time.perf_counter()
        limits = self.limits.tightened(overrides)
        messages = self.messages(prompt)
        query = last_user_message(messages)
        runner = CallRunner(pool, limits, health, clock_from_first_call=clock_from_first_call)
        decision = await self.router.route(query, pool, budget_usd=limits.budget_usd)
        return Request(
            messages=messages,
            query=query,
            runner=runner,
            decision=decision,
            assignments=decision.assignments[: limits.max_experts],
            started=started,
            max_tokens_requested=None if overrides is None else overrides.max_tokens,
        )

    async def answer(self, request: Request, slot: int) -> Completion:
        """The completion of one routed assignment (its fallback's if it failed)."""
        return await self._answer(request, slot, request.assignments[slot])

    async def finish(self, request: Request, completions: Sequence[Completion]) -> AskResult:
        """Aggregate a request's completions into its answer and trace."""
        runner = request.runner
        ctx = AggregationContext(
            call=lambda name, msgs, params: runner.call(name, msgs, params, role="aggregator"),
            max_tokens=runner.limits.max_tokens,
            pool=runner.pool,
            routing=request.decision.model_copy(update={"assignments": request.assignments}),
            messages=tuple(request.messages),
            ask=lambda name, msgs, params, slot: runner.call(name, msgs, params, slot=slot),
        )
        aggregate = await self.aggregator.aggregate(request.query, completions, ctx)
        result = AskResult(
            answer=aggregate.text,
            pipeline=self.name,
            calls=tuple(runner.calls),
            cost=runner.cost,
            latency_s=time.perf_counter() - request.started,
            routing=request.decision,
            aggregation=aggregate,
            max_tokens=runner.limits.max_tokens,
            max_tokens_requested=request.max_tokens_requested,
        )
        if not aggregate.text and not aggregate.tool_calls:
            raise PipelineFailed(f"pipeline {self.name!r}: {aggregate.error}", result)
        return result

    async def _answer(self, request: Request, slot: int, assignment: Assignment) -> Completion:
        runner, messages = request.runner, request.messages
        params = GenerationParams(
            max_tokens=runner.limits.max_tokens,
            temperature=assignment.temperature or 0.0,
            seed=assignment.seed,
            tool_use=request.tool_use,
        )
        completion = await runner.call(assignment.expert, messages, params, slot=slot)
        fallback = runner.limits.fallback
        if completion.ok or fallback is None or fallback == assignment.expert or stream_started():
            return completion  # (a fallback cannot continue an answer already streaming)
        return await runner.call(fallback, messages, params, role="fallback", slot=slot)
