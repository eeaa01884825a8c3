"""Hostile client: the gateway as a careless or malicious client and a lying provider see
it, bounded and on loopback only (issue 17's evidence).

One `signoria serve` with the product's real settings (API keys on, recording to a fresh
SQLite file, a per-request budget cap) over scripted experts, two of them liars (one
scripted expert reporting 500 output tokens and a cost far above its price, one
`openai`-backend expert whose OpenAI-compatible upstream, benchmarks/stub_server.py
`--overrun 500`, ignores `max_tokens`). Then, in one run:

1. the hand-written cases of `benchmarks/hostile_cases.py` (deep JSON, huge integers,
   surrogates, out-of-range seeds, wrong JSON types, cross-site content types, foreign
   Origin and Host, over-cap limits, budgets below one call), each against the statuses
   a correct server may give;
2. a soak of budgeted requests through the liars (single, vote of liars, upstream liar);
3. the official `openai` client (default retries) on a budget refusal: how many requests
   the server recorded for it;
4. schemathesis over the served `/openapi.json`, with `model` restricted to the served ids
   so generated requests reach pipelines (every request and response kept as a HAR file);
5. a slow-header flood (`--flood` sockets that never finish their request head) while
   normal requests are timed, against the same requests on the idle server.

Afterwards the database is read: every 200 must have its record, and no record's spend
may exceed its request's budget.

    .venv/bin/python -m benchmarks.hostile_client [--flood 2000] [--examples 100] [--json]

Bars (exit 1 if any fails): no 5xx, 0 answered-but-unrecorded, max spend/budget ≤ 1.0,
every hand-written case answered as expected, 1 request seen for an `openai`-client
budget refusal, median normal latency under the flood ≤ twice idle. Schemathesis runs from
its own venv (created on first use under ~/.cache/signoria-bench), never the project's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from benchmarks.hostile_cases import USER, cases
from benchmarks.hostile_fuzz import error_code, model_of, run_schemathesis
from benchmarks.overhead import KEY, free_port, process, signoria_argv, stub_argv

CAP_USD = 0.002
# USD per million tokens: a call of ~20 prompt tokens and max_tokens 16 reserves ~$0.0005,
# so a vote of three fits the cap, and the liars' 500 reported tokens ($0.01) would not.
PRICES = "input_price: 10.0, output_price: 20.0"
LIMITS = "limits: {max_tokens: 16, retries: 1, retry_backoff_s: 0.01, expert_timeout_s: 5}"


def write_config(directory: Path, stub_port: int) -> Path:
    liar = "report_tokens_out: 500, report_cost_usd: 0.05"
    upstream = f"backend: openai, model: stub, base_url: 'http://127.0.0.1:{stub_port}/v1'"
    path = directory / "hostile.yaml"
    path.write_text(
        "default_pipeline: single\n"
        "models:\n"
        # Honest: cut at max_tokens as a real model is (a scripted answer otherwise
        # ignores it, which the gateway rightly counts as a provider fault).
        f"  honest: {{backend: scripted, answer: 'The answer is 42.', stop_at_max_tokens: true, "
        f"{PRICES}}}\n"
        f"  liar: {{backend: scripted, answer: 'The answer is 42.', {liar}, {PRICES}}}\n"
        f"  upstream: {{{upstream}, api_key_env: STUB_API_KEY, {PRICES}}}\n"
        "pipelines:\n"
        f"  single: {{router: {{name: fixed, experts: [honest]}}, aggregator: first, {LIMITS}}}\n"
        "  vote: {router: {name: fixed, experts: [honest, liar, upstream]}, "
        f"aggregator: majority, {LIMITS}}}\n"
        f"  liar: {{router: {{name: fixed, experts: [liar]}}, aggregator: first, {LIMITS}}}\n"
        "  upstream: {router: {name: fixed, experts: [upstream]}, aggregator: first, "
        f"{LIMITS}}}\n"
    )
    return path


# Pipelines and experts whose only provider lies: once their circuit breakers open (as
# they should: over-reporting counts as a fault), a 503 `pipeline_failed` is the correct
# answer, so it is counted apart from the server errors the bars are about.
LIARS_ONLY = frozenset({"signoria/liar", "signoria/upstream", "liar", "upstream"})
# What schemathesis may name: every served id that has an honest expert behind it.
FUZZED_IDS = ["signoria/single", "signoria/vote", "honest"]


class Ledger:
    """What the server answered: statuses, and the id and budget of every 200."""

    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()
        self.answered: dict[str, float] = {}  # request id -> its budget

        # "<model> <status> <code>" -> count, for every 5xx: which pipeline failed and how.
        self.server_errors: Counter[str] = Counter()
        # 503 pipeline_failed of a liars-only pipeline: its breaker refusing, as it should.
        self.breaker_refusals = 0

    def add(
        self,
        status: int,
        request_id: str | None,
        budget: float | None,
        model: str = "",
        body: str = "",
    ) -> None:
        if status == 503 and model in LIARS_ONLY and error_code(body) == "pipeline_failed":
            self.breaker_refusals += 1
            return
        self.statuses[status] += 1
        if status >= 500:
            self.server_errors[f"{model or '-'} {status} {error_code(body)}"] += 1
        if status == 200 and request_id:
            self.answered[request_id] = CAP_USD if budget is None else min(budget, CAP_USD)


def send(client: httpx.Client, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    sent = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}", **headers}
    return client.post(path, content=body, headers=sent)


def run_cases(client: httpx.Client, ledger: Ledger) -> list[dict[str, Any]]:
    outcomes = []
    for case in cases("signoria/single", "signoria/vote", "honest", CAP_USD):
        response = send(client, case.path, case.body, case.headers)
        request_id = response.headers.get("x-request-id")
        ledger.add(
            response.status_code,
            request_id,
            case.budget_usd,
            model_of(case.body.decode()),
            response.text,
        )
        outcomes.append(
            {
                "case": case.name,
                "status": response.status_code,
                "expected": list(case.expect),
                "ok": response.status_code in case.expect,
            }
        )
    return outcomes


def lying_soak(client: httpx.Client, ledger: Ledger, requests: int) -> None:
    for i in range(requests):
        model = ("signoria/liar", "signoria/upstream", "signoria/vote")[i % 3]
        budget = (CAP_USD, CAP_USD / 2, 0.0015)[i % 3]
        body = {"model": model, "messages": USER, "signoria": {"budget_usd": budget}}
        response = send(client, "/v1/chat/completions", json.dumps(body).encode(), {})
        request_id = response.headers.get("x-request-id")
        ledger.add(response.status_code, request_id, budget, model, response.text)


def refused_by_openai_client(base_url: str, db: Path) -> dict[str, Any]:
    """A budget refusal through the official client with its default retries."""
    from openai import APIStatusError, OpenAI

    before = count_items(db)
    client = OpenAI(base_url=f"{base_url}/v1", api_key=KEY)  # max_retries=2, the default
    status = None
    try:
        client.chat.completions.create(
            model="signoria/vote",
            messages=USER,  # type: ignore[arg-type]
            extra_body={"signoria": {"budget_usd": 1e-9}},
        )
    except APIStatusError as exc:
        status = exc.status_code
    time.sleep(0.5)  # the record is written in a worker thread
    return {"status": status, "requests_recorded": count_items(db) - before}


def count_items(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM items").fetchone()[0])


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}"}


def timed_requests(base_url: str, n: int, ledger: Ledger) -> list[float]:
    """Each on a fresh connection, as a new client of a server under attack would open;
    a request that fails counts as 30 s (the client's timeout)."""
    body = {"model": "signoria/single", "messages": USER}
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        try:
            response = httpx.post(
                f"{base_url}/v1/chat/completions", json=body, headers=auth(), timeout=30
            )
        except httpx.HTTPError:
            times.append(30.0)
            ledger.statuses[0] += 1  # no HTTP answer at all
            continue
        times.append(time.perf_counter() - t0)
        ledger.add(response.status_code, response.headers.get("x-request-id"), None)
    return times


def slow_header_flood(port: int, sockets: int, base_url: str, ledger: Ledger) -> dict[str, Any]:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, sockets + 1024), hard))
    timed_requests(base_url, 5, ledger)  # warm-up
    idle = timed_requests(base_url, 20, ledger)
    opened: list[socket.socket] = []
    refused = 0
    for _ in range(sockets):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=2)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            opened.append(sock)
        except OSError:
            refused += 1
    try:
        flooded = timed_requests(base_url, 20, ledger)
    finally:
        still_open = sum(1 for s in opened if _open(s))
        for sock in opened:
            sock.close()
    return {
        "sockets": sockets,
        "refused_at_connect": refused,
        "still_open_after": still_open,
        "idle_median_s": statistics.median(idle),
        "flood_median_s": statistics.median(flooded),
        "flood_max_s": max(flooded),
        "ratio": statistics.median(flooded) / statistics.median(idle),
    }


