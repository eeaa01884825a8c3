"""Training time and routing-decision latency of every trainable router (issue 7).

    nice -n 5 .venv/bin/python -m benchmarks.router_speed [--seed 0] [--quick]

Every router in `signoria.routers.registry.TRAINABLE` (baselines, cost-aware, skills, graph) is
built with its defaults and trained at the balanced scenario (alpha = beta = 0.5) on the
LLMRouter table (`../shared/data/llmrouter`, 5476 rows, 9 models; costs estimated from
prices). Rows are split by `RoutingTable.split(--test-fraction, --seed)`, 0.08 by default
so that the training side can hold 5,000 rows (the issue's size; fewer are used, and
said, if it holds fewer); `--train-rows` of it, drawn with `--seed`, are the training
set, and routing is timed on test rows no router trained on.

Embeddings are warmed first (every training and test query plus the skills vocabulary,
kept in graph_router's cache file), so fit seconds and routing ms exclude embedding; the
cold embedding cost of an unseen query is reported separately. Per router:
- fit seconds: wall time of `fit` on the training set (training seed `--seed`);
- ms/query at batch 256: `utilities` + argmax on 256 test queries, one warm-up, median of
  `--repeats` (5) timings divided by 256;
- ms at batch 1: one test query per call, one warm-up, median of `--single` (20) calls.
Bars (issue 7): fit <= 60 s on 5k rows; <= 5 ms/query amortised over a batch of 256.
Prints one JSON object on stdout and its one-line `summary` (also in the JSON) on
stderr. `--quick`: 500 training rows (a smoke run, not a result).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from benchmarks.graph_router import CACHE, fit, load
from signoria.routers.data import RoutingTable
from signoria.routers.embedding import Embedder
from signoria.routers.registry import ROUTERS, TRAINABLE
from signoria.routers.skills.keywords import VOCABULARY
from signoria.routers.trainable import RouterContext, TradeOff, choose

FIT_BAR_S = 60.0
ROUTE_BAR_MS = 5.0
BATCH = 256


def sig(x: float) -> float:
    """Three significant digits: sub-microsecond routers must not print as 0."""
    return float(f"{x:.3g}")


def median_ms(call: Callable[[], object], repeats: int) -> float:
    """Median wall milliseconds of `repeats` calls, after one warm-up call."""
    call()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def single_ms(decide: Callable[[list[str]], object], queries: Sequence[str], n: int) -> float:
    """Median ms of deciding one query at a time, a different test query each call."""
    decide([queries[-1]])  # warm-up
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        decide([queries[i % len(queries)]])
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def split(args: argparse.Namespace) -> tuple[RoutingTable, RoutingTable, str]:
    table = load("llmrouter", None)
    train, test = table.split(test_fraction=args.test_fraction, seed=args.seed)
    note = ""
    if len(train) < args.train_rows:
        note = f"only {len(train)} training rows after the split (asked {args.train_rows})"
    rng = np.random.default_rng(args.seed)
    keep = np.sort(rng.choice(len(train), min(args.train_rows, len(train)), replace=False))
    if len(test) < BATCH:
        raise SystemExit(f"{len(test)} test rows, fewer than a batch of {BATCH}")
    return train.subset(keep.tolist()), test, note


def warm(embedder: Embedder, texts: list[str], test: list[str]) -> dict[str, Any]:
    """Fill the embedding cache; how long that took and the cold cost of test queries."""
    t0 = time.perf_counter()
    before = len(embedder.cache)
    embedder.embed(texts)
    warm_s = time.perf_counter() - t0
    embedder.save(CACHE)
    sample = test[:BATCH]

    def cold(texts: list[str]) -> object:
        """A fresh embedder with no cache, memory or disk: every call embeds."""
        return Embedder(disk=False).embed(texts)

    cold(sample[:1])  # loads the model if the cache made that unnecessary
    return {
        "cache_file": str(CACHE),
        "texts": len(set(texts)),
        "newly_embedded": len(embedder.cache) - before,
        "warm_seconds": round(warm_s, 2),
        "cold_ms_per_query_b256": sig(median_ms(lambda: cold(sample), 3) / BATCH),
        "cold_ms_b1": sig(single_ms(cold, test[BATCH:], 20)),
    }


def bench_router(
    name: str,
    train: RoutingTable,
    test: RoutingTable,
    ctx: RouterContext,
    args: argparse.Namespace,
) -> dict[str, Any]:
    router = TRAINABLE.load(name)()
    cached = len(ctx.embedder.cache)
    try:
        fit_s = fit(router, train, ctx)
    except Exception as exc:  # a broken router is reported, not fatal to the run
        return {"error": f"fit: {type(exc).__name__}: {exc}"}

    def decide(queries: list[str]) -> np.ndarray:
        return choose(router.utilities(queries, ctx))

    batch = test.queries[:BATCH]
    try:
        b256 = median_ms(lambda: decide(batch), args.repeats) / len(batch)
        b1 = single_ms(decide, test.queries[BATCH:], args.single)
    except Exception as exc:
        return {"fit_seconds": round(fit_s, 3), "error": f"route: {type(exc).__name__}: {exc}"}
    return {
        "class": f"{type(router).__module__}.{type(router).__qualname__}",
        "fit_seconds": round(fit_s, 3),
        "ms_per_query_b256": sig(b256),
        "ms_b1": sig(b1),
        # Should be 0: the cache was warmed, so no timing above includes embedding.
        "texts_embedded_during_timing": len(ctx.embedder.cache) - cached,
        "fit_bar_met": fit_s <= FIT_BAR_S,
        "route_bar_met": b256 <= ROUTE_BAR_MS,
    }


def hardware() -> dict[str, Any]:
    return {
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "gpu": torch.cuda.is_available(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "shared": "2 cores shared with other work; run under nice -n 5",
    }


def summary(report: dict[str, Any]) -> str:
    results: dict[str, dict[str, Any]] = report["routers"]
    ok = {k: v for k, v in results.items() if "error" not in v}

    def names(key: str, met: bool) -> str:
        return ", ".join(k for k, v in ok.items() if v.get(key) is met) or "none"

    failed = ", ".join(f"{k} ({v['error'][:60]})" for k, v in results.items() if "error" in v)
    slow_fit = max(ok, key=lambda k: ok[k]["fit_seconds"]) if ok else "-"
    slow_route = max(ok, key=lambda k: ok[k]["ms_per_query_b256"]) if ok else "-"
    n = report["train_rows"]
    return (
        f"router_speed: {len(results)} routers, fit on {n} rows (seed {report['seed']}). "
        f"fit <= {FIT_BAR_S:.0f} s: met by {names('fit_bar_met', True)}; "
        f"missed by {names('fit_bar_met', False)}. "
        f"<= {ROUTE_BAR_MS:.0f} ms/query at batch {BATCH}: met by "
        f"{names('route_bar_met', True)}; missed by {names('route_bar_met', False)}. "
        f"Slowest fit {slow_fit} {ok.get(slow_fit, {}).get('fit_seconds', '-')} s, slowest "
        f"route {slow_route} {ok.get(slow_route, {}).get('ms_per_query_b256', '-')} ms/q."
        + (f" Failed: {failed}." if failed else "")
        + (f" NOTE: {report['note']}." if report["note"] else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="split, subset and training seed")
    parser.add_argument("--quick", action="store_true", help="500 training rows: smoke run")
    parser.add_argument("--train-rows", type=int, default=5000)
    parser.add_argument("--test-fraction", type=float, default=0.08)
    parser.add_argument("--repeats", type=int, default=5, help="timings of the 256 batch")
    parser.add_argument("--single", type=int, default=20, help="timings of single queries")
    parser.add_argument("--routers", nargs="+", default=list(TRAINABLE), choices=list(TRAINABLE))
    args = parser.parse_args()
    if args.quick:
        args.train_rows = 500
    args.repeats, args.single = max(5, args.repeats), max(20, args.single)
    started = datetime.datetime.now(datetime.UTC)
    train, test, note = split(args)
    embedder = Embedder.load(CACHE)
    embedding = warm(embedder, [*train.queries, *test.queries, *VOCABULARY], test.queries)
    ctx = RouterContext.from_table(train, TradeOff.scenario("balanced"), args.seed, embedder)
    report: dict[str, Any] = {
        "benchmark": "router_speed",
        "started_utc": started.isoformat(timespec="seconds"),
        "seed": args.seed,
        "quick": args.quick,
        "table": "../shared/data/llmrouter/train.jsonl (costs estimated from prices)",
        "split": f"RoutingTable.split({args.test_fraction}, seed={args.seed})",
        "train_rows": len(train),
        "test_rows": len(test),
        "models": len(train.models),
        "scenario": "balanced (alpha=0.5, beta=0.5)",
        "batch": BATCH,
        "repeats_b256": args.repeats,
        "repeats_b1": args.single,
        "bars": {"fit_seconds_on_5k_rows": FIT_BAR_S, "ms_per_query_b256": ROUTE_BAR_MS},
        "note": note,
        "embedding": embedding,
        "not_timed": {
            name: "live router: wraps a trained artifact or routes by config, no fit"
            for name in ROUTERS
        },
        "hardware": hardware(),
        "routers": {},
    }
    for name in args.routers:
        report["routers"][name] = bench_router(name, train, test, ctx, args)
        print(f"{name}: {report['routers'][name]}", file=sys.stderr, flush=True)
    report["seconds"] = round((datetime.datetime.now(datetime.UTC) - started).total_seconds(), 1)
    report["hardware"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    report["summary"] = summary(report)
    print(json.dumps(report))  # stdout: the JSON object alone, so `> file.json` is valid JSON
    print(report["summary"], file=sys.stderr)


if __name__ == "__main__":
    main()
