"""Orchestration overhead: Signoria's REST endpoint vs the LiteLLM proxy, same stub behind.

Starts, on 127.0.0.1, the stub provider (benchmarks/stub_server.py, fixed latency), the
Signoria server (`signoria serve`, one process, a `single` pipeline calling the stub) twice
- once with the `openai` backend (direct httpx, the one to use for an OpenAI-compatible
server) and once with the `litellm` backend - and, when `.bench-venv/bin/litellm` exists,
the LiteLLM proxy (one worker, uvloop + httptools like Signoria) pointing at the same stub.
Then, one target after another, the same load generator sends N chat completions at 1,
16 and 64 concurrent requests after a warm-up, and reports per target: latency p50/p99,
requests/s, errors, and the latency each adds over calling the stub directly at the same
concurrency.

    python3 -m venv .bench-venv && .bench-venv/bin/pip install -r benchmarks/requirements-proxy.txt
    .venv/bin/python -m benchmarks.overhead --latency-ms 50 --requests 400

Prints one JSON object and a one-line summary. Bar (issue 7): Signoria's added p50 <= 0.5x
the proxy's, and its requests/s >= 2x the proxy's at 64 concurrent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from httpx_aiohttp import AiohttpTransport

ROOT = Path(__file__).resolve().parent.parent
PROXY = ROOT / ".bench-venv" / "bin" / "litellm"
QUESTION = [{"role": "user", "content": "What is 6 * 7?"}]
# Both servers authenticate every request, as in production; the stub ignores the header.
KEY = "sk-bench-" + "5f2c" * 16


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def process(
    argv: list[str], ready_url: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        try:
            _wait_ready(proc, log, argv, ready_url)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait_ready(proc: subprocess.Popen[bytes], log: Any, argv: list[str], ready_url: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"{argv[0]} exited: {log.read()[-2000:].decode()}")
        try:
            if httpx.get(ready_url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{argv} not ready after 120 s")


def stub_argv(port: int, latency_ms: float, *extra: str) -> list[str]:
    script = ROOT / "benchmarks" / "stub_server.py"
    return [
        sys.executable,
        str(script),
        "--port",
        str(port),
        "--latency-ms",
        str(latency_ms),
        *extra,
    ]


def signoria_argv(config: Path, port: int, *extra: str) -> list[str]:
    signoria = Path(sys.executable).parent / "signoria"
    return [str(signoria), "serve", "-c", str(config), "--port", str(port), *extra]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def warm_ups(requests: int, concurrency: int) -> int:
    """Untimed requests `load` sends first (they are recorded too, so they are counted)."""
    return min(requests, 4 * concurrency)


def sent_per_target(requests: int, levels: list[int]) -> int:
    """Requests one target gets over a run, warm-ups included: what its records must hold."""
    return sum(requests + warm_ups(requests, c) for c in levels)


async def load(
    url: str, model: str, concurrency: int, requests: int, key: str = KEY
) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    body = {"model": model, "messages": QUESTION, "max_tokens": 16}
    latencies: list[float] = []
    errors = 0
    headers = {"Authorization": f"Bearer {key}"}
    # aiohttp's pool under httpx's API: httpx's own pool, not the targets, would be the
    # bottleneck at 64 in flight (150 vs 1,040 requests/s against the bare stub).
    transport = AiohttpTransport(limits=limits)
    async with httpx.AsyncClient(
        limits=limits, timeout=60, headers=headers, transport=transport
    ) as client:
        queue: asyncio.Queue[int] = asyncio.Queue()

        async def worker(record: bool) -> None:
            nonlocal errors
            while not queue.empty():
                queue.get_nowait()
                t0 = time.perf_counter()
                try:
                    response = await client.post(url, json=body)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if record:
                    latencies.append(time.perf_counter() - t0)
                    errors += not ok

        for n, record in ((warm_ups(requests, concurrency), False), (requests, True)):
            for i in range(n):
                queue.put_nowait(i)
            start = time.perf_counter()
            await asyncio.gather(*(worker(record) for _ in range(concurrency)))
            wall = time.perf_counter() - start
    return {
        "requests": requests,
        "errors": errors,
        "p50_ms": round(1000 * statistics.median(latencies), 2),
        "p99_ms": round(1000 * percentile(latencies, 0.99), 2),
        "rps": round(requests / wall, 1),
    }


def stub_expert(stub_port: int, backend: str) -> str:
    """The YAML lines of a model entry that calls the stub through `backend`."""
    url = f"http://127.0.0.1:{stub_port}/v1"
    where = (
        f"    model: stub\n    base_url: {url}\n"
        if backend == "openai"
        else f"    model: openai/stub\n    api_base: {url}\n"
    )
    return f"    backend: {backend}\n{where}    api_key_env: STUB_API_KEY\n"


def signoria_config(stub_port: int, directory: Path, backend: str = "openai") -> Path:
    path = directory / f"overhead-{backend}.yaml"
    path.write_text(
        "default_pipeline: single\n"
        "models:\n"
        "  stub:\n"
        f"{stub_expert(stub_port, backend)}"
        "    input_price: 0.0\n"
        "    output_price: 0.0\n"
        "pipelines:\n"
        "  single:\n"
        "    router: {name: fixed, experts: [stub]}\n"
        "    aggregator: first\n"
        "    limits: {retries: 0}\n"
    )
    return path


def proxy_config(stub_port: int, directory: Path) -> Path:
    path = directory / "proxy.yaml"
    path.write_text(
        "model_list:\n"
        "  - model_name: stub\n"
        "    litellm_params:\n"
        "      model: openai/stub\n"
        f"      api_base: http://127.0.0.1:{stub_port}/v1\n"
        "      api_key: stub-key\n"
    )
    return path


def served_records(db: str) -> int:
    """Requests recorded by every `signoria serve` run of a database so far."""
    from signoria.orchestrator.storage import Store

    store = Store.open(db)
    try:
        return sum(store.count_items(r.id) for r in store.runs("serve"))
    finally:
        store.close()


@contextmanager
def database(kind: str, directory: Path) -> Iterator[str]:
    """Where Signoria records: a SQLite file, or a throwaway local PostgreSQL cluster
    (the storage tests' own, `tests/postgres_cluster.py`)."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'records.db'}"
        return
    from tests.postgres_cluster import throwaway_cluster

    with throwaway_cluster() as url:
        yield url


def proxy_argv(stub_port: int, directory: Path, port: int, workers: int = 1) -> list[str]:
    """The LiteLLM proxy (its own venv, benchmarks/requirements-proxy.txt) on the stub."""
    config = proxy_config(stub_port, directory)
    return [str(PROXY), "--config", str(config), "--port", str(port), "--num_workers", str(workers)]


PROXY_ENV = {"LITELLM_MASTER_KEY": KEY, "LITELLM_LOG": "ERROR"}


def run_all(
    latency_ms: float,
    requests: int,
    levels: list[int],
    record: bool,
    db_kind: str = "sqlite",
    workers: int = 1,
) -> dict[str, Any]:
    results: dict[str, dict[str, Any]] = {}
    stub_port, signoria_port, proxy_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "STUB_API_KEY": "stub-key",
        "SIGNORIA_API_KEYS": KEY,
        **PROXY_ENV,
    }
    stub = stub_argv(stub_port, latency_ms)
    sent = sent_per_target(requests, levels)
    counted: dict[str, int] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        process(stub, f"http://127.0.0.1:{stub_port}/v1/models"),
        database(db_kind, Path(tmp)) as db,
    ):
        directory = Path(tmp)
        targets: list[tuple[str, str, str, list[str] | None, str]] = [
            ("direct", f"http://127.0.0.1:{stub_port}/v1/chat/completions", "stub", None, ""),
        ]
        for backend in ("openai", "litellm"):
            signoria = signoria_argv(
                signoria_config(stub_port, directory, backend),
                signoria_port,
                *("--max-concurrent", "1024", "--log-level", "warning"),
                *(["--db", db] if record else ["--no-record"]),
                *(["--workers", str(workers)] if workers > 1 else []),
            )
            targets.append(
                (
                    "signoria" if backend == "openai" else "signoria (litellm backend)",
                    f"http://127.0.0.1:{signoria_port}/v1/chat/completions",
                    "signoria/single",
                    signoria,
                    f"http://127.0.0.1:{signoria_port}/health",
                )
            )
        if PROXY.exists():
            targets.append(
                (
                    "litellm-proxy",
                    f"http://127.0.0.1:{proxy_port}/v1/chat/completions",
                    "stub",
                    proxy_argv(stub_port, directory, proxy_port, workers),
                    f"http://127.0.0.1:{proxy_port}/health/liveliness",
                )
            )
        for name, url, model, argv, ready in targets:
            if argv is None:
                results[name] = {str(c): asyncio.run(load(url, model, c, requests)) for c in levels}
                continue
            before = served_records(db) if record and name.startswith("signoria") else 0
            with process(argv, ready, env):
                results[name] = {str(c): asyncio.run(load(url, model, c, requests)) for c in levels}
            if record and name.startswith("signoria"):
                # After the server stopped: what its writer flushed on the way out counts.
                counted[name] = served_records(db) - before
    direct = results["direct"]
    for by_level in results.values():
        for level, row in by_level.items():
            row["added_p50_ms"] = round(row["p50_ms"] - direct[level]["p50_ms"], 2)
            row["added_p99_ms"] = round(row["p99_ms"] - direct[level]["p99_ms"], 2)
    return {
        "latency_ms": latency_ms,
        "requests_per_level": requests,
        "levels": levels,
        "recording": record,
        "database": db_kind if record else None,
        "workers": workers,
        "requests_sent_per_target": sent,
        "records_counted": counted if record else None,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "results": results,
    }


