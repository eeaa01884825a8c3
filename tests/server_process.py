"""Run the real `signoria serve` as a subprocess on a free 127.0.0.1 port, for server tests.

The server's output goes to a file, never a pipe: llama.cpp logs would fill a pipe
nobody reads and block the server.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import ROOT

SIGNORIA = str(Path(sys.executable).parent / "signoria")
STARTUP_S = 120.0


@dataclass(frozen=True)
class RunningServer:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> int:
        """SIGTERM (uvicorn's graceful shutdown, lifespan included), SIGKILL if stuck."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(api_keys: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SIGNORIA_API_KEYS", None)
    if api_keys is not None:
        env["SIGNORIA_API_KEYS"] = api_keys
    return env


@contextmanager
def running_server(
    *args: str,
    log: Path,
    api_keys: str | None = None,
    env: Mapping[str, str] | None = None,
    max_fds: int | None = None,
) -> Iterator[RunningServer]:
    """`signoria serve --port <free> *args`, yielded once /health answers; `max_fds` sets
    the server's file-descriptor limit (soft and hard), as a constrained host would."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [SIGNORIA, "serve", "--port", str(port), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**server_env(api_keys), **(env or {})},
            cwd=ROOT,
            preexec_fn=None if max_fds is None else lambda: _limit_fds(max_fds),
        )
    server = RunningServer(process, port, log)
    try:
        _wait_healthy(server)
        yield server
    finally:
        server.stop()


def _limit_fds(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


def _wait_healthy(server: RunningServer) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"server exited with {server.process.returncode}:\n{server.log_tail()}"
            )
        try:
            if httpx.get(f"{server.base_url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server did not answer /health in {STARTUP_S}s:\n{server.log_tail()}")
