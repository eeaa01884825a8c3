"""The record writes that skip the ORM's unit of work (PostgreSQL's one statement, SQLite's
executemany per table): the same rows as the ORM's, in a fixed number of statements, all
or nothing."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import DataError, IntegrityError

from signoria.orchestrator.result import AskResult, ExpertCall
from signoria.orchestrator.storage import Store
from signoria.orchestrator.storage.rows import ItemFields, new_item
from signoria.orchestrator.storage.schema import (
    AggregationInput,
    AggregationRecord,
    Item,
    ModelCall,
    Run,
    utcnow,
)
from signoria.orchestrator.storage.store import _DIRECT_WRITES
from tests.test_router_r1_loop import QUESTION, answer, ask, config, route
from tests.test_storage import cascaded_result, sqlite_url, voted_result


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = sqlite_url(tmp_path)
    else:
        url = request.getfixturevalue("postgres_url")
    store = Store.open(url)
    yield store
    store.close()


def expected_statements(store: Store, tables: int) -> int:
    """PostgreSQL: the ids, then every row. SQLite: BEGIN IMMEDIATE, the highest ids, one
    executemany per table that has rows, COMMIT."""
    return 2 if store.engine.dialect.name == "postgresql" else 3 + tables


async def entries() -> list[ItemFields]:
    """Every shape of trace: votes with chosen and discarded inputs and a score, a cascade's
    steps, a routing policy's turns, an error with no calls."""
    policy = await ask(config([route("cheap"), "no tags", answer("B")]))
    return [
        {"item_key": "vote", "query": "6 + 6?", "reference": "12", "result": await voted_result(),
         "score": 1.0, "extracted": "12", "position": 0, "client": "fp"},
        {"item_key": "cascade", "query": "?", "result": cascaded_result(), "position": 1},
        {"item_key": "policy", "query": QUESTION, "result": policy, "position": 2},
        {"item_key": "failed", "query": "?", "error": "no expert answered", "position": 3},
    ]  # fmt: skip


def comparable(store: Store, run: str) -> list[dict[str, Any]]:
    return [item.model_dump(exclude={"created_at"}) for item in store.items(run)]


async def test_the_same_records_as_the_orm_in_a_fixed_number_of_statements(
    store: Store,
) -> None:
    fields = await entries()
    orm_run = store.create_run(kind="eval", run_id="orm")
    with store.session() as s:  # the ORM's unit of work, the reference
        written = [new_item(orm_run, **entry) for entry in fields]
        s.add_all(written)
        s.flush()
        tables = {type(obj).__table__ for obj in s.identity_map.values()}
    run = store.create_run(kind="eval", run_id="one")
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        assert store.record_items(run, fields) == [True] * 4
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    tables_with_rows = len(tables - {Run.__table__})
    assert len(statements) == expected_statements(store, tables_with_rows), statements
    assert comparable(store, run) == comparable(store, orm_run)
    written, reference = store.items(run)[0].created_at, store.items(orm_run)[0].created_at
    assert type(written) is type(reference) and abs(written - reference).total_seconds() < 60
    # Each aggregation input points at its own item's call, not the other run's twin.
    with store.session() as s:
        links = s.execute(
            select(Item.run_id, ModelCall.item_id == Item.id)
            .join(ModelCall, ModelCall.item_id == Item.id)
            .join(AggregationInput, AggregationInput.call_id == ModelCall.id)
        ).all()
    assert sorted({tuple(link) for link in links}) == [("one", True), ("orm", True)]


def stored_calls(store: Store, run: str) -> int:
    with store.session() as s:
        calls = select(func.count()).select_from(ModelCall).join(Item).where(Item.run_id == run)
        return int(s.scalar(calls) or 0)


