"""Storage: migrations up and down, exactly-once items, traces, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, inspect, text

from signoria.orchestrator.pipeline import Pipeline
from signoria.orchestrator.result import Aggregate, AskResult, CascadeStep, ExpertCall
from signoria.orchestrator.storage import StorageError, Store
from signoria.orchestrator.storage.migrations_api import current_revision, downgrade, upgrade
from tests.conftest import ROOT, scripted
from tests.server_process import running_server
from tests.test_router_r1_loop import QUESTION, answer, ask, config, route

TABLES = {
    "runs",
    "items",
    "routing_decisions",
    "model_calls",
    "aggregations",
    "aggregation_inputs",
    "scores",
    "run_metrics",
    "feedback",
    "api_keys",
    "key_admissions",
    "response_cache",
}


async def voted_result() -> AskResult:
    from signoria.orchestrator.aggregators.majority import MajorityParams, MajorityVote
    from signoria.orchestrator.limits import Limits
    from signoria.routers.fixed import FixedRouter, FixedRouterParams

    experts = {
        e.card.name: e
        for e in (
            scripted("a", answer="12"),
            scripted("b", answer="13"),
            scripted("c", answer="12"),
        )
    }
    pipeline = Pipeline(
        name="vote",
        router=FixedRouter(FixedRouterParams(experts=("a", "b", "c"))),
        aggregator=MajorityVote(MajorityParams(answer="number")),
        limits=Limits(),
    )
    return await pipeline.run("6 + 6?", experts)


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'signoria.db'}"


def test_migrations_up_and_down_on_sqlite(tmp_path: Path) -> None:
    engine = create_engine(sqlite_url(tmp_path))
    upgrade(engine)
    assert current_revision(engine) == "0009"
    assert set(inspect(engine).get_table_names()) >= TABLES
    downgrade(engine, "base")
    assert current_revision(engine) is None
    assert not TABLES & set(inspect(engine).get_table_names())
    upgrade(engine)
    assert set(inspect(engine).get_table_names()) >= TABLES


def cascaded_result() -> AskResult:
    """A cascade that doubted its cheap stage and accepted the strong one (built by hand:
    storage keeps the steps whatever policy decided them)."""
    steps = (
        CascadeStep(stage=0, models=("cheap",), score=0.4, gain=0.35, extra_cost=0.002,
                    accept=False, answer="A", next_stage=1, value_usd=0.0375),
        CascadeStep(stage=1, models=("strong",), score=1.0, gain=0.0, extra_cost=None,
                    accept=True, answer="B"),
    )  # fmt: skip
    return AskResult(
        answer="B",
        pipeline="cascade",
        calls=(
            ExpertCall(expert="cheap", slot=0, text="A", cost=0.001),
            ExpertCall(expert="strong", slot=1, text="B", cost=0.002),
        ),
        cost=0.003,
        latency_s=0.1,
        aggregation=Aggregate(
            aggregator="cascade", text="B", chosen=(1,), discarded=(0,), rounds=2, steps=steps
        ),
    )


async def exercise_traces(store: Store) -> None:
    """A cascade's steps and a routing policy's turns read back typed, as they were."""
    policy = await ask(config([route("cheap"), "no tags", answer("B")]))
    cascade = cascaded_result()
    run = store.create_run(kind="eval", run_id="traces")
    store.record_item(run, item_key="r1", query=QUESTION, result=policy)
    store.record_item(run, item_key="cascade", query="?", result=cascade)
    by_key = {item.item_key: item for item in store.items(run)}
    [turns] = by_key["r1"].aggregations
    assert policy.aggregation is not None and turns.turns == policy.aggregation.turns
    assert [t.action for t in turns.turns] == ["route", "malformed", "answer"]
    assert turns.turns[0].expert == "cheap" and turns.turns[0].slot == 0
    assert turns.turns[1].note == "the turn must start with <think> ... </think>"
    assert turns.steps == ()
    [steps] = by_key["cascade"].aggregations
    assert cascade.aggregation is not None and steps.steps == cascade.aggregation.steps
    assert steps.turns == ()


def upgrade_over_stored_rows(engine: Engine) -> None:
    """0008 -> head on a database that already holds an aggregation: the old row reads
    back with an empty trace, and new rows keep theirs."""
    upgrade(engine, "0008")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO runs (id, kind, config, status, created_at)"
                " VALUES ('old', 'eval', '{}', 'complete', CURRENT_TIMESTAMP)"
            )
        )
        item = conn.execute(
            text(
                "INSERT INTO items (run_id, item_key, query, answer, created_at)"
                " VALUES ('old', 'q1', '6 + 6?', '12', CURRENT_TIMESTAMP) RETURNING id"
            )
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO aggregations (item_id, aggregator, text, votes, rounds)"
                " VALUES (:item, 'majority', '12', '{\"12\": 2}', 1)"
            ),
            {"item": item},
        )
    upgrade(engine)
    assert current_revision(engine) == "0009"
    store = Store(engine)
    [old] = store.items("old")
    [aggregation] = old.aggregations
    assert (aggregation.text, aggregation.votes) == ("12", {"12": 2})
    assert (aggregation.steps, aggregation.turns) == ((), ())
    store.record_item("old", item_key="q2", query="?", result=cascaded_result())
    assert len(store.items("old")[1].aggregations[0].steps) == 2
    downgrade(engine, "0008")
    assert {c["name"] for c in inspect(engine).get_columns("aggregations")}.isdisjoint(
        {"steps", "turns"}
    )
    downgrade(engine, "base")


def test_upgrade_from_0008_on_sqlite(tmp_path: Path) -> None:
    engine = create_engine(sqlite_url(tmp_path))
    upgrade_over_stored_rows(engine)
    engine.dispose()


async def test_traces_on_sqlite(tmp_path: Path) -> None:
    store = Store.open(sqlite_url(tmp_path))
    await exercise_traces(store)
    store.close()


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    store = Store.open(sqlite_url(tmp_path))
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
    store.close()


KILLED_WRITER = """
import os, signal, sys
from signoria.orchestrator.storage import Store
store = Store.open(sys.argv[1])
run = store.create_run(kind="serve", run_id="serve")
assert store.record_items(run, [{"item_key": "k", "query": "q", "error": "e"}]) == [True]
os.kill(os.getpid(), signal.SIGKILL)  # no close, no checkpoint
"""


def test_a_committed_record_survives_its_process_being_killed(tmp_path: Path) -> None:
    """synchronous=NORMAL skips the fsync at commit, not the write: the record is in the
    WAL once `record_items` returns, whatever then happens to the process."""
    url = sqlite_url(tmp_path)
    done = subprocess.run([sys.executable, "-c", KILLED_WRITER, url], capture_output=True)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    store = Store.open(url)
    assert store.done_keys("serve") == {"k"}
    store.close()


def exercise(store: Store, result: AskResult) -> None:
    run = store.create_run(kind="eval", pipeline="vote", benchmark="gsm8k", run_id="r1")
    assert store.record_item(
        run,
        item_key="q1",
        query="6 + 6?",
        reference="12",
        result=result,
        score=1.0,
        extracted="12",
        position=0,
    )
    # The same key again is refused, not duplicated: this is what makes resume exact.
    assert not store.record_item(run, item_key="q1", query="6 + 6?", result=result)
    assert store.record_item(run, item_key="q2", query="?", error="no expert answered", position=1)
    assert store.done_keys(run) == {"q1", "q2"}
    [first, second] = store.items(run)
    assert first.answer == "12" and first.scores[0].value == 1.0
    assert [c.expert for c in first.calls] == ["a", "b", "c"]
    assert first.routing[0].router == "fixed"
    [aggregation] = first.aggregations
    assert aggregation.votes == {"12": 2, "13": 1}
    assert second.error == "no expert answered" and second.calls == ()
    store.finish_run(run, {"accuracy": 0.5, "cost": None})
    store.finish_run(run, {"accuracy": 0.5, "cost": 0.0})  # idempotent: updates in place
    assert store.metrics(run) == {"accuracy": 0.5, "cost": 0.0}
    assert store.require_run(run).status == "complete"
    # `signoria runs list`: counted in SQL; an item of unknown cost makes the sum unknown.
    other = store.create_run(kind="eval", pipeline="vote", run_id="r2")
    store.record_item(other, item_key="q1", query="6 + 6?", result=result, score=0.0)
    summaries = {s.run.id: s for s in store.run_summaries("eval")}
    assert (summaries["r1"].items, summaries["r1"].scored, summaries["r1"].accuracy) == (2, 1, 1.0)
    assert summaries["r1"].cost is None and summaries["r1"].run.status == "complete"
    assert (summaries["r2"].items, summaries["r2"].accuracy, summaries["r2"].cost) == (1, 0.0, 0.0)
    assert store.run_summaries("serve") == []
    # Resuming the same id is allowed, with another pipeline it is not.
    assert store.create_run(kind="eval", pipeline="vote", benchmark="gsm8k", run_id="r1") == "r1"
    with pytest.raises(StorageError, match="exists with pipeline 'vote'"):
        store.create_run(kind="eval", pipeline="single", benchmark="gsm8k", run_id="r1")


async def test_items_with_traces_on_sqlite(tmp_path: Path) -> None:
    store = Store.open(sqlite_url(tmp_path))
    exercise(store, await voted_result())
    with store.engine.connect() as conn:
        inputs = conn.execute(
            text(
                "SELECT ai.position, ai.outcome FROM aggregation_inputs ai"
                " JOIN aggregations a ON ai.aggregation_id = a.id"
                " JOIN items i ON a.item_id = i.id WHERE i.run_id = 'r1' ORDER BY ai.position"
            )
        ).all()
    assert [tuple(row) for row in inputs] == [(0, "chosen"), (1, "discarded"), (2, "chosen")]
    store.close()


def test_concurrent_writers_store_each_key_once(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    store = Store.open(url)
    run = store.create_run(kind="eval", pipeline="p", run_id="race")
    stores = [Store.open(url) for _ in range(4)]
    keys = [f"k{i % 10}" for i in range(40)]  # every key written 4 times
    with ThreadPoolExecutor(4) as pool:
        stored = list(
            pool.map(
                lambda pair: stores[pair[0] % 4].record_item(run, item_key=pair[1], query="q"),
                enumerate(keys),
            )
        )
    assert sum(stored) == 10 and store.count_items(run) == 10


def test_bad_database_url_is_a_clear_error() -> None:
    with pytest.raises(StorageError, match="cannot open database"):
        Store.open("nosuchdialect://x")
    with pytest.raises(StorageError, match="no run 'ghost'"):
        Store.open("sqlite://").require_run("ghost")


async def test_same_behaviour_on_postgresql(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    upgrade(engine)
    assert set(inspect(engine).get_table_names()) >= TABLES
    downgrade(engine, "base")
    assert not TABLES & set(inspect(engine).get_table_names())
    upgrade_over_stored_rows(engine)
    engine.dispose()
    store = Store.open(postgres_url)
    exercise(store, await voted_result())
    await exercise_traces(store)
    store.close()


def test_two_server_instances_share_one_postgresql_database(
    postgres_url: str, tmp_path: Path
) -> None:
    """The REST server keeps no state a second instance would need: behind a load
    balancer, both serve and both record into the same database."""
    config = str(ROOT / "tests" / "configs" / "server_faults.yaml")
    body = {"model": "signoria/quick", "messages": [{"role": "user", "content": "hi"}]}
    with (
        running_server("-c", config, "--db", postgres_url, log=tmp_path / "a.log") as a,
        running_server("-c", config, "--db", postgres_url, log=tmp_path / "b.log") as b,
    ):

        async def hammer() -> list[int]:
            async with httpx.AsyncClient(timeout=30) as client:
                posts = [
                    client.post(f"{server.base_url}/v1/chat/completions", json=body)
                    for server in (a, b)
                    for _ in range(20)
                ]
                return [r.status_code for r in await asyncio.gather(*posts)]

        assert asyncio.run(hammer()) == [200] * 40
    store = Store.open(postgres_url)
    serve_runs = store.runs(kind="serve")
    assert len(serve_runs) == 2
    assert [store.count_items(r.id) for r in serve_runs] == [20, 20]
    store.close()
