"""API keys with their own limits (issue #14, operations item 1), through the real server.

Keys are created with the real CLI (`signoria keys create`) in a real SQLite file (and a
throwaway PostgreSQL cluster for two instances), and every limit is checked through
`signoria serve` on 127.0.0.1 with httpx and the official `openai` client. The experts
are `scripted` with a price (fault injection: known costs), so spend is exact.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import openai
import pytest
from sqlalchemy import select

from signoria.orchestrator.keylimits import KeyLimits
from signoria.orchestrator.storage import Store
from signoria.orchestrator.storage.keys import KeyStore, key_fingerprint
from signoria.orchestrator.storage.schema import Item, ModelCall, utcnow
from signoria.orchestrator.storage.store import StorageError
from tests.conftest import ROOT
from tests.server_process import SIGNORIA, RunningServer, running_server, server_env

PRICE = 100.0  # USD per 1M tokens: 1e-4 a token, so a request costs about 5e-4
CONFIG = f"""
default_pipeline: quick
models:
  fixed: {{backend: scripted, answer: "forty two", input_price: {PRICE}, output_price: {PRICE}}}
  other: {{backend: scripted, answer: "other", input_price: {PRICE}, output_price: {PRICE}}}
pipelines:
  quick:
    router: {{name: fixed, experts: [fixed]}}
    aggregator: first
    limits: {{max_tokens: 8, retries: 0}}
  elsewhere:
    router: {{name: fixed, experts: [other]}}
    aggregator: first
    limits: {{max_tokens: 8, retries: 0}}
"""
HI = [{"role": "user", "content": "hi"}]


def keys_cli(*args: str, db: str) -> dict[str, object]:
    done = subprocess.run(
        [SIGNORIA, "keys", *args, "--db", db, "--json"],
        capture_output=True,
        text=True,
        env=server_env(None),
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    parsed: dict[str, object] = json.loads(done.stdout)
    return parsed


def create_key(db: str, name: str, *flags: str) -> str:
    key = keys_cli("create", name, *flags, db=db)["key"]
    assert isinstance(key, str) and key.startswith("sk-signoria-")
    return key


def post(server: RunningServer, key: str | None, model: str = "signoria/quick") -> httpx.Response:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    return httpx.post(
        f"{server.base_url}/v1/chat/completions",
        json={"model": model, "messages": HI},
        headers=headers,
        timeout=30,
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "keys.yaml"
    path.write_text(CONFIG)
    return path


# The store, without a server.


def test_keys_are_stored_as_fingerprints_and_revoked_by_name(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'k.db'}")
    keys = KeyStore(store)
    assert not keys.any_keys()
    secret, record = keys.create("team-a", KeyLimits(requests_per_minute=5))
    assert keys.any_keys() and record.fingerprint == key_fingerprint(secret)
    assert secret not in json.dumps([r.__dict__ for r in keys.records()], default=str)
    with pytest.raises(StorageError, match="a key named 'team-a' exists"):
        keys.create("team-a", KeyLimits())
    assert keys.revoke("team-a").revoked_at is not None
    assert keys.find(record.fingerprint) is not None and not keys.find(record.fingerprint).active
    with pytest.raises(StorageError, match="no key named 'ghost'"):
        keys.revoke("ghost")
    store.close()


def test_admissions_count_one_minute_and_say_when_to_retry(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'k.db'}")
    keys = KeyStore(store)
    _, record = keys.create("r", KeyLimits(requests_per_minute=2))
    now = utcnow()
    assert keys.admit(record.fingerprint, 2, now) == 0.0
    assert keys.admit(record.fingerprint, 2, now + timedelta(seconds=10)) == 0.0
    assert keys.admit(record.fingerprint, 2, now + timedelta(seconds=15)) == pytest.approx(45)
    # A minute after the first admission there is room again.
    assert keys.admit(record.fingerprint, 2, now + timedelta(seconds=61)) == 0.0
    store.close()


async def test_the_key_lookup_cache_is_bounded() -> None:
    """A client sending random keys cannot grow the server's lookup cache without end."""
    from signoria.orchestrator.server.keys import _Recent

    recent = _Recent(ttl_s=60, size=3)
    fetched: list[str] = []
    for key in ("a", "b", "c", "d", "a"):
        await recent.get(key, lambda key=key: fetched.append(key) or key)  # type: ignore[func-returns-value]
    assert len(recent._values) == 3 and fetched == ["a", "b", "c", "d", "a"]
    assert await recent.get("d", lambda: "refetched") == "d"  # still cached


