"""Soak: the Signoria server under steady load while its provider misbehaves.

Starts the stub provider (benchmarks/stub_server.py) with `--fault-rate` of its answers
replaced by 500s, 429s with Retry-After, hangs, dropped connections and malformed JSON,
and the Signoria server recording to a fresh SQLite file, with priced experts and a
per-request budget. Then sends `--concurrency` streams of requests for `--duration`
seconds, alternating a three-expert vote and a single expert with a fallback, while
sampling the server's resident memory.

    .venv/bin/python -m benchmarks.soak --duration 600 --concurrency 8 --fault-rate 0.2

Reports: requests by HTTP status, crashed requests (a 500, a dropped connection or a body
that is not JSON: anything but an answer or a documented error), memory after warm-up vs
at the end, and, from the database, the largest recorded spend of any request against
its budget. Exit status 1 when a request crashed or a spend exceeded its budget.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from benchmarks.overhead import KEY, free_port, process, signoria_argv, stub_argv, stub_expert

BUDGET_USD = 0.01
# USD per million tokens (the config's unit): 1e-4 and 2e-4 USD a token, so a call
# reserves about (15 prompt + 16 max) tokens' worth, ~0.0047 USD, and three such calls do
# not fit the budget: the vote's third expert and most retries are refused up front.
INPUT_PRICE, OUTPUT_PRICE = 100.0, 200.0


def config(stub_port: int, directory: Path, backend: str) -> Path:
    expert = (
        f"{stub_expert(stub_port, backend)}"
        f"    input_price: {INPUT_PRICE}\n"
        f"    output_price: {OUTPUT_PRICE}\n"
        "    request_timeout_s: 2.0\n"
    )
    limits = (
        f"{{budget_usd: {BUDGET_USD}, retries: 1, retry_backoff_s: 0.05, "
        "expert_timeout_s: 1.0, deadline_s: 4.0, max_tokens: 16"
    )
    path = directory / "soak.yaml"
    path.write_text(
        "default_pipeline: vote\n"
        "runtime: {breaker: {failures: 5, cooldown_s: 2}}\n"
        "models:\n"
        + "".join(f"  {name}:\n{expert}" for name in ("a", "b", "c", "backup"))
        + "pipelines:\n"
        "  vote:\n"
        "    router: {name: fixed, experts: [a, b, c]}\n"
        "    aggregator: majority\n"
        f"    limits: {limits}}}\n"
        "  single:\n"
        "    router: {name: fixed, experts: [a]}\n"
        "    aggregator: first\n"
        f"    limits: {limits}, fallback: backup}}\n"
    )
    return path


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def drive(url: str, duration_s: float, concurrency: int, statuses: Counter[str]) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    stop = time.monotonic() + duration_s
    async with httpx.AsyncClient(timeout=30, headers=headers) as client:

        async def stream(n: int) -> None:
            i = 0
            while time.monotonic() < stop:
                model = "signoria/vote" if (n + i) % 2 == 0 else "signoria/single"
                body = {"model": model, "messages": [{"role": "user", "content": f"6*{i}?"}]}
                i += 1
                try:
                    response = await client.post(url, json=body)
                    response.json()
                    statuses[str(response.status_code)] += 1
                except httpx.HTTPError as exc:
                    statuses[f"crash: {type(exc).__name__}"] += 1
                except json.JSONDecodeError:
                    statuses["crash: body not JSON"] += 1

        await asyncio.gather(*(stream(n) for n in range(concurrency)))


def spends(db: Path) -> list[float]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT cost FROM items WHERE cost IS NOT NULL").fetchall()
    return [float(r[0]) for r in rows]


def main(
    duration_s: float, concurrency: int, fault_rate: float, seed: int, backend: str
) -> dict[str, Any]:
    stub_port, port = free_port(), free_port()
    env = {**os.environ, "STUB_API_KEY": "stub-key", "SIGNORIA_API_KEYS": KEY}
    stub = stub_argv(
        stub_port, 30, "--fault-rate", str(fault_rate), "--hang-s", "5", "--seed", str(seed)
    )
    statuses: Counter[str] = Counter()
    memory: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        db = directory / "soak.db"
        serve = signoria_argv(
            config(stub_port, directory, backend),
            port,
            *("--db", f"sqlite:///{db}", "--log-level", "warning"),
        )
        with (
            process(stub, f"http://127.0.0.1:{stub_port}/v1/models"),
            process(serve, f"http://127.0.0.1:{port}/health", env) as server,
        ):

            async def run() -> None:
                load = asyncio.create_task(
                    drive(
                        f"http://127.0.0.1:{port}/v1/chat/completions",
                        duration_s,
                        concurrency,
                        statuses,
                    )
                )
                start = time.monotonic()
                while not load.done():
                    memory.append((round(time.monotonic() - start, 1), rss_mb(server.pid)))
                    await asyncio.sleep(min(10.0, duration_s / 20))
                await load

            asyncio.run(run())
            fault_counts = httpx.get(f"http://127.0.0.1:{stub_port}/stats").json()
        recorded = spends(db)
    crashed = sum(n for code, n in statuses.items() if code.startswith("crash") or code == "500")
    warm = [mb for t, mb in memory if t >= min(60.0, duration_s / 5)] or [m for _, m in memory]
    return {
        "duration_s": duration_s,
        "concurrency": concurrency,
        "fault_rate": fault_rate,
        "seed": seed,
        "backend": backend,
        "requests": sum(statuses.values()),
        "statuses": dict(statuses),
        "crashed": crashed,
        "provider_calls": fault_counts,
        "rss_mb": {"after_warmup": warm[0], "end": warm[-1], "max": max(warm)},
        "memory_samples": memory,
        "budget_usd": BUDGET_USD,
        "recorded_requests": len(recorded),
        "max_recorded_spend_usd": max(recorded, default=None),
        "over_budget": sum(cost > BUDGET_USD + 1e-12 for cost in recorded),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=["openai", "litellm"], default="openai")
    args = parser.parse_args()
    report = main(args.duration, args.concurrency, args.fault_rate, args.seed, args.backend)
    print(json.dumps(report))
    rss = report["rss_mb"]
    print(
        f"soak {args.duration:.0f}s x{args.concurrency} ({args.backend} backend), "
        f"{args.fault_rate:.0%} faults: "
        f"{report['requests']} requests {report['statuses']}, crashed {report['crashed']}; "
        f"RSS {rss['after_warmup']:.0f} -> {rss['end']:.0f} MB (max {rss['max']:.0f}); "
        f"max spend {report['max_recorded_spend_usd']} of {BUDGET_USD} USD, "
        f"over budget {report['over_budget']}"
    )
    sys.exit(1 if report["crashed"] or report["over_budget"] else 0)
