"""A key's use as one server process sees it, without a database read per request.

Budgets and tokens per minute are read from the recorded requests (storage/keys.py): two
aggregates over the key's month of items. Run before every request, that read grows with
the key's traffic and queues concurrent requests behind each other. Here the database's
figures are read at most every `sync_s` seconds per key (requests that need a read while
one runs share it), and what this process records in between is added as it is recorded.
So a process never misses its own spend, and another instance's spend is seen within
`sync_s`. When a read and a record overlap, the record may be counted twice until the
next read: the error is always towards refusing early, never towards overspending.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from signoria.orchestrator.storage.keys import WINDOW, KeyUsage, period_starts
from signoria.orchestrator.storage.schema import utcnow


@dataclass(frozen=True)
class _Recorded:
    """One request this process recorded for the key since the last read."""

    at: datetime
    cost: float | None
    tokens: int


@dataclass
class _KeyState:
    read: KeyUsage | None = None
    read_started: datetime | None = None
    read_at: float = 0.0  # time.monotonic() when the read finished
    since: list[_Recorded] = field(default_factory=list)
    reading: asyncio.Task[None] | None = None


class UsageMeter:
    """`usage(fingerprint)` for admission; `note(...)` for each request recorded."""

    def __init__(self, read: Callable[[str], KeyUsage], sync_s: float = 1.0) -> None:
        self._read = read
        self.sync_s = sync_s
        self._keys: dict[str, _KeyState] = {}

    async def usage(self, fingerprint: str) -> KeyUsage:
        state = self._keys.setdefault(fingerprint, _KeyState())
        now = utcnow()
        if self._stale(state, now):
            if state.reading is None or state.reading.done():
                state.reading = asyncio.create_task(self._refresh(fingerprint, state))
            await asyncio.shield(state.reading)
        return _combined(state, utcnow())

    def note(self, fingerprint: str, cost: float | None, tokens: int) -> None:
        """Count a request of this key that was just recorded (after its commit)."""
        state = self._keys.get(fingerprint)
        if state is None or state.read is None:
            return
        reading = state.reading is not None and not state.reading.done()
        if not reading and time.monotonic() - state.read_at > self.sync_s:
            # The next `usage` reads the database, which holds this record: nothing to
            # keep (and nothing piles up for a key whose limits stopped reading usage).
            state.since.clear()
            return
        state.since.append(_Recorded(utcnow(), cost, tokens))

    def _stale(self, state: _KeyState, now: datetime) -> bool:
        if state.read is None or state.read_started is None:
            return True
        if time.monotonic() - state.read_at > self.sync_s:
            return True
        # A new day (or month) starts its spend from zero: read it rather than carry over.
        return period_starts(now) != period_starts(state.read_started)

    async def _refresh(self, fingerprint: str, state: _KeyState) -> None:
        started = utcnow()
        read = await asyncio.to_thread(self._read, fingerprint)
        state.read, state.read_started, state.read_at = read, started, time.monotonic()
        # Records noted before the read began are in it; later ones may or may not be,
        # and are kept (counted twice at worst, until the next read).
        state.since = [r for r in state.since if r.at >= started]


def _combined(state: _KeyState, now: datetime) -> KeyUsage:
    read = state.read
    assert read is not None
    since = state.since
    spend = sum(r.cost for r in since if r.cost is not None)
    recent = [r for r in since if r.at >= now - WINDOW and r.tokens > 0]
    oldest = [t for t in (read.oldest_token_record, *(r.at for r in recent)) if t is not None]
    return KeyUsage(
        spend_day_usd=read.spend_day_usd + spend,
        spend_month_usd=read.spend_month_usd + spend,
        unpriced=read.unpriced + sum(1 for r in since if r.cost is None),
        tokens_last_minute=read.tokens_last_minute + sum(r.tokens for r in recent),
        oldest_token_record=min(oldest, default=None),
    )
