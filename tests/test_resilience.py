"""Faults: Retry-After, jittered backoff within the deadline, per-expert circuit breakers."""

from __future__ import annotations

import email.utils
from types import SimpleNamespace

import pytest
from tenacity import RetryCallState

from signoria.agents.retry_after import from_exception, retry_after_seconds
from signoria.agents.types import Completion, GenerationParams, Message, ModelCard
from signoria.orchestrator.resilience import Backoff, BreakerSettings, CircuitBreaker, ExpertHealth
from tests.aggregation_helpers import build, pipeline, pool
from tests.conftest import scripted


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds(" 0.5 ") == 0.5
    assert retry_after_seconds("-3") == 0.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    date = email.utils.formatdate(1_000_030.0, usegmt=True)
    assert retry_after_seconds(date, now=1_000_000.0) == pytest.approx(30.0)
    assert retry_after_seconds(date, now=2_000_000.0) == 0.0


def test_retry_after_is_found_on_a_client_libraries_error() -> None:
    error = SimpleNamespace(response=SimpleNamespace(headers={"Retry-After": "7"}))
    assert from_exception(error) == 7.0  # type: ignore[arg-type]
    assert from_exception(ValueError("no headers")) is None


def state(attempt: int) -> RetryCallState:
    retry_state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    retry_state.attempt_number = attempt
    return retry_state


def test_backoff_is_jittered_floored_by_retry_after_and_capped_by_the_deadline() -> None:
    backoff = Backoff(base_s=0.5, cap_s=4.0)
    waits = [backoff.seconds(state(3), None, None) for _ in range(200)]
    assert all(0.0 <= w <= 2.0 for w in waits)  # full jitter over [0, 0.5 * 2^2]
    assert len(set(waits)) > 100  # jittered, not one fixed delay for every client
    assert all(backoff.seconds(state(9), None, None) <= 4.0 for _ in range(50))
    assert backoff.seconds(state(1), 3.0, None) >= 3.0  # the provider asked for 3 s
    assert backoff.seconds(state(1), 3.0, 1.2) == 1.2  # ...but the deadline comes first


async def test_the_retry_waits_for_retry_after() -> None:
    limited = scripted("limited", answer="ok", fail_first=1, retry_after_s=0.3)
    result = await pipeline(["limited"], build("first"), retries=1).run("hi", pool(limited))
    failed, succeeded = result.calls
    assert result.answer == "ok" and failed.error is not None and succeeded.error is None
    assert succeeded.started_at - failed.started_at >= 0.3


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_half_opens_for_one_probe_and_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker(BreakerSettings(failures=2, cooldown_s=30), clock)
    breaker.failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.failure()
    assert breaker.state == "open" and not breaker.allow()
    clock.now += 30
    assert breaker.state == "half-open"
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    breaker.failure()  # the probe failed: a full cooldown again
    assert breaker.state == "open" and not breaker.allow()
    clock.now += 30
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.failures == 0


async def test_a_dead_expert_is_skipped_while_its_breaker_is_open() -> None:
    clock = Clock()
    health = ExpertHealth(BreakerSettings(failures=2, cooldown_s=30), clock)
    # Fails its first three calls (provider 503s), then recovers.
    dead = scripted("dead", answer="late", fail_first=3)
    alive = scripted("alive", answer="42")
    moa = pipeline(["dead", "alive"], build("majority"))
    experts = pool(dead, alive)

    async def ask() -> list[str | None]:
        result = await moa.run("6 * 7?", experts, health=health)
        assert result.answer == "42"  # answers while one expert is healthy
        return [c.error for c in result.calls if c.expert == "dead"]

    assert "503" in str(await ask()) and "503" in str(await ask())
    assert dead.calls == 2 and health.states() == {"dead": "open", "alive": "closed"}
    [skipped] = await ask()
    assert skipped is not None and "circuit open" in skipped and dead.calls == 2
    clock.now += 30
    await ask()  # the probe fails (third 503): open again
    assert dead.calls == 3 and health.states()["dead"] == "open"
    await ask()
    assert dead.calls == 3
    clock.now += 30
    assert await ask() == [None] and dead.calls == 4  # the probe succeeds
    assert health.states()["dead"] == "closed"


async def test_a_refusal_does_not_open_the_breaker() -> None:
    health = ExpertHealth(BreakerSettings(failures=1, cooldown_s=30))
    refusing = scripted("refusing", behaviour="error", error_message="400 bad", retryable=False)
    alive = scripted("alive", answer="42")
    for _ in range(3):
        await pipeline(["refusing", "alive"], build("first")).run(
            "hi", pool(refusing, alive), health=health
        )
    assert refusing.calls == 3 and health.states()["refusing"] == "closed"


async def test_hangs_count_against_the_breaker() -> None:
    health = ExpertHealth(BreakerSettings(failures=1, cooldown_s=30))
    hung = scripted("hung", behaviour="hang")
    alive = scripted("alive", answer="42")
    run = pipeline(["hung", "alive"], build("first"), expert_timeout_s=0.1)
    first = await run.run("hi", pool(hung, alive), health=health)
    [timed_out] = [c for c in first.calls if c.expert == "hung"]
    assert first.answer == "42" and "timeout" in str(timed_out.error)
    second = await run.run("hi", pool(hung, alive), health=health)
    [skipped] = [c for c in second.calls if c.expert == "hung"]
    assert "circuit open" in str(skipped.error) and skipped.latency_s == 0.0


class Buggy:
    """A backend with a bug: it raises something other than ExpertError."""

    card = ModelCard(name="buggy", backend="scripted")

    async def count_tokens(self, messages: list[Message]) -> int:
        return 1

    async def generate(self, messages: list[Message], *, params: GenerationParams) -> Completion:
        raise IndexError("list index out of range")


async def test_a_backend_bug_costs_one_call_not_the_request() -> None:
    alive = scripted("alive", answer="42")
    result = await pipeline(["buggy", "alive"], build("first")).run(
        "hi",
        {"buggy": Buggy(), "alive": alive},  # type: ignore[dict-item]
    )
    [failed] = [c for c in result.calls if c.expert == "buggy"]
    assert result.answer == "42"
    assert failed.error == "internal error in the backend (IndexError); see the server log"