def _open(sock: socket.socket) -> bool:
    """Whether the server still holds the connection (a closed one reads as EOF)."""
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def recorded(db: Path) -> dict[str, float | None]:
    with sqlite3.connect(db) as conn:
        return {key: cost for key, cost in conn.execute("SELECT item_key, cost FROM items")}


def main(
    flood: int, examples: int, soak: int, seed: int, max_time_s: int, keep: Path | None
) -> dict[str, Any]:
    stub_port, port = free_port(), free_port()
    env = {**os.environ, "STUB_API_KEY": "stub-key", "SIGNORIA_API_KEYS": KEY}
    ledger = Ledger()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) if keep is None else keep
        directory.mkdir(parents=True, exist_ok=True)
        db = directory / "hostile.db"
        serve = signoria_argv(
            write_config(directory, stub_port),
            port,
            *(
                "--db",
                f"sqlite:///{db}",
                "--budget-cap-usd",
                str(CAP_USD),
                "--log-level",
                "warning",
            ),
        )
        base_url, stub_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{stub_port}"
        with (
            process(stub_argv(stub_port, 1, "--overrun", "500"), f"{stub_url}/v1/models"),
            process(serve, f"{base_url}/health", env),
            httpx.Client(base_url=base_url, timeout=60) as client,
        ):
            case_outcomes = run_cases(client, ledger)
            lying_soak(client, ledger, soak)
            openai_refusal = refused_by_openai_client(base_url, db)
            fuzz, exchanges = run_schemathesis(
                base_url, KEY, FUZZED_IDS, directory, examples, seed, max_time_s
            )
            for exchange in exchanges:
                ledger.add(*exchange)
            flood_report = slow_header_flood(port, flood, base_url, ledger)
            time.sleep(1.0)  # the last records are written in worker threads
            rows = recorded(db)
    unrecorded = [rid for rid in ledger.answered if rid not in rows]
    ratios = [
        (rows[rid] or 0.0) / budget
        for rid, budget in ledger.answered.items()
        if rid in rows and budget > 0 and rows[rid] is not None
    ]
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "seed": seed,
        # Requests with an HTTP answer or none (status 0), the openai client's included.
        "requests_sent": sum(ledger.statuses.values()) + ledger.breaker_refusals + 1,
        "liars_only_503_breaker_open": ledger.breaker_refusals,
        "statuses": {str(k): v for k, v in sorted(ledger.statuses.items())},
        "server_errors_5xx": sum(v for k, v in ledger.statuses.items() if k >= 500),
        "server_errors_by_model": dict(ledger.server_errors.most_common()),
        "answered": len(ledger.answered),
        "answered_not_recorded": len(unrecorded),
        "max_spend_over_budget": max(ratios, default=None),
        "cases": case_outcomes,
        "cases_failed": [c["case"] for c in case_outcomes if not c["ok"]],
        "openai_client_budget_refusal": openai_refusal,
        "schemathesis": fuzz,
        "slow_header_flood": flood_report,
    }