async def test_a_batch_is_all_or_nothing(store: Store) -> None:
    run = store.create_run(kind="serve", run_id="serve")
    result: AskResult = await voted_result()
    good: ItemFields = {"item_key": "good", "query": "q", "result": result}
    # A call without its token count breaks NOT NULL in the calls' table, after the items'
    # rows are written: the whole batch goes, the items' rows with it.
    broken_call = result.calls[0].model_copy(update={"tokens_in": None})
    broken = result.model_copy(update={"calls": (broken_call, *result.calls[1:])})
    bad_rows = [new_item(run, **good), new_item(run, item_key="bad", query="q", result=broken)]
    with pytest.raises(IntegrityError), store._autocommit.connect() as connection:
        _DIRECT_WRITES[store.engine.dialect.name](connection, bad_rows)
    assert (store.count_items(run), stored_calls(store, run)) == (0, 0)
    if store.engine.dialect.name == "postgresql":  # refused by VARCHAR(256), before writing
        too_long: ItemFields = {"item_key": "k" * 300, "query": "q", "result": result}
        with pytest.raises(DataError):
            store.record_items(run, [good, too_long])
        assert (store.count_items(run), stored_calls(store, run)) == (0, 0)
    # A key already stored refuses that entry alone; the rest of the batch is stored.
    assert store.record_items(run, [good]) == [True]
    fresh: ItemFields = {"item_key": "fresh", "query": "q", "result": result}
    assert store.record_items(run, [good, fresh]) == [False, True]
    assert store.done_keys(run) == {"good", "fresh"}
    assert [len(item.calls) for item in store.items(run)] == [3, 3]


async def test_sqlite_writers_in_parallel_never_share_an_id(tmp_path: Path) -> None:
    """Two stores on one file (two server workers): the ids each batch numbers its rows
    with are read under the write lock, so concurrent batches never collide, and the ORM's
    own writes in between keep their ids too."""
    url = sqlite_url(tmp_path)
    result: AskResult = await voted_result()
    stores = [Store.open(url), Store.open(url, migrate=False)]
    run = stores[0].create_run(kind="serve", run_id="serve")

    def write(worker: int) -> None:
        store = stores[worker]
        for batch in range(15):
            keys = [f"{worker}-{batch}-{i}" for i in range(3)]
            entries: list[ItemFields] = [
                {"item_key": k, "query": k, "result": result} for k in keys
            ]
            if batch % 5 == 4:  # the ORM's unit of work, as `record_item` elsewhere writes
                with store.session() as s:
                    s.add_all(new_item(run, **entry) for entry in entries)
            else:
                assert store.record_items(run, entries) == [True] * 3

    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(write, [0, 1]))
        items = stores[0].items(run)
        assert len(items) == 90 and all(len(item.calls) == 3 for item in items)
        # Every aggregation input names a call of its own aggregation's item.
        with stores[0].session() as s:
            links = s.execute(
                select(AggregationRecord.item_id, ModelCall.item_id)
                .select_from(AggregationInput)
                .join(AggregationRecord, AggregationInput.aggregation_id == AggregationRecord.id)
                .join(ModelCall, AggregationInput.call_id == ModelCall.id)
            ).all()
        assert len(links) == 90 * 3 and all(own == other for own, other in links)
    finally:
        for store in stores:
            store.close()


def test_values_read_back_exactly(store: Store) -> None:
    """Values that a text or array encoding could bend read back as given: a float whose
    shortest form needs 17 digits, quotes, backslashes, braces and the word NULL inside
    text, an empty JSON list, a missing reference as SQL NULL, and a creation time
    within the write."""
    cost = 0.1 + 0.2  # 0.30000000000000004: a float whose shortest repr has 17 digits
    call = ExpertCall(expert="x", slot=0, text='é \\ " {a,b} NULL', cost=cost, tokens_in=3)
    result = AskResult(answer="NULL", pipeline="p", calls=(call,), cost=cost, latency_s=1e-7)
    run = store.create_run(kind="serve", run_id="exact")
    before = utcnow()
    store.record_items(run, [{"item_key": "k", "query": '{"a": [1, 2]}', "result": result}])
    with store.session() as s:
        item = s.scalars(select(Item).where(Item.run_id == run)).one()
        stored = s.scalars(select(ModelCall).where(ModelCall.item_id == item.id)).one()
        assert (item.cost, item.latency_s, stored.cost) == (cost, 1e-7, cost)
        assert (item.answer, item.query, item.reference) == ("NULL", '{"a": [1, 2]}', None)
        assert stored.text == 'é \\ " {a,b} NULL' and stored.tool_calls == []
        assert before <= item.created_at <= utcnow()
