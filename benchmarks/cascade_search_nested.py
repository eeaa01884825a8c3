"""Which search should choose a cascade's chain and knob: one validation split or folds?

    .venv/bin/python -m benchmarks.cascade_search_nested [--seeds 0 1 2 3 4] [--folds 5]

Decided without the test rows. For each seed s, the RouterBench table is carved as
`benchmarks.cascade_quality` carves it (test = `split(0.3, seed=1000+s)`, never read
here); its training side is split again (salted, 30%) into an inner training part and an
inner held-out part. Each search sees the inner training part only: one 30% validation
split of it (the search before 2026-12-08) or `--folds` cross-fitted folds of it. Each
chosen cascade is refitted on the inner training part and scored once on the inner
held-out part, for the targets "best quality within 25% / 50% of the best single model's
cost". One JSON document on stdout, a summary on stderr.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from typing import Any

from benchmarks.cascade_quality import CACHE, DATA, EMBEDDER, interval
from signoria.orchestrator.cascade.policy import AnswerCascade, CascadeSettings
from signoria.orchestrator.cascade.search import Choice, Target, choose_by_folds, choose_many
from signoria.routers.data import RoutingTable, load_models, load_table
from signoria.routers.policy import best_single

TARGETS = {
    "within_25pct_cost": Target(cost_ratio=0.25),
    "within_50pct_cost": Target(cost_ratio=0.5),
}
BASE = CascadeSettings(chain=(("?",), ("?",)), query_prior=True)


def held_out_figures(inner: RoutingTable, held: RoutingTable, choice: Choice) -> dict[str, float]:
    settings = BASE.model_copy(update={"chain": choice.chain, "value_usd": choice.validation.param})
    outcome = AnswerCascade.fit(inner, settings, EMBEDDER).outcome(held)
    strong = best_single(inner)
    ref_quality = float(held.scores[:, strong].mean())
    ref_cost = float(held.costs[:, strong].sum())
    return {
        "quality_ratio": float(outcome.score.mean()) / ref_quality,
        "cost_ratio": float(outcome.cost.sum()) / ref_cost,
    }


def one_seed(table: RoutingTable, seed: int, folds: int) -> dict[str, Any]:
    train, _ = table.split(0.3, seed=1000 + seed)  # the test side is never used here
    inner, held = train.split(0.3, seed=7919 + seed)
    fit_rows, val_rows = inner.split(0.3, seed=7919 + seed + 100)
    targets = list(TARGETS.values())
    searches = {
        "split": choose_many(fit_rows, val_rows, targets, None, BASE, EMBEDDER),
        "folds": choose_by_folds(inner, targets, folds, seed, None, BASE, EMBEDDER),
    }
    out: dict[str, Any] = {"seed": seed, "inner": len(inner), "held_out": len(held)}
    for search, choices in searches.items():
        out[search] = {
            name: {"chain": choice.chain, **held_out_figures(inner, held, choice)}
            for name, choice in zip(TARGETS, choices, strict=True)
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    table = load_table(DATA / "train.jsonl", load_models(DATA / "models.json"))
    EMBEDDER.embed(table.queries)
    EMBEDDER.save(CACHE)
    t0 = time.perf_counter()
    runs = [one_seed(table, s, args.folds) for s in args.seeds]
    summary = {
        search: {
            name: {
                figure: interval([r[search][name][figure] for r in runs])
                for figure in ("quality_ratio", "cost_ratio")
            }
            for name in TARGETS
        }
        for search in ("split", "folds")
    }
    print(
        json.dumps(
            {
                "benchmark": "cascade_search_nested",
                "seeds": args.seeds,
                "folds": args.folds,
                "machine": f"{platform.machine()}, 2 cores, python {platform.python_version()}",
                "seconds": round(time.perf_counter() - t0, 1),
                "runs": runs,
                "summary": summary,
            }
        )
    )
    for search, targets in summary.items():
        for name, figures in targets.items():
            q, c = figures["quality_ratio"], figures["cost_ratio"]
            print(
                f"{search} {name}: quality {q['mean']:.3f} ± {q['ci95']:.3f} of best-single, "
                f"cost {c['mean']:.3f} ± {c['ci95']:.3f} (min {c['min']:.3f}, max {c['max']:.3f})",
                file=sys.stderr,
            )


if __name__ == "__main__":
    main()
