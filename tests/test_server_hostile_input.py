"""The server against a hostile client: bodies no stage can hold, a lost record, slow
headers, cross-site requests and wrongly typed fields, through a real `signoria serve`
(or, for the lost record, a real uvicorn in this process over a store that fails).

Scripted experts (tests/configs/server_faults.yaml) keep every run deterministic and
free of model loads; the server, uvicorn, httpx and SQLite are the real ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import resource
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import uvicorn

from signoria.orchestrator.sdk import Orchestrator
from signoria.orchestrator.server.app import create_app
from signoria.orchestrator.server.settings import ServerSettings
from signoria.orchestrator.storage import Store
from tests.server_process import RunningServer, free_port, running_server
from tests.test_server_faults import FAULTS

HI = [{"role": "user", "content": "hi"}]
JSON = {"Content-Type": "application/json"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'hostile.db'}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, db_url: str) -> Iterator[RunningServer]:
    log = tmp_path_factory.mktemp("server") / "server.log"
    with running_server("--config", str(FAULTS), "--db", db_url, log=log) as running:
        yield running


@pytest.fixture(scope="module")
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        yield client


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    return error


def rows(db_url: str) -> set[str]:
    """The request ids the server's run has recorded so far."""
    store = Store.open(db_url)
    try:
        [run] = store.runs(kind="serve")
        return {item.item_key for item in store.items(run.id)}
    finally:
        store.close()


def chat_bytes(**fields: str) -> bytes:
    """A chat body with raw JSON text for some fields (values json.dumps cannot write)."""
    body = {"model": "echo", "messages": HI}
    text = json.dumps(body)[:-1]
    return (text + "".join(f", {json.dumps(k)}: {v}" for k, v in fields.items()) + "}").encode()


# --- 3. Inputs that produced a 500 or lost the record --------------------------------

HOSTILE: list[tuple[str, bytes, int, str, str | None]] = [
    ("deep array", b"[" * 100_000, 400, "invalid_json", None),
    ("deep object", b'{"a":' * 50_000 + b"1" + b"}" * 50_000, 400, "invalid_json", None),
    ("nested past 32", chat_bytes(metadata="[" * 40 + "]" * 40), 400, "invalid_json", None),
    ("5000-digit int", chat_bytes(metadata="1" * 5000), 400, "invalid_value", None),
    ("seed 2**70", chat_bytes(seed=str(2**70)), 400, "invalid_value", "seed"),
    ("int in ignored field", chat_bytes(top_k=str(-(2**64))), 400, "invalid_value", "top_k"),
    ("max_tokens 2**64", chat_bytes(max_tokens=str(2**64)), 400, "invalid_value", "max_tokens"),
    ("NaN", chat_bytes(temperature="NaN"), 400, "invalid_value", None),
    ("Infinity", chat_bytes(temperature="-Infinity"), 400, "invalid_value", None),
    (
        "1e400",
        chat_bytes(signoria='{"budget_usd": 1e400}'),
        400,
        "invalid_value",
        "signoria.budget_usd",
    ),
    (
        "lone surrogate",
        b'{"model": "echo", "messages": [{"role": "user", "content": "a\\ud800b"}]}',
        400,
        "invalid_value",
        "messages.0.content",
    ),
    (
        "surrogate in a part",
        b'{"model": "echo", "messages": [{"role": "user", "content": '
        b'[{"type": "text", "text": "\\udfff"}]}]}',
        400,
        "invalid_value",
        "messages.0.content.0.text",
    ),
    (
        "surrogate in a key",
        b'{"model": "echo", "messages": [{"role": "user", "content": "hi"}], "\\ud800": 1}',
        400,
        "invalid_value",
        None,
    ),
    (
        "surrogate, streamed",
        b'{"model": "echo", "stream": true, "messages": [{"role": "user", "content": "\\ud83d"}]}',
        400,
        "invalid_value",
        "messages.0.content",
    ),
    (
        "NUL",
        b'{"model": "echo", "messages": [{"role": "user", "content": "a\\u0000b"}]}',
        400,
        "invalid_value",
        "messages.0.content",
    ),
    ("seed over the column", chat_bytes(seed=str(2**40)), 422, "invalid_schema", "seed"),
    ("negative seed", chat_bytes(seed="-1"), 422, "invalid_schema", "seed"),
    # Expires before any call: the client's impossible limit, not a 504 clients retry.
    (
        "deadline shorter than any call",
        chat_bytes(signoria='{"deadline_s": 5e-324}'),
        422,
        "invalid_schema",
        "signoria.deadline_s",
    ),
]


