"""PostgreSQL's one-statement record write: the same rows as the ORM's, in two round trips,
all or nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import DataError

from signoria.orchestrator.result import AskResult
from signoria.orchestrator.storage import Store
from signoria.orchestrator.storage.rows import ItemFields, new_item
from signoria.orchestrator.storage.schema import AggregationInput, Item, ModelCall
from tests.test_router_r1_loop import QUESTION, answer, ask, config, route
from tests.test_storage import cascaded_result, voted_result


@pytest.fixture
def store(postgres_url: str) -> Iterator[Store]:
    store = Store.open(postgres_url)
    yield store
    store.close()


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


async def test_the_same_records_as_the_orm_in_two_statements(store: Store) -> None:
    fields = await entries()
    orm_run = store.create_run(kind="eval", run_id="orm")
    with store.session() as s:  # the ORM's unit of work, as SQLite writes
        s.add_all(new_item(orm_run, **entry) for entry in fields)
    run = store.create_run(kind="eval", run_id="one")
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        assert store.record_items(run, fields) == [True] * 4
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    assert len(statements) == 2, statements  # the ids, then every row
    assert comparable(store, run) == comparable(store, orm_run)
    # Each aggregation input points at its own item's call, not the other run's twin.
    with store.session() as s:
        links = s.execute(
            select(Item.run_id, ModelCall.item_id == Item.id)
            .join(ModelCall, ModelCall.item_id == Item.id)
            .join(AggregationInput, AggregationInput.call_id == ModelCall.id)
        ).all()
    assert sorted({tuple(link) for link in links}) == [("one", True), ("orm", True)]


async def test_a_batch_is_all_or_nothing(store: Store) -> None:
    run = store.create_run(kind="serve", run_id="serve")
    result: AskResult = await voted_result()
    good: ItemFields = {"item_key": "good", "query": "q", "result": result}
    too_long: ItemFields = {"item_key": "k" * 300, "query": "q", "result": result}
    with pytest.raises(DataError):
        store.record_items(run, [good, too_long])
    with store.session() as s:
        calls = select(func.count()).select_from(ModelCall).join(Item).where(Item.run_id == run)
        assert s.scalar(calls) == 0
    assert store.count_items(run) == 0
    # A key already stored refuses that entry alone; the rest of the batch is stored.
    assert store.record_items(run, [good]) == [True]
    fresh: ItemFields = {"item_key": "fresh", "query": "q", "result": result}
    assert store.record_items(run, [good, fresh]) == [False, True]
    assert store.done_keys(run) == {"good", "fresh"}
    assert [len(item.calls) for item in store.items(run)] == [3, 3]
