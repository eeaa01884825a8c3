"""Every expert call of a request goes through here: budget, timeout, deadline, retries.

This is the one retry loop of the project. It never raises for a failed call: failures
become trace rows, so a request keeps the record of everything it tried.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass

from agents.pricing import call_cost, total_cost
from agents.types import Completion, Expert, ExpertError, GenerationParams, Message
from orchestrator.limits import Budget, BudgetExceeded, Limits
from orchestrator.result import CallRole, ExpertCall


@dataclass(frozen=True)
class _Call:
    """What stays the same across the attempts of one call."""

    expert: str
    role: CallRole
    slot: int | None
    seed: int | None


class CallRunner:
    def __init__(self, pool: Mapping[str, Expert], limits: Limits) -> None:
        self.pool = pool
        self.limits = limits
        self.budget = Budget(limits.budget_usd)
        self.calls: list[ExpertCall] = []
        self._deadline = (
            None if limits.deadline_s is None else time.perf_counter() + limits.deadline_s
        )

    @property
    def cost(self) -> float | None:
        return total_cost(c.cost for c in self.calls)

    def _timeout(self, role: CallRole) -> float | None:
        per_call = self.limits.expert_timeout_s
        if role == "fallback" and self.limits.fallback_timeout_s is not None:
            per_call = self.limits.fallback_timeout_s
        remaining = None if self._deadline is None else self._deadline - time.perf_counter()
        caps = [t for t in (per_call, remaining) if t is not None]
        return min(caps) if caps else None

    async def call(
        self,
        name: str,
        messages: list[Message],
        params: GenerationParams,
        role: CallRole = "expert",
        slot: int | None = None,
    ) -> Completion:
        expert = self.pool[name]
        call = _Call(expert=name, role=role, slot=slot, seed=params.seed)
        tokens_in = await expert.count_tokens(messages) if self.budget.enforced else 0
        for attempt in range(1, self.limits.retries + 2):
            timeout = self._timeout(role)
            if timeout is not None and timeout <= 0:
                return self._failed(call, attempt, "deadline exceeded; not called")
            try:
                reserved = self.budget.reserve(expert.card, tokens_in, params.max_tokens)
            except BudgetExceeded as exc:
                return self._failed(call, attempt, f"budget exceeded: {exc}")
            t0 = time.perf_counter()
            try:
                completion = await asyncio.wait_for(
                    expert.generate(messages, params=params), timeout
                )
            except TimeoutError:
                # The reservation stays spent: a cancelled API call may still be billed.
                self.budget.settle(reserved, None)
                return self._failed(call, attempt, f"timeout after {timeout:.1f}s", t0)
            except ExpertError as exc:
                self.budget.settle(reserved, 0.0)
                failed = self._failed(call, attempt, str(exc), t0)
                if exc.retryable and attempt <= self.limits.retries:
                    await asyncio.sleep(self.limits.retry_backoff_s * 2 ** (attempt - 1))
                    continue
                return failed
            self.budget.settle(reserved, completion.cost)
            self._record(call, attempt, completion)
            return completion
        raise AssertionError("unreachable: the loop returns on its last attempt")

    def _record(self, call: _Call, attempt: int, completion: Completion) -> None:
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
            )
        )

    def _failed(self, call: _Call, attempt: int, error: str, t0: float | None = None) -> Completion:
        # No tokens came back, so none are billed as far as we can tell; an unknown price
        # still makes the cost unknown.
        completion = Completion(
            expert=call.expert,
            error=error,
            cost=call_cost(self.pool[call.expert].card, 0, 0),
            latency_s=0.0 if t0 is None else time.perf_counter() - t0,
            started_at=time.time(),
        )
        self._record(call, attempt, completion)
        return completion
