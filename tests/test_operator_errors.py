"""An operator's usual mistakes get one line naming the cause and the fix (issue #17,
item 7): a plain path for the database, an unset provider key, a server that is not
running. Through the real CLI (a subprocess, as an operator runs it), the real server on
127.0.0.1 and real SQLite files; no request leaves the machine (refused loopback ports).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
import openai
import pytest

from signoria.orchestrator.storage import Store
from tests.conftest import ROOT
from tests.server_process import SIGNORIA, free_port, running_server, server_env

TRUTHFUL = str(ROOT / "tests" / "configs" / "truthful.yaml")
GSM8K = str(ROOT / "tests" / "fixtures" / "gsm8k.jsonl")
KEY_ENV = "SIGNORIA_TEST_UNSET_KEY"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = server_env(None)
    environment.pop(KEY_ENV, None)
    environment.pop("OPENAI_API_KEY", None)
    environment.update(env or {})
    return subprocess.run(
        [SIGNORIA, *args], capture_output=True, text=True, cwd=ROOT, env=environment, timeout=300
    )


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The error a failed command left: exactly one line on stderr, no traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def _remote_config(tmp_path: Path, port: int) -> Path:
    """Remote experts that cannot work here: keys that are not set, servers not running."""
    config = tmp_path / "remote.yaml"
    refused = f"http://127.0.0.1:{port}/v1"
    config.write_text(
        f"""
default_pipeline: keyed
models:
  keyed:
    backend: openai
    model: gpt-4o-mini
    base_url: "{refused}"
    api_key_env: {KEY_ENV}
  litellm-keyed: {{backend: litellm, model: openai/gpt-4o-mini, api_base: "{refused}"}}
  down: {{backend: openai, model: stub, base_url: "{refused}"}}
  litellm-down:
    backend: litellm
    model: openai/stub
    api_base: "{refused}"
    api_key_env: {KEY_ENV}
pipelines:
  keyed: {{router: {{name: fixed, experts: [keyed]}}, aggregator: first}}
  litellm-keyed: {{router: {{name: fixed, experts: [litellm-keyed]}}, aggregator: first}}
  down:
    router: {{name: fixed, experts: [down]}}
    aggregator: first
    limits: {{retries: 0}}
  litellm-down:
    router: {{name: fixed, experts: [litellm-down]}}
    aggregator: first
    limits: {{retries: 0}}
"""
    )
    return config


@pytest.mark.parametrize(
    ("pipeline", "variable"), [("keyed", KEY_ENV), ("litellm-keyed", "OPENAI_API_KEY")]
)
def test_an_unset_provider_key_is_one_line_and_exit_2(
    tmp_path: Path, pipeline: str, variable: str
) -> None:
    config = _remote_config(tmp_path, free_port())
    result = _run("ask", "-c", str(config), "-p", pipeline, "What is 2+2?")
    assert result.returncode == 2
    line = _one_line(result)
    assert f"${variable}, which is not set" in line
    assert f"export {variable}=" in line


def test_an_unset_key_under_json_is_a_configuration_error(tmp_path: Path) -> None:
    config = _remote_config(tmp_path, free_port())
    result = _run("ask", "-c", str(config), "-p", "keyed", "hi", "--json")
    assert result.returncode == 2
    error = json.loads(result.stdout)["error"]
    assert error["exit_code"] == 2 and f"${KEY_ENV}" in error["message"]
    # the trace beside it says the call was not made, not that the provider failed
    [call] = json.loads(result.stdout)["result"]["calls"]
    assert call["flags"] == ["misconfigured"]


@pytest.mark.parametrize("pipeline", ["down", "litellm-down"])
def test_a_refused_plain_http_connection_says_refused(tmp_path: Path, pipeline: str) -> None:
    port = free_port()
    config = _remote_config(tmp_path, port)
    result = _run("ask", "-c", str(config), "-p", pipeline, "hi", env={KEY_ENV: "set"})
    assert result.returncode == 1
    line = _one_line(result)
    assert f"connection refused by 127.0.0.1:{port}" in line
    assert "start the server or fix base_url" in line
    assert "ssl:default" not in line and "ConnectTimeout" not in line


def test_the_server_refuses_an_unconfigured_expert_without_retries(tmp_path: Path) -> None:
    config = _remote_config(tmp_path, free_port())
    db = tmp_path / "served.db"
    env = {KEY_ENV: ""}
    with running_server(
        "-c", str(config), "--db", str(db), log=tmp_path / "log", env=env
    ) as server:
        client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=2)
        with pytest.raises(openai.InternalServerError) as raised:
            client.chat.completions.create(
                model="signoria/keyed",
                messages=[{"role": "user", "content": "hi"}],
            )
    assert raised.value.status_code == 503
    assert raised.value.response.headers["x-should-retry"] == "false"
    body = raised.value.response.json()["error"]
    assert body["code"] == "expert_misconfigured" and f"${KEY_ENV}" in body["message"]
    store = Store.open(str(db))
    try:
        [run] = store.runs(kind="serve")
        assert len(store.items(run.id)) == 1  # asked once: the client did not retry
    finally:
        store.close()


def test_a_plain_path_in_signoria_db_is_sqlite_for_serve(tmp_path: Path) -> None:
    path = tmp_path / "not" / "yet" / "there.db"
    env = {"SIGNORIA_DB": str(path)}
    with running_server("-c", TRUTHFUL, log=tmp_path / "log", env=env) as server:
        reply = httpx.post(
            f"{server.base_url}/v1/chat/completions",
            json={"model": "signoria/plain", "messages": [{"role": "user", "content": "hi"}]},
            timeout=60,
        )
    assert reply.status_code == 200, reply.text
    store = Store.open(str(path))
    try:
        [run] = store.runs(kind="serve")
        assert [item.item_key for item in store.items(run.id)] == [reply.headers["x-request-id"]]
    finally:
        store.close()


@pytest.mark.parametrize("how", ["env", "flag"])
def test_a_plain_path_is_sqlite_for_eval_run_and_report(tmp_path: Path, how: str) -> None:
    path = tmp_path / "runs.db"
    flag = ["--db", str(path)] if how == "flag" else []
    env = {"SIGNORIA_DB": str(path)} if how == "env" else {}
    args = ["--benchmark", "gsm8k", "--data", GSM8K, "-c", TRUTHFUL, "-p", "plain"]
    run = _run("eval", "run", *args, "--run-id", "plain-path", "--limit", "2", *flag, env=env)
    assert run.returncode == 0, run.stderr
    out = ["--out", str(tmp_path / "report")]
    report = _run("eval", "report", "plain-path", "--json", *out, *flag, env=env)
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["summary"]["n"] == 2
    assert path.is_file()


@pytest.mark.parametrize(
    ("db", "code", "says"),
    [
        ("nosuch://x", 2, "give a SQLite file path or a URL"),
        ("mysql://user@host/db", 2, "give a SQLite file path or a URL"),
        (f"postgresql+psycopg://user:hunter2@127.0.0.1:{free_port()}/db", 1, "refused"),
        ("/proc/signoria/runs.db", 1, "cannot create /proc/signoria"),
    ],
)
def test_a_database_that_cannot_open_stops_serve_with_one_line(
    db: str, code: int, says: str
) -> None:
    started = time.monotonic()
    result = _run("serve", "--port", str(free_port()), "-c", TRUTHFUL, "--db", db)
    assert result.returncode == code
    line = _one_line(result)
    assert line.startswith("error: cannot open database") and says in line
    assert "hunter2" not in line
    assert time.monotonic() - started < 60  # before any model loads or a port is bound