@pytest.mark.parametrize(
    ("raw", "status", "code", "param"),
    [case[1:] for case in HOSTILE],
    ids=[case[0] for case in HOSTILE],
)
def test_hostile_bodies_are_refused_before_any_expert_runs(
    http: httpx.Client, db_url: str, raw: bytes, status: int, code: str, param: str | None
) -> None:
    before = rows(db_url)
    response = http.post("/v1/chat/completions", content=raw, headers=JSON)
    assert response.status_code == status, response.text
    error = error_of(response)
    assert (error["code"], error["param"]) == (code, param), error
    assert "x-request-id" not in response.headers  # no pipeline ran
    assert rows(db_url) == before


def test_answered_requests_equal_stored_rows_under_hostile_inputs(
    http: httpx.Client, db_url: str
) -> None:
    before = rows(db_url)
    answered: list[str] = []
    for _, raw, _, _, _ in HOSTILE:
        for body in (raw, chat_bytes(seed="7"), chat_bytes(seed=str(2**31 - 1))):
            response = http.post("/v1/chat/completions", content=body, headers=JSON)
            assert response.status_code < 500, response.text
            if "x-request-id" in response.headers:
                assert response.headers.get("x-signoria-recorded") != "false"
                answered.append(response.headers["x-request-id"])
    failed = http.post("/v1/chat/completions", json={"model": "signoria/dead", "messages": HI})
    assert failed.status_code == 503
    answered.append(failed.headers["x-request-id"])
    assert len(answered) == 2 * len(HOSTILE) + 1
    assert rows(db_url) - before == set(answered)
    health = http.get("/health").json()
    assert health["recording"]["unrecorded"] == 0
    assert health["recording"]["recorded"] >= len(answered)


FEEDBACK_HOSTILE = [
    (b"[" * 100_000, "invalid_json", None),
    (b'{"request_id": "x", "score": 1' + b"0" * 5000 + b"}", "invalid_value", None),
    (b'{"request_id": "x", "score": NaN}', "invalid_value", None),
    (b'{"request_id": "x", "reference": "\\ud800"}', "invalid_value", "reference"),
    (b'{"request_id": "x", "score": 1, "comment": "a\\u0000"}', "invalid_value", "comment"),
    (b'{"request_id": "x", "score": true}', "invalid_value", "score"),
]


@pytest.mark.parametrize(("raw", "code", "param"), FEEDBACK_HOSTILE)
def test_hostile_feedback_bodies_are_400(
    http: httpx.Client, raw: bytes, code: str, param: str | None
) -> None:
    response = http.post("/v1/feedback", content=raw, headers=JSON)
    assert response.status_code == 400, response.text
    assert (error_of(response)["code"], error_of(response)["param"]) == (code, param)


def test_feedback_with_a_surrogate_on_a_real_request_is_400_and_stores_nothing(
    http: httpx.Client, db_url: str
) -> None:
    answered = http.post("/v1/chat/completions", json={"model": "fixed", "messages": HI})
    request_id = answered.headers["x-request-id"]
    raw = json.dumps({"request_id": request_id, "score": 1.0, "comment": "x"})
    bad = raw.replace('"x"', '"\\udc00"').encode()
    assert http.post("/v1/feedback", content=bad, headers=JSON).status_code == 400
    good = http.post("/v1/feedback", content=raw.encode(), headers=JSON)
    assert good.status_code == 200 and good.json()["replaced"] is False


# --- 3b. A record that cannot be written is visible ----------------------------------


class _Failing(Exception):
    pass


@pytest.fixture
def unrecording(tmp_path: Path) -> Iterator[tuple[str, Store]]:
    """A real uvicorn on 127.0.0.1 serving the app over a real SQLite store whose row
    writes fail (the fault injected: a full or broken disk), in a thread of this process."""
    store = Store.open(f"sqlite:///{tmp_path / 'broken.db'}")

    def broken(*args: Any, **kwargs: Any) -> list[bool]:
        raise _Failing("disk I/O error")

    store.record_items = broken  # type: ignore[method-assign]
    app = create_app(Orchestrator.from_config(FAULTS), ServerSettings(record=False), store=store)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}", store
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        store.close()


