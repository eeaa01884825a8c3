"""A key's limits without a database round trip per request: admissions decided in
groups (exactly as one at a time), spend and tokens counted as they are recorded and read
from the database at most every `sync_s`. A real SQLite file throughout; the server's
path through them is in test_keys.py."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from signoria.orchestrator.keylimits import KeyLimits
from signoria.orchestrator.limits import RequestLimits
from signoria.orchestrator.result import AskResult, ExpertCall
from signoria.orchestrator.server.errors import ApiError
from signoria.orchestrator.server.group_commit import GroupCommit
from signoria.orchestrator.server.key_usage import UsageMeter
from signoria.orchestrator.server.keys import KeyGate
from signoria.orchestrator.storage import Store
from signoria.orchestrator.storage.keys import KeyStore, KeyUsage
from signoria.orchestrator.storage.schema import KeyAdmission, utcnow
from tests.test_storage import sqlite_url


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(sqlite_url(tmp_path))
    yield store
    store.close()


def paid(cost: float | None, tokens: int = 5) -> AskResult:
    call = ExpertCall(expert="x", slot=0, text="ok", cost=cost, tokens_in=tokens, tokens_out=0)
    return AskResult(answer="ok", pipeline="p", calls=(call,), cost=cost, latency_s=0.01)


def record(store: Store, run: str, client: str, result: AskResult, key: str) -> None:
    """A request recorded by some server instance (this process's meter did not see it)."""
    store.record_items(run, [{"item_key": key, "query": "q", "result": result, "client": client}])


# Group commit.


async def test_one_transaction_carries_what_queued_while_the_last_ran() -> None:
    batches: list[list[int]] = []
    release = threading.Event()

    def write(batch: list[int]) -> list[int]:
        batches.append(batch)
        release.wait(5)
        return [n * 10 for n in batch]

    group: GroupCommit[int, int] = GroupCommit(write)
    first = asyncio.create_task(group.submit(0))
    await asyncio.sleep(0.05)  # the first write is running; these queue behind it
    rest = [asyncio.create_task(group.submit(n)) for n in range(1, 6)]
    await asyncio.sleep(0.01)
    release.set()
    assert await first == 0 and await asyncio.gather(*rest) == [10, 20, 30, 40, 50]
    assert batches == [[0], [1, 2, 3, 4, 5]]


async def test_a_failed_batch_fails_each_of_its_entries_and_the_next_batch_runs() -> None:
    def write(batch: list[int]) -> list[int]:
        if 0 in batch:
            raise OSError("disk full")
        return batch

    group: GroupCommit[int, int] = GroupCommit(write)
    with pytest.raises(OSError, match="disk full"):
        await group.submit(0)
    assert await group.submit(7) == 7
    short: GroupCommit[int, int] = GroupCommit(lambda batch: [])
    with pytest.raises(RuntimeError, match="0 outcomes for 1 entries"):
        await short.submit(1)


# Admissions.


def test_a_batch_of_admissions_decides_as_one_at_a_time(store: Store) -> None:
    keys = KeyStore(store)
    _, key = keys.create("k", KeyLimits(requests_per_minute=5))
    assert keys.admit_many(key.fingerprint, 5, 3) == [0.0, 0.0, 0.0]
    decided = keys.admit_many(key.fingerprint, 5, 4)
    assert decided[:2] == [0.0, 0.0] and all(0 < r <= 60 for r in decided[2:])
    _, fresh = keys.create("fresh", KeyLimits(requests_per_minute=2))
    burst = keys.admit_many(fresh.fingerprint, 2, 3)  # into an empty minute
    assert burst[:2] == [0.0, 0.0] and burst[2] == pytest.approx(60.0)
    with store.session() as session:
        rows = session.scalar(select(func.count()).select_from(KeyAdmission))
    assert rows == 5 + 2


def test_admissions_that_left_the_minute_stop_counting_and_are_deleted_in_bulk(
    store: Store,
) -> None:
    keys = KeyStore(store)
    _, key = keys.create("k", KeyLimits(requests_per_minute=3))
    start = utcnow()
    assert keys.admit_many(key.fingerprint, 3, 3, start) == [0.0] * 3
    later = start + timedelta(seconds=90)  # out of the minute, kept until a minute later
    assert keys.admit_many(key.fingerprint, 3, 3, later) == [0.0] * 3

    def stored() -> int | None:
        with store.session() as session:
            return session.scalar(select(func.count()).select_from(KeyAdmission))

    assert stored() == 6
    assert keys.admit_many(key.fingerprint, 3, 1, start + timedelta(seconds=125))[0] > 0
    assert stored() == 3  # the first three went; the next three still count


async def test_concurrent_requests_of_one_key_admit_exactly_its_rate(store: Store) -> None:
    keys = KeyStore(store)
    _, key = keys.create("burst", KeyLimits(requests_per_minute=10))
    gate = KeyGate()
    gate.bind(keys)
    batches: list[int] = []
    admit_many = keys.admit_many

    def counted(fingerprint: str, per_minute: int, count: int) -> list[float]:
        batches.append(count)
        return admit_many(fingerprint, per_minute, count)

    keys.admit_many = counted  # type: ignore[method-assign]
    outcomes = await asyncio.gather(
        *(gate.admit(key.fingerprint, "pipeline", "p", RequestLimits()) for _ in range(30)),
        return_exceptions=True,
    )
    refused = [o for o in outcomes if isinstance(o, ApiError)]
    assert len(refused) == 20 and {r.status for r in refused} == {429}
    assert sum(batches) == 30 and len(batches) < 30  # grouped, not one transaction each
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(KeyAdmission)) == 10


