"""Every expert call of a request goes through here: budget, timeout, deadline, retries,
circuit breakers, and the metering that holds each answer to what the call was allowed.

This is the one retry loop of the project (tenacity, with the waits of
`signoria.orchestrator.resilience`). It never raises for a failed call: every attempt becomes a
trace row, so a request keeps the record of everything it tried and why it failed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from signoria.agents.pricing import call_cost, total_cost
from signoria.agents.streaming import stream_started
from signoria.agents.types import (
    Completion,
    Expert,
    ExpertError,
    ExpertMisconfigured,
    GenerationParams,
    Loadable,
    Message,
)
from signoria.orchestrator.limits import Budget, BudgetExceeded, Limits
from signoria.orchestrator.metering import (
    BUDGET_EXCEEDED,
    BUDGET_REFUSED,
    MISCONFIGURED,
    OVER_REPORTED,
    Metered,
    meter,
)
from signoria.orchestrator.resilience import Backoff, ExpertHealth
from signoria.orchestrator.result import CallRole, ExpertCall

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Call:
    """What stays the same across the attempts of one call."""

    expert: str
    role: CallRole
    slot: int | None
    seed: int | None


class _Retryable(Exception):
    """A failed attempt worth another: carries its trace row and the provider's Retry-After."""

    def __init__(self, completion: Completion, retry_after_s: float | None) -> None:
        super().__init__(completion.error)
        self.completion = completion
        self.retry_after_s = retry_after_s