def test_a_failed_record_write_is_logged_counted_and_flagged(
    unrecording: tuple[str, Store], caplog: pytest.LogCaptureFixture
) -> None:
    base_url, store = unrecording
    with (
        caplog.at_level(logging.ERROR, logger="signoria.server"),
        httpx.Client(base_url=base_url, timeout=30) as client,
    ):
        ok = client.post("/v1/chat/completions", json={"model": "fixed", "messages": HI})
        streamed = client.post(
            "/v1/chat/completions", json={"model": "fixed", "messages": HI, "stream": True}
        )
        failed = client.post(
            "/v1/chat/completions", json={"model": "signoria/dead", "messages": HI}
        )
        health = client.get("/health").json()
    assert (ok.status_code, streamed.status_code, failed.status_code) == (200, 200, 503)
    assert ok.json()["choices"][0]["message"]["content"] == "forty-two"
    for response in (ok, failed):
        assert response.headers["x-signoria-recorded"] == "false"
    # A live stream's headers left before the record was written: its last chunk says it.
    last = [line for line in streamed.text.splitlines() if line.startswith("data: {")][-1]
    assert json.loads(last[len("data: ") :])["signoria"]["recorded"] is False
    assert "forty-two" in streamed.text and streamed.text.rstrip().endswith("[DONE]")
    assert health["recording"] == {
        "run_id": health["recording"]["run_id"],
        "recorded": 0,
        "unrecorded": 3,
    }
    logged = [r.getMessage() for r in caplog.records if "could not record" in r.getMessage()]
    assert len(logged) == 3 and ok.headers["x-request-id"] in logged[0]
    [run] = store.runs(kind="serve")
    assert store.count_items(run.id) == 0  # really nothing stored: the flags told the truth


# --- 4. Connections that never finish their headers -----------------------------------

SLOW_HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def _raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"needs {needed} file descriptors, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _slow_sockets(port: int, count: int) -> list[socket.socket]:
    """`count` connections, each with a request head started and never finished."""
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        with contextlib.suppress(OSError):  # closed to make room: allowed
            sock.sendall(SLOW_HEAD)
        sockets.append(sock)
    return sockets


def _timed(call: Any) -> tuple[float, httpx.Response]:
    start = time.monotonic()
    response = call()
    return time.monotonic() - start, response


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(0.05)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def test_a_slow_header_flood_past_the_fd_limit_does_not_stop_service(tmp_path: Path) -> None:
    # The server gets 256 descriptors (soft = hard, so it cannot raise them); without the
    # connection cap and eviction, 1,500 slow connections would leave none for accept().
    _raise_fd_limit(1_700)
    args = ("--config", str(FAULTS), "--no-record")
    with running_server(*args, log=tmp_path / "log", max_fds=256) as server:
        flood = _slow_sockets(server.port, 1_500)
        try:
            with httpx.Client(base_url=server.base_url, timeout=10) as client:
                health_s, health = _timed(lambda: client.get("/health"))
                chat_s, chat = _timed(
                    lambda: client.post(
                        "/v1/chat/completions", json={"model": "fixed", "messages": HI}
                    )
                )
            assert health.status_code == 200 and health_s < 3.0
            assert chat.status_code == 200 and chat_s < 3.0
            assert chat.json()["choices"][0]["message"]["content"] == "forty-two"
            assert "max_connections lowered" in server.log_tail(200)
        finally:
            for sock in flood:
                sock.close()


