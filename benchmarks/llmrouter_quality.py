"""Does a learned router beat the best single model on LLMRouter's table? Held out.

    .venv/bin/python -m benchmarks.llmrouter_quality [--seeds 0 1 2 3 4] [--validation-only]

LLMRouter's table records no responses, so the answer-aware cascade cannot run on it:
this is the query-only routers' ground. For each seed s the table is carved first: test =
`split(0.3, seed=1000+s)`. On the training side, a validation split (salted seed) chooses
the router (kNN with 10, 50 or 100 neighbours, MLP, GraphRouter, clusters with k = 16,
32 or 64) and its trade-off (alpha = 1 and beta in {0, 0.1, 0.25, 0.5}); the bar is
quality at no more than the best single model's cost, so the choice is the best
validation quality among settings whose validation cost is at most the best single
model's. The chosen setting is refitted on all training rows and run once on
the test rows beside best-single (chosen on the training rows). Costs are estimated
from list prices and token counts (the table records none) and are marked so.
Reported: per seed, mean with a 95% t-interval, and a paired bootstrap interval of router
minus best-single quality on the test rows.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.cascade_quality import interval, paired_bootstrap
from signoria.routers.artifact import build
from signoria.routers.data import RoutingTable, load_models, load_table
from signoria.routers.embedding import Embedder
from signoria.routers.trainable import RouterContext, TradeOff, choose

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "llmrouter"
CACHE = Path("/tmp/signoria-llmrouter-bench-embeddings.npz")
# The candidates the validation split chooses from: label -> (router, its --option values).
CANDIDATES: dict[str, tuple[str, dict[str, Any]]] = {
    "knn": ("knn", {}),
    "knn-50": ("knn", {"neighbours": 50}),
    "knn-100": ("knn", {"neighbours": 100}),
    "mlp": ("mlp", {}),
    "graph": ("graph", {}),
    "cluster-16": ("cluster", {"clusters": 16}),
    "cluster-32": ("cluster", {"clusters": 32}),
    "cluster-64": ("cluster", {"clusters": 64}),
}
BETAS = (0.0, 0.1, 0.25, 0.5)
VALIDATION_SALT = 7919


def run(
    label: str, beta: float, train: RoutingTable, rows: RoutingTable, embedder: Embedder, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Score and (estimated) cost per row of `rows` for a candidate fitted on `train`."""
    ctx = RouterContext.from_table(train, TradeOff(alpha=1.0, beta=beta), seed, embedder)
    name, options = CANDIDATES[label]
    router = build(name, options)
    np.random.seed(seed)
    router.fit(train, ctx)
    pick = choose(router.utilities(rows.queries, ctx))
    index = np.arange(len(rows))
    return rows.scores[index, pick], rows.costs[index, pick]


def one_seed(
    table: RoutingTable, seed: int, embedder: Embedder, validation_only: bool
) -> dict[str, Any]:
    train, test = table.split(0.3, seed=1000 + seed)
    fit_rows, val_rows = train.split(0.3, seed=VALIDATION_SALT + seed)
    best = int(np.argmax(fit_rows.scores.mean(axis=0)))
    ref_cost = float(val_rows.costs[:, best].sum())
    tried: dict[str, dict[str, float]] = {}
    for label in CANDIDATES:
        for beta in BETAS:
            score, cost = run(label, beta, fit_rows, val_rows, embedder, seed)
            tried[f"{label}@beta={beta}"] = {
                "quality": float(score.mean()),
                "cost": float(cost.sum()),
            }
    affordable = {k: v for k, v in tried.items() if v["cost"] <= ref_cost}
    chosen = max(affordable or tried, key=lambda k: tried[k]["quality"])
    out: dict[str, Any] = {
        "seed": seed,
        "train": len(train),
        "test": len(test),
        "validation": {
            "best_single": {
                "model": fit_rows.models[best],
                "quality": float(val_rows.scores[:, best].mean()),
                "cost": ref_cost,
            },
            "tried": tried,
            "chosen": chosen,
        },
    }
    if validation_only:
        return out
    label, beta = chosen.split("@beta=")
    score, cost = run(label, float(beta), train, test, embedder, seed)
    strong = int(np.argmax(train.scores.mean(axis=0)))
    ref_score, ref_cost = test.scores[:, strong], float(test.costs[:, strong].sum())
    out["test"] = {
        "router": chosen,
        "quality": float(score.mean()),
        "cost": float(cost.sum()),
        "cost_ratio": float(cost.sum() / ref_cost),
        "best_single": {
            "model": test.models[strong],
            "quality": float(ref_score.mean()),
            "cost": ref_cost,
        },
        "vs_best_single": paired_bootstrap(score, ref_score, seed),
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--validation-only", action="store_true")
    args = parser.parse_args()
    table = load_table(args.data / "train.jsonl", load_models(args.data / "models.json"))
    embedder = Embedder.load(CACHE)
    embedder.embed(table.queries)
    embedder.save(CACHE)
    t0 = time.perf_counter()
    runs = [one_seed(table, s, embedder, args.validation_only) for s in args.seeds]
    result: dict[str, Any] = {
        "benchmark": "llmrouter_quality",
        "rows": len(table),
        "seeds": args.seeds,
        "cost_estimated": table.cost_estimated,
        "machine": f"{platform.machine()}, 2 cores, python {platform.python_version()}",
        "seconds": round(time.perf_counter() - t0, 1),
        "runs": runs,
    }
    if not args.validation_only:
        gains = [r["test"]["quality"] - r["test"]["best_single"]["quality"] for r in runs]
        result["summary"] = {
            "gain_over_best_single": interval(gains),
            "cost_ratio": interval([r["test"]["cost_ratio"] for r in runs]),
        }
        g, c = result["summary"]["gain_over_best_single"], result["summary"]["cost_ratio"]
        line = f"gain over best-single {g['mean']:+.4f} ± {g['ci95']:.4f}, "
        print(line + f"cost ratio {c['mean']:.3f} ± {c['ci95']:.3f}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