def test_a_bad_limit_names_the_flag(tmp_path: Path) -> None:
    done = subprocess.run(
        [SIGNORIA, "keys", "create", "x", "--rpm", "0", "--db", f"sqlite:///{tmp_path / 'k.db'}"],
        capture_output=True,
        text=True,
        env=server_env(None),
    )
    assert done.returncode == 2 and "--rpm" in done.stderr


# Through the real server.


@pytest.fixture(scope="module")
def keyed(
    config: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, str, dict[str, str]]]:
    """A server on a database that holds keys (and an operator key in the environment)."""
    root = tmp_path_factory.mktemp("keyed")
    db = f"sqlite:///{root / 'keys.db'}"
    keys = {
        "plain": create_key(db, "plain"),
        "quick-only": create_key(db, "quick-only", "--pipeline", "quick"),
        "broke": create_key(db, "broke", "--budget-day", "0"),
        "budget": create_key(db, "budget", "--budget-day", "0.002"),
        "rpm": create_key(db, "rpm", "--rpm", "3"),
        "tpm": create_key(db, "tpm", "--tpm", "2"),
        "doomed": create_key(db, "doomed"),
    }
    with running_server(
        "-c", str(config), "--db", db, log=root / "server.log", api_keys="operator-key"
    ) as server:
        yield server, db, keys


def test_database_keys_turn_authentication_on(
    keyed: tuple[RunningServer, str, dict[str, str]],
) -> None:
    server, _, keys = keyed
    assert post(server, None).status_code == 401
    assert post(server, "sk-signoria-made-up").status_code == 401
    assert post(server, keys["plain"]).status_code == 200
    assert post(server, "operator-key").status_code == 200  # the environment's keys too


def test_a_key_calls_only_its_allowed_models(
    keyed: tuple[RunningServer, str, dict[str, str]],
) -> None:
    server, _, keys = keyed
    refused = post(server, keys["quick-only"], "signoria/elsewhere")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "model_not_allowed"
    assert "quick" in refused.json()["error"]["message"]
    assert post(server, keys["quick-only"], "other").status_code == 403  # no raw experts listed
    assert post(server, keys["quick-only"]).status_code == 200
    listed = httpx.get(
        f"{server.base_url}/v1/models",
        headers={"Authorization": f"Bearer {keys['quick-only']}"},
    ).json()
    assert [m["id"] for m in listed["data"]] == ["signoria/quick"]


def test_a_spent_budget_is_a_402_the_openai_client_does_not_retry(
    keyed: tuple[RunningServer, str, dict[str, str]],
) -> None:
    server, _, keys = keyed
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=keys["broke"], max_retries=3)
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="signoria/quick", messages=HI)  # type: ignore[arg-type]
    assert caught.value.status_code == 402
    assert caught.value.code == "key_budget_exhausted"
    assert time.monotonic() - started < 2.0  # not retried with back-off


def test_spend_is_taken_from_recorded_calls_and_never_exceeds_the_budget(
    keyed: tuple[RunningServer, str, dict[str, str]],
) -> None:
    server, db, keys = keyed
    statuses = [post(server, keys["budget"]).status_code for _ in range(8)]
    assert statuses[:2] == [200, 200] and statuses[-1] == 402
    assert set(statuses) == {200, 402}
    listed = keys_cli("list", db=db)["keys"]
    assert isinstance(listed, list)
    spent = next(k for k in listed if k["name"] == "budget")["spend_day_usd"]
    store = Store.open(db)
    with store.session() as session:
        calls = session.scalars(
            select(ModelCall)
            .join(Item, ModelCall.item_id == Item.id)
            .where(Item.client == key_fingerprint(keys["budget"]))
        ).all()
        recorded = sum(c.cost or 0.0 for c in calls)
    store.close()
    assert spent == pytest.approx(recorded) and 0 < spent <= 0.002