def test_heads_that_never_finish_are_closed_after_the_header_timeout(tmp_path: Path) -> None:
    args = ("--config", str(FAULTS), "--no-record", "--header-timeout", "1", "--keep-alive", "1")
    with running_server(*args, log=tmp_path / "log") as server:
        silent = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(20)]
        partial = _slow_sockets(server.port, 20)
        trickle = socket.create_connection(("127.0.0.1", server.port))
        trickle.sendall(SLOW_HEAD)
        try:
            # A byte every 0.3 s keeps a connection busy but does not extend its deadline.
            for _ in range(6):
                time.sleep(0.3)
                if not _closed_by_server(trickle):
                    try:
                        trickle.send(b"x")
                    except OSError:
                        break
            time.sleep(0.5)
            assert _closed_by_server(trickle)
            assert all(_closed_by_server(s) for s in silent + partial)
            # An honest client is unaffected, and its idle keep-alive connection is closed
            # once --keep-alive has passed.
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as honest:
                honest.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                reply = honest.recv(65536)
                while not reply.endswith(b"}"):  # the body may come in its own packet
                    reply += honest.recv(65536)
                assert reply.startswith(b"HTTP/1.1 200")
                time.sleep(0.5)
                assert not _closed_by_server(honest)
                time.sleep(1.2)
                assert _closed_by_server(honest)
            # One quick request does not buy a kept-alive connection time for a slow one:
            # the next head is due within --header-timeout of its first byte.
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as reused:
                reused.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                reply = reused.recv(65536)
                while not reply.endswith(b"}"):
                    reply += reused.recv(65536)
                reused.sendall(SLOW_HEAD)
                for _ in range(5):
                    time.sleep(0.3)
                    if _closed_by_server(reused):
                        break
                    with contextlib.suppress(OSError):
                        reused.send(b"x")
                assert _closed_by_server(reused)
        finally:
            for sock in [*silent, *partial, trickle]:
                sock.close()


def test_a_trickled_body_is_408_after_the_body_timeout(tmp_path: Path) -> None:
    args = ("--config", str(FAULTS), "--no-record", "--body-timeout", "1")
    with running_server(*args, log=tmp_path / "log") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            head = (
                "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            )
            sock.sendall(head.encode() + b'{"model": ')
            start = time.monotonic()
            reply = sock.recv(65536)
            waited = time.monotonic() - start
            while b"\r\n\r\n{" not in reply and (more := sock.recv(65536)):
                reply += more
        assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
        assert b'"request_timeout"' in reply and 0.8 < waited < 5


# --- 5. Cross-site requests to the keyless local server ------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json; charset=utf-16",
    ],
)
def test_non_json_content_types_are_415_and_never_run(
    http: httpx.Client, db_url: str, content_type: str
) -> None:
    before = rows(db_url)
    body = json.dumps({"model": "fixed", "messages": HI}).encode()
    for route in ("/v1/chat/completions", "/v1/feedback"):
        response = http.post(route, content=body, headers={"Content-Type": content_type})
        assert response.status_code == 415, response.text
        error = error_of(response)
        assert (error["type"], error["code"]) == ("invalid_request_error", "unsupported_media_type")
    assert rows(db_url) == before


@pytest.mark.parametrize(
    "content_type",
    [None, "application/json", "application/json; charset=utf-8", "Application/JSON"],
)
def test_json_content_types_are_served(http: httpx.Client, content_type: str | None) -> None:
    body = json.dumps({"model": "fixed", "messages": HI}).encode()
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = http.post("/v1/chat/completions", content=body, headers=headers)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("route", ["/health", "/v1/models", "/openapi.json"])
@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example"])
def test_a_foreign_host_is_421_dns_rebinding(http: httpx.Client, route: str, host: str) -> None:
    response = http.get(route, headers={"Host": host})
    assert response.status_code == 421
    assert error_of(response)["code"] == "invalid_host"


def test_a_foreign_host_cannot_post_either(http: httpx.Client, db_url: str) -> None:
    before = rows(db_url)
    response = http.post(
        "/v1/chat/completions",
        json={"model": "fixed", "messages": HI},
        headers={"Host": "rebind.example"},
    )
    assert response.status_code == 421 and rows(db_url) == before


