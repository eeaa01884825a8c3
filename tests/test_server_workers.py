"""`signoria serve --workers 2`: two real worker processes on one port, one SQLite file.

Checked: every request is answered and recorded once (by the worker that served it) and
counted once in `/metrics`, whichever worker answers the scrape;
SIGTERM to the parent stops both workers cleanly; a worker that dies takes the service
down with a non-zero exit (a supervisor restarts it whole); a taken port is one line.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from signoria.orchestrator.storage import Store
from tests.conftest import ROOT
from tests.server_process import SIGNORIA, running_server, server_env

CONFIG = str(ROOT / "tests" / "configs" / "gateway.yaml")


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def wait_for_children(pid: int, count: int, timeout: float = 60) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = children(pid)
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{pid} has children {children(pid)}, expected {count}")


async def ask_many(base_url: str, n: int) -> list[int]:
    body = {"model": "vote", "messages": [{"role": "user", "content": "What is 3 + 4?"}]}

    async def one() -> int:
        # A connection per request, so the kernel may hand each to either worker.
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            return (await client.post("/v1/chat/completions", json=body)).status_code

    return list(await asyncio.gather(*(one() for _ in range(n))))


def test_two_workers_answer_and_record_every_request(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'records.db'}"
    args = ("-c", CONFIG, "--db", db, "--workers", "2", "--max-concurrent", "64")
    with running_server(*args, log=tmp_path / "server.log") as server:
        workers = wait_for_children(server.process.pid, 2)
        statuses = asyncio.run(ask_many(server.base_url, 40))
        assert statuses == [200] * 40
        # Whichever worker answers the scrape, it counts both workers' requests.
        line = 'signoria_requests_total{model="vote",status="200"} 40.0'
        for _ in range(6):
            scraped = httpx.get(f"{server.base_url}/metrics", headers={"Connection": "close"})
            assert line in scraped.text.splitlines(), scraped.text[:2000]
        assert server.stop() == 0, server.log_tail()
    for pid in workers:
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        )
    store = Store.open(db)
    try:
        runs = store.runs("serve")
        assert len(runs) == 2  # one per worker, each with its own writer
        assert sum(store.count_items(r.id) for r in runs) == 40
    finally:
        store.close()


def test_a_dead_worker_stops_the_service_with_an_error(tmp_path: Path) -> None:
    args = ("-c", CONFIG, "--no-record", "--workers", "2")
    with running_server(*args, log=tmp_path / "server.log") as server:
        first, second = wait_for_children(server.process.pid, 2)
        os.kill(first, signal.SIGKILL)
        code = server.process.wait(timeout=30)
        assert code == 128 + signal.SIGKILL, server.log_tail()
        assert (
            not Path(f"/proc/{second}").exists()
            or "zombie" in Path(f"/proc/{second}/status").read_text()
        )


def refused_line(*args: str) -> str:
    """`signoria serve --workers 2 *args`, which must fail at once: its one stderr line."""
    result = subprocess.run(
        [SIGNORIA, "serve", "-c", CONFIG, "--workers", "2", *args],
        capture_output=True,
        text=True,
        env=server_env(None),
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_taken_port_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = refused_line("--no-record", "--port", f"{port}")
    assert f"cannot listen on 127.0.0.1:{port}" in line


def test_a_bad_database_fails_once_before_any_worker_starts() -> None:
    assert "cannot open database" in refused_line("--db", "nosuchdb://x")
