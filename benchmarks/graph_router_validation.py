"""GraphRouter variants against the MLP on a validation split carved from training only.

    .venv/bin/python -m benchmarks.graph_router_validation [--seeds 0 1 2 3 4] \
        [--tables routerbench llmrouter] [--scenario balanced] \
        --variant base='{}' --variant wd='{"weight_decay": 0.001}' > results.json

How GraphRouter settings are chosen without looking at the test split: for each seed s,
`train, test = table.split(0.2, s)` exactly as in `graph_router_seeds.py`, then
`inner, val = train.split(0.15, s + 1000)`; every variant (GraphConfig fields as JSON)
and the MLP are fitted on `inner` with training seed s and scored on `val`. The test
split is never read. Per table: the reward of each variant and of the MLP per seed, the
mean over seeds, and the variant's wins against the MLP. Markdown on stderr, JSON on
stdout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import Any

from benchmarks.graph_router import CACHE, TABLES, evaluate, fit, load
from signoria.routers.baselines import MLPRouter
from signoria.routers.embedding import Embedder
from signoria.routers.graph import GraphConfig, GraphRouter
from signoria.routers.trainable import RouterContext, TradeOff, TrainableRouter


def parse_variant(text: str) -> tuple[str, GraphConfig]:
    name, _, fields = text.partition("=")
    return name, GraphConfig.model_validate(json.loads(fields or "{}"))


def one_seed(
    name: str, seed: int, scenario: str, variants: dict[str, GraphConfig], embedder: Embedder
) -> dict[str, float]:
    train, _test = load(name, None).split(test_fraction=0.2, seed=seed)
    inner, val = train.split(test_fraction=0.15, seed=seed + 1000)
    ctx = RouterContext.from_table(inner, TradeOff.scenario(scenario), seed, embedder)
    routers: dict[str, TrainableRouter] = {"mlp": MLPRouter()}
    routers.update({label: GraphRouter(config) for label, config in variants.items()})
    rewards = {}
    for label, router in routers.items():
        fit(router, inner, ctx)
        rewards[label] = float(evaluate(router, val, ctx)["reward"])
    return rewards


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--tables", nargs="+", default=list(TABLES), choices=list(TABLES))
    parser.add_argument("--scenario", default="balanced")
    parser.add_argument("--variant", action="append", default=[], help="NAME=JSON fields")
    args = parser.parse_args()
    variants = dict(parse_variant(v) for v in args.variant or ["base={}"])
    embedder = Embedder.load(CACHE)
    out: dict[str, Any] = {"scenario": args.scenario, "seeds": args.seeds, "tables": {}}
    for name in args.tables:
        per_seed = {}
        for seed in args.seeds:
            per_seed[seed] = one_seed(name, seed, args.scenario, variants, embedder)
            print(name, seed, {k: round(v, 4) for k, v in per_seed[seed].items()}, file=sys.stderr)
        labels = ["mlp", *variants]
        summary = {
            label: {
                "mean": statistics.fmean(r[label] for r in per_seed.values()),
                "wins_vs_mlp": sum(r[label] > r["mlp"] for r in per_seed.values()),
            }
            for label in labels
        }
        out["tables"][name] = {"per_seed": per_seed, "summary": summary}
        lines = [f"\n| {name}, validation reward | mean | wins vs MLP |", "|---|---|---|"]
        for label in labels:
            s = summary[label]
            lines.append(f"| {label} | {s['mean']:.4f} | {s['wins_vs_mlp']}/{len(args.seeds)} |")
        print("\n".join(lines), file=sys.stderr)
    embedder.save(CACHE)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