def test_loopback_names_are_this_server(http: httpx.Client, server: RunningServer) -> None:
    for host in ("127.0.0.1", f"127.0.0.1:{server.port}", f"localhost:{server.port}", "[::1]"):
        assert http.get("/v1/models", headers={"Host": host}).status_code == 200, host


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://localhost:1"])
def test_a_foreign_origin_is_403(http: httpx.Client, db_url: str, origin: str) -> None:
    before = rows(db_url)
    posted = http.post(
        "/v1/chat/completions",
        json={"model": "fixed", "messages": HI},
        headers={"Origin": origin},
    )
    assert posted.status_code == 403
    assert error_of(posted)["code"] == "cross_origin_forbidden"
    read = http.get("/v1/models", headers={"Origin": origin})
    assert read.status_code == 403 and "access-control-allow-origin" not in read.headers
    preflight = http.options(
        "/v1/chat/completions",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 403
    assert rows(db_url) == before


def test_the_servers_own_origin_is_allowed(http: httpx.Client, server: RunningServer) -> None:
    response = http.post(
        "/v1/chat/completions",
        json={"model": "fixed", "messages": HI},
        headers={"Origin": server.base_url},
    )
    assert response.status_code == 200, response.text


def test_allowed_hosts_and_cors_origins_are_opt_in(tmp_path: Path) -> None:
    args = (
        "--config",
        str(FAULTS),
        "--no-record",
        "--allowed-host",
        "signoria.internal",
        "--cors-origin",
        "http://app.example",
    )
    with (
        running_server(*args, log=tmp_path / "log") as server,
        httpx.Client(base_url=server.base_url, timeout=30) as client,
    ):
        named = client.get("/v1/models", headers={"Host": "signoria.internal:8000"})
        assert named.status_code == 200
        assert client.get("/health", headers={"Host": "evil.example"}).status_code == 421
        preflight = client.options(
            "/v1/chat/completions",
            headers={
                "Origin": "http://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,authorization",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "http://app.example"
        allowed = client.post(
            "/v1/chat/completions",
            json={"model": "fixed", "messages": HI},
            headers={"Origin": "http://app.example"},
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "http://app.example"
        assert "x-request-id" in allowed.headers["access-control-expose-headers"].lower()
        other = client.get("/v1/models", headers={"Origin": "http://evil.example"})
        assert other.status_code == 403


# --- 6. Strict types, and a spec that agrees with the server --------------------------


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "fixed", "messages": HI, **extra}


WRONG_TYPES = [
    (chat(max_tokens=True), "max_tokens"),
    (chat(max_tokens="16"), "max_tokens"),
    (chat(max_tokens=16.5), "max_tokens"),
    (chat(stream="yes"), "stream"),
    (chat(stream=1), "stream"),
    (chat(temperature="1"), "temperature"),
    (chat(temperature=True), "temperature"),
    (chat(n=True), "n"),
    (chat(seed="7"), "seed"),
    (chat(stream_options={"include_usage": "true"}), "stream_options.include_usage"),
    (chat(signoria={"max_experts": True}), "signoria.max_experts"),
    (chat(signoria={"budget_usd": "0.1"}), "signoria.budget_usd"),
    (chat(messages=[{"role": "user", "content": 5}]), "messages.0.content"),
    (chat(stop=["a", 1]), "stop"),
]


@pytest.mark.parametrize(("body", "param"), WRONG_TYPES)
def test_wrong_json_types_are_422_not_coerced(
    http: httpx.Client, body: dict[str, Any], param: str
) -> None:
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["code"] == "invalid_schema" and error["param"].startswith(param), error


def test_an_integer_is_still_a_valid_temperature(http: httpx.Client) -> None:
    for temperature in (0, 1, 1.5):
        response = http.post("/v1/chat/completions", json=chat(temperature=temperature))
        assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def request_schema(http: httpx.Client) -> jsonschema.Draft202012Validator:
    spec = http.get("/openapi.json").json()
    operation = spec["paths"]["/v1/chat/completions"]["post"]
    ref = operation["requestBody"]["content"]["application/json"]["schema"]
    root = {**ref, "components": spec["components"]}
    jsonschema.Draft202012Validator.check_schema(root)
    return jsonschema.Draft202012Validator(root)


REJECTED_SHAPES = [
    chat(messages=[{"role": "user"}]),
    chat(messages=[{"role": "user", "content": None}]),
    chat(messages=[{"role": "user", "content": "hi"}, {"role": "user", "content": None}]),
    chat(messages=[{"role": "system", "content": "x"}]),
    chat(messages=[{"role": "user", "content": "   "}]),
    chat(messages=[{"role": "user", "content": []}]),
    chat(messages=[{"role": "user", "content": [{"type": "text", "text": " "}]}]),
    chat(stop=["a", "b", "c", "d", "e"]),
    chat(seed=2**31),
    chat(seed=-1),
    chat(messages=[*HI, {"role": "tool", "content": "21C"}]),  # answers no call id
    chat(messages=[*HI, {"role": "tool", "tool_call_id": "c1"}]),  # and says nothing
    chat(tools=[{"type": "function"}]),
    chat(tools=[{"type": "function", "function": {"name": "no spaces allowed"}}]),
    chat(tool_choice="sometimes"),
    chat(response_format={"type": "json_schema"}),
    *(body for body, _ in WRONG_TYPES),
]


@pytest.mark.parametrize("body", REJECTED_SHAPES)
def test_what_the_server_rejects_the_spec_rejects(
    http: httpx.Client, request_schema: jsonschema.Draft202012Validator, body: dict[str, Any]
) -> None:
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code in (400, 422), response.text
    assert not request_schema.is_valid(body), "the spec allows a body the server rejects"


ACCEPTED_SHAPES = [
    chat(),
    chat(stop=["a", "b", "c", "d"], seed=2**31 - 1, temperature=1, max_tokens=8),
    chat(max_tokens=16.0, n=1.0),  # JSON has one number type: 16.0 is an integer
    chat(messages=[{"role": "system", "content": None}, *HI]),
    chat(messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}]),
    chat(messages=[{"role": "assistant", "content": None}, {"role": "user", "content": "x"}]),
    chat(stream=False, stream_options={"include_usage": True}, signoria={"deadline_s": 30}),
    chat(response_format={"type": "text"}),
    chat(
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        tool_choice="auto",
        parallel_tool_calls=False,
        messages=[
            *HI,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "done"},
            {"role": "user", "content": "and now?"},
        ],
    ),
]