def features(latency_ms: float, requests: int, levels: list[int]) -> dict[str, Any]:
    """The cost of each gateway feature (issue 14): Signoria (`openai` backend, metrics
    always on) with recording off, recording to SQLite, and recording plus a database key
    with limits (budget and rates high enough never to refuse, so every request pays the
    key lookup, the usage query and the shared rate admission). Records are counted after
    each run: none may be lost. Then the LiteLLM proxy on the same stub (when its venv
    exists), the baseline of issue 15's bars."""
    from signoria.orchestrator.keylimits import KeyLimits
    from signoria.orchestrator.storage import Store
    from signoria.orchestrator.storage.keys import KeyStore

    results: dict[str, dict[str, Any]] = {}
    stub_port, port = free_port(), free_port()
    env = {**os.environ, "STUB_API_KEY": "stub-key", "SIGNORIA_API_KEYS": KEY}
    sent = sent_per_target(requests, levels)
    counted: dict[str, int | None] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        process(stub_argv(stub_port, latency_ms), f"http://127.0.0.1:{stub_port}/v1/models"),
    ):
        directory = Path(tmp)
        config = signoria_config(stub_port, directory, "openai")
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        for name in ("recording off", "recording on", "recording on + database key"):
            db = f"sqlite:///{directory / name.replace(' ', '-')}.db"
            key = KEY
            if name.endswith("database key"):
                store = Store.open(db)
                limits = KeyLimits(
                    budget_day_usd=1e6, requests_per_minute=10**6, tokens_per_minute=10**9
                )
                key, _ = KeyStore(store).create("bench", limits)
                store.close()
            extra = ["--no-record"] if name == "recording off" else ["--db", db]
            argv = signoria_argv(
                config, port, "--max-concurrent", "1024", "--log-level", "warning", *extra
            )
            with process(argv, f"http://127.0.0.1:{port}/health", env):
                results[name] = {
                    str(c): asyncio.run(load(url, "signoria/single", c, requests, key))
                    for c in levels
                }
            if name != "recording off":
                counted[name] = served_records(db)
        if PROXY.exists():  # the baseline of issue 15's bars, in the same run
            proxy_port = free_port()
            argv = proxy_argv(stub_port, directory, proxy_port)
            ready = f"http://127.0.0.1:{proxy_port}/health/liveliness"
            with process(argv, ready, {**env, **PROXY_ENV}):
                proxy_url = f"http://127.0.0.1:{proxy_port}/v1/chat/completions"
                results["litellm-proxy"] = {
                    str(c): asyncio.run(load(proxy_url, "stub", c, requests)) for c in levels
                }
    base = results["recording off"]
    proxy = results.get("litellm-proxy")
    for by_level in results.values():
        for level, row in by_level.items():
            row["vs_recording_off_rps"] = round(row["rps"] / base[level]["rps"], 3)
            if proxy is not None:
                row["vs_proxy_rps"] = round(row["rps"] / proxy[level]["rps"], 3)
    return {
        "mode": "features",
        "latency_ms": latency_ms,
        "requests_per_level": requests,
        "levels": levels,
        "requests_sent_per_target": sent,
        "records_counted": counted,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "results": results,
    }


