"""Inductive GraphRouter, every model held out in turn (issue 4's inductive test, in full).

    .venv/bin/python -m benchmarks.graph_router_inductive [--seed 0] \
        [--tables routerbench llmrouter] [--scenarios performance balanced] > results.json

`graph_router.py` holds out one model per table; this holds out each model of each table
once. For held-out model h, on the test split of `RoutingTable.split(0.2, seed)`:
- **with h**: GraphRouter trained on the full training split (one per table and scenario);
- **h from its description**: trained on the training split without h's column, routed
  over every model with h added from its description and prices, no retraining;
- **without h**: the same router routed over the seen models only.
The held-out router keeps the full table's cost scale, so the trade-off is the same one.
Reward (= quality at performance-first) and the share of queries sent to h, per held-out
model and averaged. Markdown on stderr, JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import Any

from benchmarks.graph_router import CACHE, TABLES, evaluate, fit, fit_without, load
from signoria.routers.data import RoutingTable
from signoria.routers.embedding import Embedder
from signoria.routers.graph import GraphConfig, GraphRouter
from signoria.routers.trainable import RouterContext, TradeOff

ARMS = ("with", "from_description", "without")


def held_out(
    train: RoutingTable, test: RoutingTable, ctx: RouterContext, model: str
) -> dict[str, dict[str, float]]:
    router, seen_ctx = fit_without(model, train, ctx, GraphConfig())
    new = evaluate(router, test, ctx)
    without = evaluate(router, test.without_model(model), seen_ctx)
    return {
        "from_description": {"reward": new["reward"], "share": new["call_share"].get(model, 0.0)},
        "without": {"reward": without["reward"], "share": 0.0},
    }


def table_scenario(name: str, scenario: str, seed: int, embedder: Embedder) -> dict[str, Any]:
    train, test = load(name, None).split(test_fraction=0.2, seed=seed)
    ctx = RouterContext.from_table(train, TradeOff.scenario(scenario), seed, embedder)
    full = GraphRouter()
    fit(full, train, ctx)
    trained = evaluate(full, test, ctx)
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for model in train.models:
        rows[model] = {
            "with": {"reward": trained["reward"], "share": trained["call_share"].get(model, 0.0)},
            **held_out(train, test, ctx, model),
        }
        print(name, scenario, model, json.dumps(rows[model]), file=sys.stderr, flush=True)
    mean = {
        arm: {k: statistics.fmean(r[arm][k] for r in rows.values()) for k in ("reward", "share")}
        for arm in ARMS
    }
    return {"per_model": rows, "mean": mean, "test": len(test)}


def markdown(name: str, scenario: str, result: dict[str, Any]) -> str:
    lines = [
        f"\n{name}, {scenario}, {result['test']} test rows: reward (share of queries to h)",
        "",
        "| held-out model h | with h | h from its description | without h |",
        "|---|---|---|---|",
    ]
    rows = {**result["per_model"], "**mean**": result["mean"]}
    for model, r in rows.items():
        cells = [f"{r[a]['reward']:.4f} ({r[a]['share']:.0%})" for a in ARMS[:2]]
        lines.append(f"| {model} | {' | '.join(cells)} | {r['without']['reward']:.4f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tables", nargs="+", default=list(TABLES), choices=list(TABLES))
    parser.add_argument("--scenarios", nargs="+", default=["performance", "balanced"])
    args = parser.parse_args()
    embedder = Embedder.load(CACHE)
    out: dict[str, Any] = {"seed": args.seed}
    for name in args.tables:
        for scenario in args.scenarios:
            result = table_scenario(name, scenario, args.seed, embedder)
            out[f"{name}/{scenario}"] = result
            print(markdown(name, scenario, result), file=sys.stderr, flush=True)
    embedder.save(CACHE)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
