"""What the one retry loop needs beyond "try again": backoff, Retry-After, circuit breakers.

Backoff is tenacity's full-jitter exponential (random in [0, base * 2^n], capped), so
clients that failed together do not retry together; a provider's Retry-After is a floor
on it; the request's deadline is a ceiling. A circuit breaker per expert, shared by every
request of an orchestrator, stops calling an expert after consecutive failures and lets
one probe through after a cooldown: a dead provider then costs a request nothing instead
of a timeout per call, and the pipeline answers from the experts that are still healthy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from tenacity import RetryCallState
from tenacity.wait import wait_random_exponential


class BreakerSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    failures: int = Field(
        default=5, ge=1, description="consecutive failures (5xx, 429, timeouts) that open it"
    )
    cooldown_s: float = Field(default=30.0, gt=0, description="open time before one probe")


class Backoff:
    """tenacity's full-jitter wait, with Retry-After as a floor and the deadline as a cap."""

    def __init__(self, base_s: float, cap_s: float) -> None:
        self._jitter = wait_random_exponential(multiplier=base_s, max=cap_s)

    def seconds(
        self, state: RetryCallState, retry_after: float | None, remaining: float | None
    ) -> float:
        wait = max(self._jitter(state), retry_after or 0.0)
        return wait if remaining is None else max(0.0, min(wait, remaining))


State = Literal["closed", "open", "half-open"]


@dataclass
class CircuitBreaker:
    settings: BreakerSettings
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False

    @property
    def state(self) -> State:
        if self.opened_at is None:
            return "closed"
        if self.clock() - self.opened_at >= self.settings.cooldown_s:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        """Whether a call may go out now; in half-open, only one probe at a time."""
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self.probing:
            self.probing = True
            return True
        return False

    def success(self) -> None:
        self.failures, self.opened_at, self.probing = 0, None, False

    def failure(self) -> None:
        self.failures += 1
        if self.probing or self.failures >= self.settings.failures:
            # A failed probe re-opens for a full cooldown.
            self.opened_at, self.probing = self.clock(), False

    def describe(self) -> str:
        return (
            f"circuit open after {self.failures} consecutive failures "
            f"(cooldown {self.settings.cooldown_s:g}s); not called"
        )


@dataclass
class ExpertHealth:
    """The breakers of one orchestrator, by expert name; shared by all its requests."""

    settings: BreakerSettings = field(default_factory=BreakerSettings)
    clock: Callable[[], float] = time.monotonic
    _breakers: dict[str, CircuitBreaker] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def breaker(self, expert: str) -> CircuitBreaker:
        with self._lock:
            if expert not in self._breakers:
                self._breakers[expert] = CircuitBreaker(self.settings, self.clock)
            return self._breakers[expert]

    def states(self) -> dict[str, State]:
        with self._lock:
            return {name: b.state for name, b in self._breakers.items()}