def summary(report: dict[str, Any]) -> str:
    results = report["results"]
    parts = []
    for level in map(str, report["levels"]):
        s = results["signoria"][level]
        line = f"c={level}: signoria +{s['added_p50_ms']}ms p50, {s['rps']} rps"
        via_litellm = results["signoria (litellm backend)"][level]
        line += f" (litellm backend +{via_litellm['added_p50_ms']}ms, {via_litellm['rps']} rps)"
        if "litellm-proxy" in results:
            p = results["litellm-proxy"][level]
            ratio = s["added_p50_ms"] / p["added_p50_ms"] if p["added_p50_ms"] > 0 else None
            line += f" vs proxy +{p['added_p50_ms']}ms, {p['rps']} rps"
            if ratio is not None:
                line += f" (added-p50 ratio {ratio:.2f}, rps ratio {s['rps'] / p['rps']:.2f})"
        parts.append(line)
    return "overhead: " + "; ".join(parts)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--requests", type=int, default=400, help="per target and level")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--record", action="store_true", help="Signoria records every request")
    parser.add_argument(
        "--db", choices=["sqlite", "postgres"], default="sqlite", help="where --record goes"
    )
    parser.add_argument("--workers", type=int, default=1, help="server processes, each target")
    parser.add_argument(
        "--features",
        action="store_true",
        help="Signoria with recording off/on/+database key, then the proxy",
    )
    args = parser.parse_args()
    if args.features:
        report = features(args.latency_ms, args.requests, args.levels)
        print(json.dumps(report))
        for name, by_level in report["results"].items():
            cells = ", ".join(
                f"c={c}: {r['rps']} rps ({r.get('vs_proxy_rps')}x proxy), p50 {r['p50_ms']} ms, "
                f"errors {r['errors']}"
                for c, r in by_level.items()
            )
            print(f"{name}: {cells}", file=sys.stderr)
        print(f"records counted: {report['records_counted']}", file=sys.stderr)
    else:
        report = run_all(
            args.latency_ms, args.requests, args.levels, args.record, args.db, args.workers
        )
        print(json.dumps(report))
        print(summary(report))
        if report["records_counted"] is not None:
            print(f"records counted: {report['records_counted']}", file=sys.stderr)