@pytest.mark.parametrize("body", ACCEPTED_SHAPES)
def test_what_the_spec_allows_the_server_serves(
    http: httpx.Client, request_schema: jsonschema.Draft202012Validator, body: dict[str, Any]
) -> None:
    request_schema.validate(body)
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text


async def test_concurrent_hostile_and_honest_requests_are_each_answered_once(
    server: RunningServer, db_url: str
) -> None:
    before = rows(db_url)
    async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
        honest = [
            client.post("/v1/chat/completions", json=chat(seed=i, temperature=1)) for i in range(10)
        ]
        hostile = [
            client.post("/v1/chat/completions", content=raw, headers=JSON)
            for _, raw, _, _, _ in HOSTILE
        ]
        responses = await asyncio.gather(*honest, *hostile)
    statuses = [r.status_code for r in responses]
    assert all(s < 500 for s in statuses) and statuses.count(200) == 10
    ids = {r.headers["x-request-id"] for r in responses if "x-request-id" in r.headers}
    assert len(ids) == 10 and rows(db_url) - before == ids


def test_records_are_group_committed_and_none_is_lost(tmp_path: Path) -> None:
    """Requests finishing together share a transaction: 48 concurrent requests take fewer
    than 48 writes, every one of them is stored, and each response says nothing was lost."""
    store = Store.open(f"sqlite:///{tmp_path / 'grouped.db'}")
    batches: list[int] = []
    write = store.record_items

    def counted(run_id: str, entries: Any) -> list[bool]:
        batches.append(len(entries))
        return write(run_id, entries)

    store.record_items = counted  # type: ignore[method-assign]
    settings = ServerSettings(record=False, max_concurrent=64)
    app = create_app(Orchestrator.from_config(FAULTS), settings, store=store)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            body = {"model": "fixed", "messages": HI}
            return list(
                await asyncio.gather(
                    *(http.post("/v1/chat/completions", json=body) for _ in range(48))
                )
            )

    try:
        responses = asyncio.run(burst())
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    try:
        assert [r.status_code for r in responses] == [200] * 48
        assert not [r for r in responses if r.headers.get("x-signoria-recorded") == "false"]
        assert sum(batches) == 48 and len(batches) < 48, batches
        [run] = store.runs(kind="serve")
        stored = {i.item_key for i in store.items(run.id)}
        assert stored == {r.headers["x-request-id"] for r in responses}
    finally:
        store.close()
