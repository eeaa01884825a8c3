"""The opt-in response cache (issue #14, operations item 3), through the real server with
a real SQLite file: deterministic requests only, per key unless shared, TTL, a config
change is a miss, a replay costs 0 and says so (header, trace, record)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from signoria.orchestrator.storage import Store
from tests.server_process import RunningServer, running_server

PRICE = 100.0
CONFIG = """
default_pipeline: quick
models:
  fixed: {{backend: scripted, answer: "{answer}", input_price: 100.0, output_price: 100.0}}
pipelines:
  quick:
    router: {{name: fixed, experts: [fixed]}}
    aggregator: first
    limits: {{max_tokens: 8}}
"""
HI = [{"role": "user", "content": "hi"}]
KEYS = "key-one,key-two"


def ask(server: RunningServer, key: str = "key-one", **extra: Any) -> httpx.Response:
    body = {"model": "signoria/quick", "messages": HI, **extra}
    return httpx.post(
        f"{server.base_url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def write_config(path: Path, answer: str) -> Path:
    path.write_text(CONFIG.format(answer=answer))
    return path


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, str]]:
    root = tmp_path_factory.mktemp("cache")
    config = write_config(root / "c.yaml", "forty two")
    db = f"sqlite:///{root / 'cache.db'}"
    args = ("-c", str(config), "--db", db, "--cache-ttl", "60")
    with running_server(*args, log=root / "s.log", api_keys=KEYS) as server:
        yield server, db


def test_a_deterministic_request_asked_again_is_replayed_at_no_cost(
    cached: tuple[RunningServer, str],
) -> None:
    server, db = cached
    first = ask(server, temperature=0)
    again = ask(server, temperature=0)
    assert first.headers["X-Signoria-Cache"] == "miss"
    assert again.headers["X-Signoria-Cache"] == "hit"
    one, two = first.json(), again.json()
    assert two["choices"][0]["message"] == one["choices"][0]["message"]
    assert one["signoria"]["cost"] > 0 and one["signoria"]["cached_from"] is None
    assert two["signoria"]["cost"] == 0.0 and two["signoria"]["calls"] == []
    assert two["signoria"]["cached_from"] == one["id"] != two["id"]
    assert two["usage"]["total_tokens"] == 0
    store = Store.open(db)
    items = {i.item_key: i for run in store.runs("serve") for i in store.items(run.id)}
    store.close()
    replay = items[two["id"]]
    assert replay.cached_from == one["id"] and replay.cost == 0.0 and replay.calls == ()
    assert items[one["id"]].cost == pytest.approx(one["signoria"]["cost"])


def test_a_seed_makes_a_request_cacheable_and_a_different_one_misses(
    cached: tuple[RunningServer, str],
) -> None:
    server, _ = cached
    assert ask(server, seed=7).headers["X-Signoria-Cache"] == "miss"
    assert ask(server, seed=7).headers["X-Signoria-Cache"] == "hit"
    assert ask(server, seed=8).headers["X-Signoria-Cache"] == "miss"
    assert ask(server, seed=7, max_tokens=4).headers["X-Signoria-Cache"] == "miss"
    scraped = httpx.get(
        f"{server.base_url}/metrics", headers={"Authorization": "Bearer key-one"}
    ).text
    hits = next(
        line
        for line in scraped.splitlines()
        if line.startswith('signoria_cache_lookups_total{result="hit"}')
    )
    assert float(hits.split()[-1]) >= 1


def test_sampled_requests_are_never_cached(cached: tuple[RunningServer, str]) -> None:
    server, _ = cached
    for extra in ({}, {"temperature": 0.7}, {}):
        response = ask(server, **extra)
        assert "X-Signoria-Cache" not in response.headers
        assert response.json()["signoria"]["cached_from"] is None


def test_one_keys_answers_never_reach_another(cached: tuple[RunningServer, str]) -> None:
    server, _ = cached
    assert ask(server, "key-one", seed=99).headers["X-Signoria-Cache"] == "miss"
    assert ask(server, "key-two", seed=99).headers["X-Signoria-Cache"] == "miss"
    assert ask(server, "key-two", seed=99).headers["X-Signoria-Cache"] == "hit"


def test_a_streamed_replay_carries_the_trace(cached: tuple[RunningServer, str]) -> None:
    server, _ = cached
    ask(server, seed=5)
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="key-one")
    stream = client.chat.completions.create(
        model="signoria/quick",
        messages=HI,  # type: ignore[arg-type]
        seed=5,
        stream=True,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "forty two"
    trace = json.loads(chunks[-1].model_dump_json())["signoria"]
    assert trace["cached_from"] is not None and trace["cost"] == 0.0


def test_shared_cache_ttl_and_config_changes(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'shared.db'}"
    config = write_config(tmp_path / "c.yaml", "forty two")
    args = ("--db", db, "--cache-ttl", "4", "--cache-shared")  # room for a busy machine
    with running_server("-c", str(config), *args, log=tmp_path / "a.log", api_keys=KEYS) as s:
        assert ask(s, "key-one", seed=1).headers["X-Signoria-Cache"] == "miss"
        assert ask(s, "key-two", seed=1).headers["X-Signoria-Cache"] == "hit"
        time.sleep(4.1)
        assert ask(s, "key-two", seed=1).headers["X-Signoria-Cache"] == "miss"  # expired
    # The same database, a changed pipeline: its answers are not the old ones.
    write_config(config, "forty-three")
    with running_server("-c", str(config), *args, log=tmp_path / "b.log", api_keys=KEYS) as s:
        changed = ask(s, "key-one", seed=1)
        assert changed.headers["X-Signoria-Cache"] == "miss"
        assert changed.json()["choices"][0]["message"]["content"] == "forty-three"


def test_no_cache_unless_asked(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", "forty two")
    args = ("-c", str(config), "--db", f"sqlite:///{tmp_path / 'off.db'}")
    with running_server(*args, log=tmp_path / "off.log", api_keys=KEYS) as server:
        for _ in range(2):
            response = ask(server, temperature=0)
            assert "X-Signoria-Cache" not in response.headers
            assert response.json()["signoria"]["cost"] > 0


def test_expired_entries_are_deleted_when_an_answer_is_cached(tmp_path: Path) -> None:
    from signoria.orchestrator.storage.cache import CacheStore

    store = Store.open(f"sqlite:///{tmp_path / 'purge.db'}")
    cache = CacheStore(store)
    cache.put("old", "req-1", {"answer": "1"}, ttl_s=0.05)
    time.sleep(0.1)
    assert cache.get("old") is None
    cache.put("new", "req-2", {"answer": "2"}, ttl_s=60)
    with store.session() as session:
        from sqlalchemy import select

        from signoria.orchestrator.storage.schema import CachedResponse

        assert session.scalars(select(CachedResponse.key)).all() == ["new"]
    store.close()