# Spend and tokens.


async def test_this_process_counts_its_own_spend_at_once_and_others_within_sync(
    store: Store,
) -> None:
    keys = KeyStore(store)
    _, key = keys.create("spender", KeyLimits(budget_day_usd=1.0))
    run = store.create_run(kind="serve")
    reads: list[str] = []

    def read(fingerprint: str) -> KeyUsage:
        reads.append(fingerprint)
        return keys.usage(fingerprint)

    meter = UsageMeter(read, sync_s=0.3)
    fp = key.fingerprint
    assert (await meter.usage(fp)).spend_day_usd == 0.0
    record(store, run, fp, paid(0.25, tokens=7), "mine")
    meter.note(fp, 0.25, 7)  # what the server does once its own record is committed
    mine = await meter.usage(fp)
    assert mine.spend_day_usd == pytest.approx(0.25) and mine.tokens_last_minute == 7
    record(store, run, fp, paid(0.5), "another instance's")
    assert (await meter.usage(fp)).spend_day_usd == pytest.approx(0.25)  # not read yet
    await asyncio.sleep(0.35)
    synced = await meter.usage(fp)
    assert synced.spend_day_usd == pytest.approx(0.75)  # read again, and "mine" once
    assert synced.tokens_last_minute == 12 and len(reads) == 2
    meter.note(fp, None, 3)  # an unpriced request adds no spend, it is counted apart
    unpriced = await meter.usage(fp)
    assert unpriced.spend_day_usd == pytest.approx(0.75) and unpriced.unpriced == 1
    await asyncio.sleep(0.35)
    record(store, run, fp, paid(0.125), "noted after the figures went stale")
    meter.note(fp, 0.125, 5)
    assert not meter._keys[fp].since  # not kept: the next read has it (nothing piles up)
    assert (await meter.usage(fp)).spend_day_usd == pytest.approx(0.875)


async def test_requests_that_need_a_read_at_once_share_it(store: Store) -> None:
    keys = KeyStore(store)
    _, key = keys.create("shared", KeyLimits(tokens_per_minute=100))
    reads = 0

    def slow_read(fingerprint: str) -> KeyUsage:
        nonlocal reads
        reads += 1
        threading.Event().wait(0.05)
        return keys.usage(fingerprint)

    meter = UsageMeter(slow_read, sync_s=60)
    seen = await asyncio.gather(*(meter.usage(key.fingerprint) for _ in range(20)))
    assert reads == 1 and {u.tokens_last_minute for u in seen} == {0}


async def test_a_spent_budget_is_refused_before_the_next_read(store: Store) -> None:
    """The server notes each recorded request: the request after the one that spent the
    budget is a 402 even though the database was not read in between."""
    keys = KeyStore(store)
    _, key = keys.create("small", KeyLimits(budget_day_usd=0.01))
    gate = KeyGate(usage_sync_s=60)
    gate.bind(keys)
    limits = await gate.admit(key.fingerprint, "pipeline", "p", RequestLimits())
    assert limits.budget_usd == pytest.approx(0.01)
    run = store.create_run(kind="serve")
    record(store, run, key.fingerprint, paid(0.004), "first")
    gate.note(key.fingerprint, paid(0.004))
    limits = await gate.admit(key.fingerprint, "pipeline", "p", RequestLimits())
    assert limits.budget_usd == pytest.approx(0.006)
    gate.note(key.fingerprint, paid(0.007))
    with pytest.raises(ApiError) as refused:
        await gate.admit(key.fingerprint, "pipeline", "p", RequestLimits())
    assert refused.value.status == 402
