"""GraphRouter against the baselines on the shared routing tables (80/20 split, seed 0).

    .venv/bin/python -m benchmarks.graph_router [--seed 0] [--quick] [--epochs N] [--hidden H]

For RouterBench (recorded costs) and LLMRouter (costs *estimated* from prices and token
counts, the table has none), on the test split of `RoutingTable.split(0.2, 0)`:
- balanced scenario (alpha = beta = 0.5): mean reward, quality, cost, call share of
  GraphRouter, kNN, MLP, best-single (and random and the oracle as the bounds);
  "graph" is the default (quality) readout, "graph (reward head)" the same network read
  out through the paper's reward-classification head;
- performance-first (alpha=1, beta=0): GraphRouter vs best-single, quality and cost;
- inductive: GraphRouter trained without one model, routed with that model added from its
  description (no retraining), against GraphRouter trained with it and against routing
  among the seen models only. The held-out router keeps the full table's cost scale so
  the trade-off is the same one.
  The same at performance-first, where a strong new model should actually be chosen.
- timing: fit seconds of GraphRouter on the largest table (embeddings cached beforehand,
  so fit time only) and routing milliseconds per query over a batch of 256 (cached
  embeddings, median of 5).
Prints markdown tables and one JSON line. `--quick` cuts each table to 600 rows and 40
epochs (a smoke run, not a result).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np

from signoria.routers.baselines import BestSingle, KNNRouter, MLPRouter, RandomRouter
from signoria.routers.data import RoutingTable, load_models, load_table
from signoria.routers.embedding import Embedder
from signoria.routers.graph import GraphConfig, GraphRouter
from signoria.routers.metrics import summarise
from signoria.routers.trainable import RouterContext, TradeOff, TrainableRouter, choose

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
TABLES = {
    "routerbench": ("routerbench", "gpt-4-1106-preview"),
    "llmrouter": ("llmrouter", "llama-3.3-nemotron-super-49b-v1"),
}
CACHE = Path("/tmp/signoria-graph-bench-embeddings.npz")


def load(name: str, limit: int | None) -> RoutingTable:
    folder = DATA / TABLES[name][0]
    return load_table(folder / "train.jsonl", load_models(folder / "models.json"), limit=limit)


def evaluate(router: TrainableRouter, test: RoutingTable, ctx: RouterContext) -> dict[str, Any]:
    choice = choose(router.utilities(test.queries, ctx))
    result = summarise(test, choice, ctx.reward(test))
    result["cost_per_query"] = None if result["cost"] is None else result["cost"] / len(test)
    return result


def oracle(test: RoutingTable, ctx: RouterContext) -> dict[str, Any]:
    reward = ctx.reward(test)
    result = summarise(test, np.argmax(reward, axis=1), reward)
    result["cost_per_query"] = None if result["cost"] is None else result["cost"] / len(test)
    return result


def with_readout(
    router: GraphRouter,
    readout: Literal["reward", "quality"],
    test: RoutingTable,
    ctx: RouterContext,
) -> dict[str, Any]:
    """The same trained network read out through its other head."""
    default = router.readout
    router.readout = readout
    try:
        return evaluate(router, test, ctx)
    finally:
        router.readout = default


def fit(router: TrainableRouter, table: RoutingTable, ctx: RouterContext) -> float:
    np.random.seed(ctx.seed)
    t0 = time.perf_counter()
    router.fit(table, ctx)
    return time.perf_counter() - t0


def fit_without(
    model: str, train: RoutingTable, reference: RouterContext, config: GraphConfig
) -> tuple[GraphRouter, RouterContext]:
    """A GraphRouter fitted on `train` without `model`'s column, at `reference`'s
    trade-off, seed and cost scale (so the held-out router faces the same trade-off), and
    the context of the seen models it was fitted in."""
    seen = train.without_model(model)
    ctx = RouterContext.from_table(seen, reference.trade_off, reference.seed, reference.embedder)
    ctx = dataclasses.replace(ctx, cost_scale=reference.cost_scale)
    router = GraphRouter(config)
    fit(router, seen, ctx)
    return router, ctx


def share(result: dict[str, Any]) -> str:
    top = sorted(result["call_share"].items(), key=lambda kv: -kv[1])
    return ", ".join(f"{m} {s:.0%}" for m, s in top if s >= 0.05) or "-"


def row(name: str, r: dict[str, Any]) -> str:
    cost = "n/a" if r["cost_per_query"] is None else f"{r['cost_per_query'] * 1000:.4f}"
    return f"| {name} | {r['reward']:.4f} | {r['quality']:.4f} | {cost} | {share(r)} |"


def routing_ms(router: GraphRouter, queries: list[str], ctx: RouterContext) -> float:
    batch = (queries * (256 // max(1, len(queries)) + 1))[:256]
    router.utilities(batch, ctx)  # warm-up
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        router.utilities(batch, ctx)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / len(batch) * 1000


def bench_table(
    name: str, args: argparse.Namespace, config: GraphConfig, embedder: Embedder
) -> dict[str, Any]:
    table = load(name, 600 if args.quick else None)
    train, test = table.split(test_fraction=0.2, seed=0)
    t0 = time.perf_counter()
    embedder.embed(table.queries)
    embed_s = time.perf_counter() - t0
    out: dict[str, Any] = {
        "rows": len(table),
        "train": len(train),
        "test": len(test),
        "models": len(table.models),
        "cost_estimated": table.cost_estimated,
        "embed_seconds": round(embed_s, 1),
    }
    balanced = RouterContext.from_table(train, TradeOff.scenario("balanced"), args.seed, embedder)
    results: dict[str, dict[str, Any]] = {}
    fits: dict[str, float] = {}
    routers: dict[str, TrainableRouter] = {
        "graph": GraphRouter(config),
        "knn": KNNRouter(),
        "mlp": MLPRouter(),
        "best-single": BestSingle(),
        "random": RandomRouter(),
    }
    for key, router in routers.items():
        fits[key] = fit(router, train, balanced)
        results[key] = evaluate(router, test, balanced)
    graph = routers["graph"]
    assert isinstance(graph, GraphRouter)
    results["graph (reward head)"] = with_readout(graph, "reward", test, balanced)
    results["oracle"] = oracle(test, balanced)
    out["balanced"] = results
    out["fit_seconds"] = {k: round(v, 2) for k, v in fits.items()}
    out["route_ms_per_query_b256"] = round(routing_ms(graph, test.queries, balanced), 3)

    perf = RouterContext.from_table(train, TradeOff.scenario("performance"), args.seed, embedder)
    perf_results = {}
    perf_graph = GraphRouter(config)
    for key, router in (("graph", perf_graph), ("best-single", BestSingle())):
        fit(router, train, perf)
        perf_results[key] = evaluate(router, test, perf)
    perf_results["graph (reward head)"] = with_readout(perf_graph, "reward", test, perf)
    perf_results["oracle"] = oracle(test, perf)
    out["performance"] = perf_results

    held = TABLES[name][1]
    inductive, seen_ctx = fit_without(held, train, balanced, config)
    seen_best = BestSingle()
    fit(seen_best, train.without_model(held), seen_ctx)
    out["inductive"] = {
        "held_out": held,
        "graph_trained_with_it": results["graph"],
        "graph_new_model_from_description": evaluate(inductive, test, balanced),
        "graph_seen_models_only": evaluate(inductive, test.without_model(held), seen_ctx),
        "best_single_seen_models": evaluate(seen_best, test.without_model(held), seen_ctx),
    }
    # Performance-first is where a strong new model should be picked up at all.
    inductive_perf, seen_perf = fit_without(held, train, perf, config)
    out["inductive_performance"] = {
        "held_out": held,
        "graph_trained_with_it": perf_results["graph"],
        "graph_new_model_from_description": evaluate(inductive_perf, test, perf),
        "graph_seen_models_only": evaluate(inductive_perf, test.without_model(held), seen_perf),
    }
    return out


def held_share(r: dict[str, Any], key: str) -> float:
    section = r[key]
    share_: float = section["graph_new_model_from_description"]["call_share"].get(
        section["held_out"], 0.0
    )
    return share_


def markdown(name: str, r: dict[str, Any]) -> str:
    head = (
        "| router | reward | quality | cost (mUSD/query) | call share (≥5%) |\n" + "|---" * 5 + "|"
    )
    perf_with = r["inductive_performance"]["graph_trained_with_it"]["call_share"]
    trained_share = perf_with.get(r["inductive"]["held_out"], 0.0)
    est = " (cost estimated from prices x tokens)" if r["cost_estimated"] else ""
    lines = [
        f"### {name}: {r['rows']} rows, {r['models']} models; train {r['train']} / "
        f"test {r['test']}{est}",
        "",
        "Balanced (alpha = beta = 0.5), test split:",
        "",
        head,
        *(row(k, v) for k, v in r["balanced"].items()),
        "",
        "Performance-first (alpha = 1, beta = 0):",
        "",
        head,
        *(row(k, v) for k, v in r["performance"].items()),
        "",
        f"Inductive, balanced: `{r['inductive']['held_out']}` held out of training:",
        "",
        head,
        *(row(k, v) for k, v in r["inductive"].items() if isinstance(v, dict)),
        "",
        "Inductive, performance-first, same held-out model:",
        "",
        head,
        *(row(k, v) for k, v in r["inductive_performance"].items() if isinstance(v, dict)),
        "",
        f"Share of test queries routed to the held-out model when added from its "
        f"description: balanced {held_share(r, 'inductive'):.1%}, performance-first "
        f"{held_share(r, 'inductive_performance'):.1%} (GraphRouter trained with it, "
        f"performance-first: {trained_share:.1%}).",
        "",
        f"Fit seconds: {r['fit_seconds']}; GraphRouter routing "
        f"{r['route_ms_per_query_b256']} ms/query (batch 256, embeddings cached); "
        f"embedding the table took {r['embed_seconds']} s (not in fit time).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="training seed (split seed is 0)")
    parser.add_argument("--quick", action="store_true", help="600 rows, 40 epochs: smoke run")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--hidden", type=int, default=None)
    parser.add_argument("--tables", nargs="+", default=list(TABLES), choices=list(TABLES))
    args = parser.parse_args()
    overrides: dict[str, Any] = {}
    if args.quick:
        overrides["epochs"] = 40
    if args.epochs:
        overrides["epochs"] = args.epochs
    if args.hidden:
        overrides["hidden"] = args.hidden
    config = GraphConfig(**overrides)
    embedder = Embedder.load(CACHE)
    report: dict[str, Any] = {
        "seed": args.seed,
        "split": "RoutingTable.split(0.2, seed=0)",
        "quick": args.quick,
        "graph_config": config.model_dump(),
        "hardware": f"{platform.machine()}, {os.cpu_count()} cores (shared), "
        f"python {platform.python_version()}",
    }
    for name in args.tables:
        report[name] = bench_table(name, args, config, embedder)
        embedder.save(CACHE)
        print(markdown(name, report[name]), flush=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
