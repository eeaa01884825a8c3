"""Failure paths and recording of the server, driven by deterministic scripted experts.

Scripted experts (see agents/backends/scripted.py) make hangs, provider errors and slow
calls reproducible; the server, its CLI, uvicorn and the SQLite store are all real.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from signoria.orchestrator.storage import Store
from tests.conftest import ROOT
from tests.server_process import RunningServer, running_server

FAULTS = ROOT / "tests" / "configs" / "server_faults.yaml"
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'x.db'}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, db_url: str) -> Iterator[RunningServer]:
    log = tmp_path_factory.mktemp("server") / "server.log"
    args = ("--config", str(FAULTS), "--db", db_url, "--max-concurrent", "1")
    with running_server(*args, log=log) as running:  # no keys: fine on loopback
        yield running


@pytest.fixture(scope="module")
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        yield client


def post(http: httpx.Client, model: str, **extra: Any) -> httpx.Response:
    return http.post("/v1/chat/completions", json={"model": model, "messages": HI, **extra})


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_keyless_loopback_server_answers_with_a_scripted_expert(http: httpx.Client) -> None:
    response = post(http, "signoria/quick")
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "forty-two"
    bare = post(http, "quick")  # a bare pipeline name is the same pipeline
    assert bare.status_code == 200 and bare.json()["signoria"]["pipeline"] == "quick"
    raw = post(http, "fixed")  # a raw expert id runs that expert alone
    assert raw.json()["signoria"]["pipeline"] == "fixed"
    assert raw.json()["choices"][0]["message"]["content"] == "forty-two"


def test_no_expert_answering_is_503_with_the_reason(http: httpx.Client) -> None:
    response = post(http, "signoria/dead")
    assert response.status_code == 503
    error = error_of(response)
    assert error["type"] == "server_error" and error["code"] == "pipeline_failed"
    assert "no expert answered (dead: 503 Service Unavailable)" in error["message"]


def test_a_hanging_expert_past_its_timeout_is_504(http: httpx.Client) -> None:
    response = post(http, "signoria/stuck")
    assert response.status_code == 504
    error = error_of(response)
    assert error["code"] == "pipeline_timeout"
    assert "timeout after 0.5s" in error["message"]


def test_the_extension_deadline_tightens_the_pipeline(http: httpx.Client) -> None:
    response = post(http, "signoria/slow", signoria={"deadline_s": 0.2})
    assert response.status_code == 504
    assert "timeout after 0.2s" in error_of(response)["message"]


async def test_above_max_concurrent_is_429(server: RunningServer) -> None:
    body = {"model": "signoria/slow", "messages": HI}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        responses = await asyncio.gather(
            client.post("/v1/chat/completions", json=body),
            client.post("/v1/chat/completions", json=body),
        )
    assert sorted(r.status_code for r in responses) == [200, 429]
    [limited] = [r for r in responses if r.status_code == 429]
    error = error_of(limited)
    assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
    assert limited.headers["retry-after"] == "1"


def test_text_parts_are_joined_and_stop_cuts_the_answer(http: httpx.Client) -> None:
    parts = [{"type": "text", "text": "alpha beta"}, {"type": "text", "text": "STOP gamma"}]
    messages = [{"role": "developer", "content": "be brief"}, {"role": "user", "content": parts}]
    body = {"model": "echo", "messages": messages, "stop": ["STOP", "zeta"]}
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["choices"][0]["message"]["content"] == "alpha beta\n"
    assert data["signoria"]["aggregation"]["text"] == "alpha beta\nSTOP gamma"


def test_every_completion_is_recorded_with_its_trace(http: httpx.Client, db_url: str) -> None:
    ok = post(http, "signoria/quick", user="tester")
    failed = post(http, "signoria/dead")
    assert (ok.status_code, failed.status_code) == (200, 503)
    store = Store.open(db_url)
    try:
        [run] = store.runs(kind="serve")
        assert run.config["server"]["max_concurrent"] == 1
        assert "api_keys" not in str(run.config)
        items = {item.item_key: item for item in store.items(run.id)}
    finally:
        store.close()
    good = items[ok.headers["x-request-id"]]
    assert good.query == "hi" and good.answer == "forty-two" and good.error is None
    assert [c.expert for c in good.calls] == ["fixed"]
    bad = items[failed.headers["x-request-id"]]
    assert bad.answer is None and "no expert answered" in (bad.error or "")
    assert [(c.expert, c.error) for c in bad.calls] == [("dead", "dead: 503 Service Unavailable")]


def test_shutdown_marks_the_run_complete(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'own.db'}"
    with running_server("--config", str(FAULTS), "--db", url, log=tmp_path / "log") as server:
        with httpx.Client(base_url=server.base_url) as client:
            assert post(client, "signoria/quick").status_code == 200
            assert post(client, "signoria/dead").status_code == 503
        # uvicorn re-raises SIGTERM after its graceful shutdown, so the code is -15.
        server.stop()
        assert "Application shutdown complete" in server.log_tail()
    store = Store.open(url)
    try:
        [run] = store.runs(kind="serve")
        assert run.status == "complete"
        assert store.metrics(run.id) == {"requests": 2.0, "failed": 1.0}
        assert store.count_items(run.id) == 2
    finally:
        store.close()
