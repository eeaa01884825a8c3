"""Per-key limits at the door: which models a key may call, its budgets and its rates.

Keys from `$SIGNORIA_API_KEYS` are unlimited (the operator's own); keys created with
`signoria keys create` live in the database with their limits (storage/keys.py). A
request is admitted in this order, each refusal an OpenAI-style error:

- a model the key may not call: 403 `model_not_allowed` (before anything is counted);
- a day or month budget already spent: 402 `key_budget_exhausted`, not retryable (the
  same request fails the same way until the period turns);
- tokens per minute used up: 429 with `Retry-After` (when the oldest counted request
  leaves the minute);
- requests per minute used up: 429 with `Retry-After` (the admission count is shared by
  every instance on the database, and exact: concurrent requests of one key are decided
  together, in one transaction, in arrival order).

An admitted request's own budget is capped at what is left of the key's, so one request
cannot overspend it by much (the call runner's budget refuses the calls that would).
Key records are cached for `ttl_s` (2 s): a revoked key stops working on every instance
within that time. A key's spend and tokens are this process's own as it records them,
plus the database's figures read at most every `usage_sync_s` (1 s; key_usage.py): what
other instances spend counts here within that time.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

from signoria.orchestrator.limits import RequestLimits
from signoria.orchestrator.result import AskResult
from signoria.orchestrator.server.errors import BUDGET, RATE_LIMIT, ApiError
from signoria.orchestrator.server.group_commit import GroupCommit
from signoria.orchestrator.server.key_usage import UsageMeter
from signoria.orchestrator.storage.keys import KeyRecord, KeyStore, KeyUsage
from signoria.orchestrator.storage.schema import utcnow

PERMISSION = "permission_error"


class _Recent:
    """Values looked up within the last `ttl_s` seconds, at most `size` of them: a client
    sending random keys must not grow it without end (the oldest entry goes first)."""

    def __init__(self, ttl_s: float, size: int = 4096) -> None:
        self.ttl_s = ttl_s
        self.size = size
        self._values: dict[str, tuple[float, Any]] = {}

    async def get(self, key: str, fetch: Callable[[], Any]) -> Any:
        hit = self._values.get(key)
        if hit is None or time.monotonic() - hit[0] > self.ttl_s:
            value = await asyncio.to_thread(fetch)
            self._values.pop(key, None)
            if len(self._values) >= self.size:
                del self._values[next(iter(self._values))]
            hit = self._values[key] = (time.monotonic(), value)
        return hit[1]


class KeyGate:
    """Looks keys up (cached) and admits or refuses requests by their key's limits."""

    def __init__(self, ttl_s: float = 2.0, usage_sync_s: float = 1.0) -> None:
        self._keys: KeyStore | None = None
        self._recent = _Recent(ttl_s)
        self._usage_sync_s = usage_sync_s
        self._usage: UsageMeter | None = None
        self._admissions: dict[str, GroupCommit[int, float]] = {}

    def bind(self, keys: KeyStore | None) -> None:
        """Use the database's keys (None: environment keys only, e.g. with --no-record)."""
        self._keys = keys
        self._usage = None if keys is None else UsageMeter(keys.usage, self._usage_sync_s)
        self._admissions = {}

    def note(self, fingerprint: str | None, result: AskResult | None) -> None:
        """Count a request that was just recorded towards its key's spend and tokens."""
        if fingerprint is None or self._usage is None or result is None:
            return
        tokens = sum(c.tokens_in + c.tokens_out for c in result.calls)
        self._usage.note(fingerprint, result.cost, tokens)

    async def any_keys(self) -> bool:
        """Whether the database holds keys (then every request needs one)."""
        if self._keys is None:
            return False
        # Under "", which no fingerprint (32 hex digits) can be.
        return bool(await self._recent.get("", self._keys.any_keys))

    async def find(self, fingerprint: str) -> KeyRecord | None:
        """The active database key with this fingerprint, or None."""
        if self._keys is None:
            return None
        keys = self._keys
        record: KeyRecord | None = await self._recent.get(
            fingerprint, lambda: keys.find(fingerprint)
        )
        return record if record is not None and record.active else None

    async def admit(
        self, fingerprint: str | None, kind: str, name: str, limits: RequestLimits
    ) -> RequestLimits:
        """The request's limits with the key's remaining budget applied, or an ApiError;
        `kind` and `name` are what the model id resolved to (a pipeline or an expert)."""
        record = None if fingerprint is None else await self.find(fingerprint)
        if record is None or self._keys is None:
            return limits  # keys off, or an environment key: no limits of its own
        allowed(record, kind, name)
        remaining = None
        if record.limits.reads_usage and self._usage is not None:
            usage = await self._usage.usage(record.fingerprint)
            remaining = remaining_budget(record, usage)
            tokens_retry = tokens_retry_after(record, usage)
            if tokens_retry is not None:
                message = f"key {record.name!r} used its tokens per minute"
                raise _rate_limited(message, tokens_retry)
        per_minute = record.limits.requests_per_minute
        if per_minute is not None:
            retry = await self._admission(record.fingerprint).submit(per_minute)
            if retry > 0:
                message = f"key {record.name!r} sent {per_minute} requests in the last minute"
                raise _rate_limited(message, retry)
        if remaining is None:
            return limits
        budget = remaining if limits.budget_usd is None else min(limits.budget_usd, remaining)
        return limits.model_copy(update={"budget_usd": budget})

    def _admission(self, fingerprint: str) -> GroupCommit[int, float]:
        """The key's admissions, decided a batch per transaction (one writer per key in
        this process, as the database's row lock makes it across instances)."""
        queue = self._admissions.get(fingerprint)
        if queue is None:
            keys = self._keys
            assert keys is not None

            def decide(limits: list[int]) -> list[float]:
                # A limit changed mid-batch applies its tightest value to the batch.
                return keys.admit_many(fingerprint, min(limits), len(limits))

            queue = self._admissions[fingerprint] = GroupCommit(decide)
        return queue