class CallRunner:
    def __init__(
        self,
        pool: Mapping[str, Expert],
        limits: Limits,
        health: ExpertHealth | None = None,
        *,
        clock_from_first_call: bool = False,
    ) -> None:
        self.pool = pool
        self.limits = limits
        self.health = health
        self.budget = Budget(limits.budget_usd)
        self.calls: list[ExpertCall] = []
        # The deadline runs from now, or (a request waiting its turn in a batch) from
        # its first call.
        self._deadline: float | None = None
        self._clock_started = False
        if not clock_from_first_call:
            self._start_clock()
        self._backoff = Backoff(limits.retry_backoff_s, limits.retry_backoff_max_s)

    def _start_clock(self) -> None:
        if not self._clock_started:
            self._clock_started = True
            if self.limits.deadline_s is not None:
                self._deadline = time.perf_counter() + self.limits.deadline_s

    @property
    def cost(self) -> float | None:
        return total_cost(c.cost for c in self.calls)

    def _remaining(self) -> float | None:
        return None if self._deadline is None else self._deadline - time.perf_counter()

    def _timeout(self, role: CallRole) -> float | None:
        per_call = self.limits.expert_timeout_s
        if role == "fallback" and self.limits.fallback_timeout_s is not None:
            per_call = self.limits.fallback_timeout_s
        caps = [t for t in (per_call, self._remaining()) if t is not None]
        return min(caps) if caps else None

    def _wait(self, state: RetryCallState) -> float:
        failed = state.outcome.exception() if state.outcome else None
        retry_after = failed.retry_after_s if isinstance(failed, _Retryable) else None
        return self._backoff.seconds(state, retry_after, self._remaining())

    async def call(
        self,
        name: str,
        messages: list[Message],
        params: GenerationParams,
        role: CallRole = "expert",
        slot: int | None = None,
    ) -> Completion:
        self._start_clock()
        expert = self.pool[name]
        call = _Call(expert=name, role=role, slot=slot, seed=params.seed)
        tokens_in = await expert.count_tokens(messages) if self.budget.enforced else 0
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.limits.retries + 1),
            retry=retry_if_exception_type(_Retryable),
            wait=self._wait,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    number = attempt.retry_state.attempt_number
                    return await self._attempt(expert, call, number, messages, params, tokens_in)
        except _Retryable as exhausted:
            return exhausted.completion
        raise AssertionError("unreachable: every attempt returns or raises")

    async def _attempt(
        self,
        expert: Expert,
        call: _Call,
        attempt: int,
        messages: list[Message],
        params: GenerationParams,
        tokens_in: int,
    ) -> Completion:
        """One try: a completion, a final failure, or `_Retryable` for the retry loop."""
        timeout = self._timeout(call.role)
        if timeout is not None and timeout <= 0:
            return self._failed(call, attempt, "deadline exceeded; not called")
        try:
            reserved = self.budget.reserve(expert.card, tokens_in, params.max_tokens)
        except BudgetExceeded as exc:
            return self._failed(call, attempt, f"budget exceeded: {exc}", flags=(BUDGET_REFUSED,))
        breaker = None if self.health is None else self.health.breaker(call.expert)
        if breaker is not None and not breaker.allow():
            self.budget.settle(reserved, 0.0)
            return self._failed(call, attempt, breaker.describe())
        t0 = time.perf_counter()
        try:
            if isinstance(expert, Loadable):
                await self._load(expert, call.expert)
                # The load ran on its own clock; the call's starts now, within the deadline.
                timeout = self._timeout(call.role)
                if timeout is not None and timeout <= 0:
                    self.budget.settle(reserved, 0.0)
                    return self._failed(call, attempt, "deadline exceeded; not called", t0)
                t0 = time.perf_counter()
            completion = await asyncio.wait_for(expert.generate(messages, params=params), timeout)
        except TimeoutError:
            # The reservation stays spent: a cancelled API call may still be billed.
            self.budget.settle(reserved, None)
            if breaker is not None:
                breaker.failure()
            return self._failed(call, attempt, f"timeout after {timeout:.1f}s", t0)
        except ExpertMisconfigured as exc:
            # Nothing was sent: not the provider's fault, nothing billed, no retry.
            self.budget.settle(reserved, 0.0)
            return self._failed(call, attempt, str(exc), t0, flags=(MISCONFIGURED,))
        except ExpertError as exc:
            self.budget.settle(reserved, 0.0)
            failed = self._failed(call, attempt, str(exc), t0)
            if breaker is not None and exc.retryable:
                breaker.failure()
            elif breaker is not None:
                breaker.success()  # a refusal (4xx) proves the provider is up
            # A call whose answer the client already started reading cannot start over.
            if exc.retryable and not stream_started():
                raise _Retryable(failed, exc.retry_after_s) from exc
            return failed
        except Exception as exc:  # a backend bug must cost one call, not the whole request
            logger.exception("expert %s raised instead of returning an ExpertError", call.expert)
            self.budget.settle(reserved, None)
            if breaker is not None:
                breaker.failure()
            # The message may hold internals (paths, keys); traces reach clients, logs do not.
            error = f"internal error in the backend ({type(exc).__name__}); see the server log"
            return self._failed(call, attempt, error, t0)
        metered = await meter(completion, expert, params.max_tokens)
        if breaker is not None and metered.over_reported:
            breaker.failure()  # an honest provider never returns more than it was asked
        elif breaker is not None:
            breaker.success()
        return self._settle(call, attempt, metered, reserved)

    async def _load(self, expert: Loadable, name: str) -> None:
        """Load before the call's timeout starts: the first call of a local model is not
        slow, its load is. Bounded by `load_timeout_s` and the request's deadline."""
        caps = [t for t in (self.limits.load_timeout_s, self._remaining()) if t is not None]
        limit = min(caps) if caps else None
        try:
            await asyncio.wait_for(expert.load(), limit)
        except TimeoutError:
            # The load goes on in its worker thread: a later call finds the model ready.
            raise ExpertError(
                f"{name}: still loading after {limit:.1f}s (limits.load_timeout_s or the "
                "deadline); not called",
                retryable=False,
            ) from None

    def _settle(self, call: _Call, attempt: int, metered: Metered, reserved: float) -> Completion:
        """Charge a metered call to the budget (at most its reservation) and record it."""
        completion = metered.completion
        charged = self.budget.settle(reserved, completion.cost, metered.reported_cost)
        flags = [OVER_REPORTED] if metered.over_reported else []
        reported_cost = metered.reported_cost
        if charged is not None and completion.cost is not None and charged < completion.cost:
            flags.append(BUDGET_EXCEEDED)
            reported_cost = reported_cost if reported_cost is not None else completion.cost
            completion = completion.model_copy(update={"cost": charged})
        self._record(
            call,
            attempt,
            completion,
            flags=tuple(flags),
            reported_tokens_out=metered.reported_tokens_out,
            reported_cost=reported_cost,
        )
        return completion

    def _record(
        self,
        call: _Call,
        attempt: int,
        completion: Completion,
        *,
        flags: tuple[str, ...] = (),
        reported_tokens_out: int | None = None,
        reported_cost: float | None = None,
    ) -> None:
        self.calls.append(
            ExpertCall(
                expert=completion.expert,
                role=call.role,
                tokens_in=completion.usage.tokens_in,
                tokens_out=completion.usage.tokens_out,
                latency_s=completion.latency_s,
                cost=completion.cost,
                error=completion.error,
                attempt=attempt,
                slot=call.slot,
                seed=call.seed,
                started_at=completion.started_at,
                text=completion.text,
                tool_calls=completion.tool_calls,
                finish_reason=completion.finish_reason,
                flags=flags,
                reported_tokens_out=reported_tokens_out,
                reported_cost=reported_cost,
            )
        )

    def _failed(
        self,
        call: _Call,
        attempt: int,
        error: str,
        t0: float | None = None,
        *,
        flags: tuple[str, ...] = (),
    ) -> Completion:
        # No tokens came back, so none are billed as far as we can tell; an unknown price
        # still makes the cost unknown.
        completion = Completion(
            expert=call.expert,
            error=error,
            cost=call_cost(self.pool[call.expert].card, 0, 0),
            latency_s=0.0 if t0 is None else time.perf_counter() - t0,
            started_at=time.time(),
        )
        self._record(call, attempt, completion, flags=flags)
        return completion