def test_requests_per_minute_are_a_429_with_retry_after(
    keyed: tuple[RunningServer, str, dict[str, str]],
) -> None:
    server, _, keys = keyed
    responses = [post(server, keys["rpm"]) for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert 1 <= int(responses[-1].headers["Retry-After"]) <= 60
    assert responses[-1].json()["error"]["type"] == "rate_limit_error"
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=keys["rpm"], max_retries=0)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="signoria/quick", messages=HI)  # type: ignore[arg-type]
    # Refusals at the door are in /metrics with their status.
    scraped = httpx.get(
        f"{server.base_url}/metrics", headers={"Authorization": "Bearer operator-key"}
    ).text
    assert 'signoria_requests_total{model="signoria/quick",status="429"} 2.0' in scraped


def test_tokens_per_minute_count_recorded_tokens(
    keyed: tuple[RunningServer, str, dict[str, str]],
) -> None:
    server, _, keys = keyed
    assert post(server, keys["tpm"]).status_code == 200  # 3 tokens, over the 2 a minute
    refused = post(server, keys["tpm"])
    assert refused.status_code == 429 and "tokens per minute" in refused.json()["error"]["message"]


def test_a_revoked_key_stops_working_within_seconds(
    keyed: tuple[RunningServer, str, dict[str, str]],
) -> None:
    server, db, keys = keyed
    assert post(server, keys["doomed"]).status_code == 200
    keys_cli("revoke", "doomed", db=db)
    time.sleep(2.5)  # the server's key cache lives 2 s
    assert post(server, keys["doomed"]).status_code == 401


def test_public_bind_is_allowed_once_the_database_holds_keys(config: Path, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'public.db'}"
    cmd = [SIGNORIA, "serve", "-c", str(config), "--db", db, "--host", "0.0.0.0"]
    refused = subprocess.run(cmd, capture_output=True, text=True, env=server_env(None))
    assert refused.returncode == 2 and "signoria keys create" in refused.stderr
    key = create_key(db, "first")
    args = ("-c", str(config), "--db", db, "--host", "0.0.0.0")
    with running_server(*args, log=tmp_path / "public.log") as server:
        assert post(server, None).status_code == 401
        assert post(server, key).status_code == 200


# Two instances, one PostgreSQL database: one limit.


def test_two_instances_enforce_one_rate_limit(
    postgres_url: str, config: Path, tmp_path: Path
) -> None:
    key = create_key(postgres_url, "shared", "--rpm", "6")
    with (
        running_server("-c", str(config), "--db", postgres_url, log=tmp_path / "a.log") as a,
        running_server("-c", str(config), "--db", postgres_url, log=tmp_path / "b.log") as b,
    ):

        async def burst() -> list[int]:
            headers = {"Authorization": f"Bearer {key}"}
            body = {"model": "signoria/quick", "messages": HI}
            async with httpx.AsyncClient(timeout=30, headers=headers) as client:
                posts = [
                    client.post(f"{server.base_url}/v1/chat/completions", json=body)
                    for server in (a, b)
                    for _ in range(5)
                ]
                return [r.status_code for r in await asyncio.gather(*posts)]

        statuses = asyncio.run(burst())
    assert sorted(statuses) == [200] * 6 + [429] * 4


# Keys declared in the config.

DECLARED = (
    CONFIG
    + """
keys:
  team-a: {env: TEAM_A_KEY, requests_per_minute: 2, pipelines: [quick]}
"""
)