def failed_bars(report: dict[str, Any]) -> list[str]:
    flood = report["slow_header_flood"]
    refusal = report["openai_client_budget_refusal"]
    checks = {
        "0 x 5xx": report["server_errors_5xx"] == 0,
        "every request got an HTTP answer": report["statuses"].get("0", 0) == 0,
        "0 answered-but-unrecorded": report["answered_not_recorded"] == 0,
        "max spend/budget <= 1.0": (report["max_spend_over_budget"] or 0.0) <= 1.0 + 1e-9,
        "every hand-written case as expected": not report["cases_failed"],
        "one request for an openai-client budget refusal": refusal["requests_recorded"] == 1,
        "latency under the flood <= 2 x idle": flood["ratio"] <= 2.0,
    }
    return [name for name, ok in checks.items() if not ok]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flood", type=int, default=2000, help="slow-header sockets")
    parser.add_argument("--examples", type=int, default=100, help="schemathesis, per operation")
    parser.add_argument("--soak", type=int, default=150, help="budgeted requests via liars")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-time", type=int, default=300, help="schemathesis, seconds")
    parser.add_argument("--keep", type=Path, help="keep the database, spec and HAR here")
    parser.add_argument("--json", action="store_true", help="the whole report as JSON")
    args = parser.parse_args()
    report = main(args.flood, args.examples, args.soak, args.seed, args.max_time, args.keep)
    failed = failed_bars(report)
    if args.json:
        print(json.dumps(report, indent=2))
    flood = report["slow_header_flood"]
    print(
        f"hostile client: {report['requests_sent']} requests {report['statuses']}; "
        f"5xx {report['server_errors_5xx']} (and {report['liars_only_503_breaker_open']} "
        "liars-only 503s, breaker open); "
        f"answered {report['answered']}, not recorded {report['answered_not_recorded']}; "
        f"max spend/budget {report['max_spend_over_budget']}; "
        f"cases failed {report['cases_failed'] or 'none'}; openai-client budget refusal "
        f"{report['openai_client_budget_refusal']}; schemathesis "
        f"{report['schemathesis']['requests']} requests; flood of {flood['sockets']}: "
        f"median {flood['flood_median_s'] * 1000:.1f} ms vs idle "
        f"{flood['idle_median_s'] * 1000:.1f} ms ({flood['ratio']:.2f}x)"
    )
    print("bars: " + ("all met" if not failed else "FAILED: " + "; ".join(failed)))
    sys.exit(1 if failed else 0)