def allowed(record: KeyRecord, kind: str, name: str) -> None:
    if not record.limits.allows(kind, name):
        names = record.limits.allowed(kind)
        raise ApiError(
            403,
            f"key {record.name!r} may not call {kind} {name!r}; it may call: "
            + (", ".join(names) or "none"),
            type=PERMISSION,
            param="model",
            code="model_not_allowed",
        )


def remaining_budget(record: KeyRecord, usage: KeyUsage) -> float | None:
    """USD left in the tightest of the key's budgets (None: no budget); 402 when none is."""
    left: list[tuple[float, str]] = []
    if record.limits.budget_day_usd is not None:
        left.append((record.limits.budget_day_usd - usage.spend_day_usd, "day"))
    if record.limits.budget_month_usd is not None:
        left.append((record.limits.budget_month_usd - usage.spend_month_usd, "month"))
    if not left:
        return None
    amount, period = min(left)
    if amount <= 0:
        raise ApiError(
            402,
            f"key {record.name!r} has spent its budget for this {period} "
            f"({usage.spend_month_usd if period == 'month' else usage.spend_day_usd:.6f} USD)",
            type=BUDGET,
            code="key_budget_exhausted",
            headers={"x-should-retry": "false"},
        )
    return amount


def tokens_retry_after(record: KeyRecord, usage: KeyUsage) -> float | None:
    cap = record.limits.tokens_per_minute
    if cap is None or usage.tokens_last_minute < cap or usage.oldest_token_record is None:
        return None
    return max(0.001, 60.0 - (utcnow() - usage.oldest_token_record).total_seconds())


def _rate_limited(message: str, retry_after_s: float) -> ApiError:
    seconds = max(1, math.ceil(retry_after_s))
    return ApiError(
        429,
        f"{message}; retry in {seconds} s",
        type=RATE_LIMIT,
        code="rate_limit_exceeded",
        headers={"Retry-After": str(seconds)},
    )