def test_keys_declared_in_the_config_are_kept_in_step_with_it(tmp_path: Path) -> None:
    config = tmp_path / "declared.yaml"
    config.write_text(DECLARED)
    db = f"sqlite:///{tmp_path / 'declared.db'}"
    secret = "sk-team-a-" + "7" * 24
    env = {"TEAM_A_KEY": secret}
    with running_server("-c", str(config), "--db", db, log=tmp_path / "a.log", env=env) as s:
        assert post(s, None).status_code == 401  # a declared key turns authentication on
        assert post(s, secret, "signoria/elsewhere").status_code == 403
        assert [post(s, secret).status_code for _ in range(2)] == [200, 200]
        assert post(s, secret).status_code == 429
    listed = keys_cli("list", db=db)["keys"]
    assert isinstance(listed, list) and [k["name"] for k in listed] == ["team-a"]
    assert listed[0]["limits"]["requests_per_minute"] == 2
    # Dropped from the config: revoked at the next start.
    config.write_text(CONFIG)
    with running_server("-c", str(config), "--db", db, log=tmp_path / "b.log", env=env) as s:
        assert post(s, secret).status_code == 401
    # A declared key whose variable is unset stops the server with the key's name.
    config.write_text(DECLARED)
    done = subprocess.run(
        [SIGNORIA, "serve", "-c", str(config), "--db", db],
        capture_output=True,
        text=True,
        env=server_env(None),
        timeout=60,
    )
    assert done.returncode == 2 and "keys.team-a.env: $TEAM_A_KEY is not set" in done.stderr
    # Declared keys are kept in the database: without recording there is none.
    unrecorded = subprocess.run(
        [SIGNORIA, "serve", "-c", str(config), "--no-record"],
        capture_output=True,
        text=True,
        env={**server_env(None), **env},
        timeout=60,
    )
    assert unrecorded.returncode == 2 and "declared keys need recording on" in unrecorded.stderr


def test_a_declared_key_naming_an_unknown_pipeline_points_at_it(tmp_path: Path) -> None:
    from signoria.errors import ConfigError
    from signoria.orchestrator.config import load_config

    config = tmp_path / "bad.yaml"
    config.write_text(CONFIG + "\nkeys:\n  k: {env: K, pipelines: [nope]}\n")
    with pytest.raises(ConfigError, match=r"keys\.k\.pipelines: unknown pipeline 'nope'"):
        load_config(config)
    config.write_text(CONFIG + "\nkeys:\n  k: {env: K, rpm: 3}\n")
    with pytest.raises(ConfigError, match=r"keys\.k\.rpm"):
        load_config(config)


async def test_a_request_the_in_flight_cap_refuses_never_counts_against_the_keys_rpm(
    tmp_path: Path,
) -> None:
    """One slow request holds the only slot; the three sent meanwhile are 429 at the door
    and write no admission, so the key's two requests a minute still admit a second."""
    path = tmp_path / "slow.yaml"
    path.write_text(CONFIG.replace('answer: "forty two"', 'answer: "forty two", latency_s: 1.5'))
    db = f"sqlite:///{tmp_path / 'slot.db'}"
    key = create_key(db, "slot", "--rpm", "2")
    args = ("--config", str(path), "--db", db, "--max-concurrent", "1")
    with running_server(*args, log=tmp_path / "server.log") as server:
        headers = {"Authorization": f"Bearer {key}"}
        body = {"model": "signoria/quick", "messages": HI}
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=30) as http:
            slow = asyncio.create_task(http.post("/v1/chat/completions", json=body))
            await asyncio.sleep(0.5)
            door = [await http.post("/v1/chat/completions", json=body) for _ in range(3)]
            assert [r.status_code for r in door] == [429, 429, 429]
            assert all(r.json()["error"]["code"] == "rate_limit_exceeded" for r in door)
            assert (await slow).status_code == 200
            second = await http.post("/v1/chat/completions", json=body)
            assert second.status_code == 200, second.text
            third = await http.post("/v1/chat/completions", json=body)
            assert third.status_code == 429 and "minute" in third.json()["error"]["message"]
