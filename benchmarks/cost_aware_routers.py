"""Do threshold, pareto and cascade beat random and cheapest at equal cost? Held out.

    .venv/bin/python -m benchmarks.cost_aware_routers [--seeds 0 1 2] [--table routerbench]

For each seed s the table is carved first: test = `split(0.3, seed=1000+s)`. On the
training side a validation split (`split(0.3, seed=7919+s)`) chooses, per router, the
predictor (knn, mlp, mf), the weak model (threshold) or first model (cascade), the knob
(threshold: share, pareto: budget_usd, cascade: threshold): the best validation quality
among knob values whose validation cost per row is at most the random router's. The
choice is refitted on all training rows and run once on the test rows beside random and
cheapest (fitted on the same rows).

"At equal cost" is read two ways on the test rows: against random (the chosen point's cost
is at most random's on validation, and both are reported on test), and against the
cheapest model upgraded at random to the best single model until it costs what the router
costs (RouteLLM's random baseline: the straight line from cheapest to best-single).
Reported per seed, mean over seeds, and a paired bootstrap interval (2000 resamples of
test rows) of router minus random quality.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from signoria.routers.artifact import build
from signoria.routers.data import RoutingTable, load_models, load_table
from signoria.routers.embedding import Embedder
from signoria.routers.policy import PolicyOutcome, best_single
from signoria.routers.sweep import KnobSweep
from signoria.routers.trainable import RouterContext, TradeOff, choose

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
ROUTERS = ("threshold", "pareto", "cascade")
PREDICTORS = ("knn", "mlp", "mf")
VALIDATION_SALT = 7919


def fitted(
    name: str,
    predictor: str | None,
    rows: RoutingTable,
    emb: Embedder,
    seed: int,
    weak: str | None = None,
) -> Any:
    ctx = RouterContext.from_table(rows, TradeOff(), seed, emb)
    options: dict[str, Any] = {"predictor": predictor} if predictor else {}
    if weak:
        options[{"threshold": "weak", "cascade": "cheap"}[name]] = weak
    router = build(name, options or None)
    np.random.seed(seed)
    router.fit(rows, ctx)
    return router, ctx


def point(router: Any, ctx: RouterContext, rows: RoutingTable) -> PolicyOutcome:
    return PolicyOutcome.one_call(rows, choose(router.utilities(rows.queries, ctx)))


def per_row(o: PolicyOutcome) -> tuple[float, float]:
    return o.quality(), float(np.nanmean(o.cost))


def line_quality(cost: float, cheap: tuple[float, float], best: tuple[float, float]) -> float:
    """Quality of "cheapest, upgraded at random to best-single" at a cost per row."""
    share = np.clip((cost - cheap[1]) / max(best[1] - cheap[1], 1e-12), 0.0, 1.0)
    return float(cheap[0] + share * (best[0] - cheap[0]))


def one_seed(table: RoutingTable, seed: int, emb: Embedder) -> dict[str, Any]:
    train, test = table.split(0.3, seed=1000 + seed)
    fit_rows, val_rows = train.split(0.3, seed=VALIDATION_SALT + seed)
    val_random = per_row(point(*fitted("random", None, fit_rows, emb, seed), val_rows))
    result: dict[str, Any] = {"seed": seed, "train": len(train), "test": len(test)}
    random_out = point(*fitted("random", None, train, emb, seed), test)
    cheap_out = point(*fitted("cheapest", None, train, emb, seed), test)
    best_j = best_single(train)
    best_out = PolicyOutcome.one_call(test, np.full(len(test), best_j))
    result["random"], result["cheapest"] = per_row(random_out), per_row(cheap_out)
    result["best_single"] = {"model": table.models[best_j], "point": per_row(best_out)}
    for name in ROUTERS:
        candidates = []
        for predictor in PREDICTORS:
            router, ctx = fitted(name, predictor, fit_rows, emb, seed)
            # The pair's weak model (threshold) or the first model (cascade) too: every
            # model of the table, the predictor fitted once.
            key = {"threshold": "weak", "cascade": "cheap"}.get(name)
            weaks = [None, *table.models] if key else [None]
            for weak in weaks:
                if key is not None and weak is not None:
                    router.config = router.config.model_copy(update={key: weak})
                    if name == "threshold" and weak == table.models[router.strong]:
                        continue
                    router.fit_policy(fit_rows, ctx)
                sweep = KnobSweep.of(router, ctx, dict(table.info), val_rows)
                for value in sweep.sweep_values(ctx):
                    q, c = per_row(sweep.outcome_at(value, val_rows, ctx))
                    if c <= val_random[1] + 1e-12:
                        candidates.append((q, -c, predictor, value, weak or ""))
        q_val, _, predictor, value, weak = max(candidates)
        router, ctx = fitted(name, predictor, train, emb, seed, weak or None)
        router.set_knob(value)
        out = point(router, ctx, test)
        q, c = per_row(out)
        diff = out.score - random_out.score
        rng = np.random.default_rng(seed)
        boot = [diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(2000)]
        result[name] = {
            "predictor": predictor,
            **({"model": weak} if weak else {}),
            router.sweep_param: value,
            "validation_quality": q_val,
            "test": (q, c),
            "minus_random": float(diff.mean()),
            "minus_random_ci95": [
                float(np.percentile(boot, 2.5)),
                float(np.percentile(boot, 97.5)),
            ],
            "line_at_its_cost": line_quality(c, per_row(cheap_out), per_row(best_out)),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--table", default="routerbench", choices=["routerbench", "llmrouter"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/cost_aware.json"))
    args = parser.parse_args()
    folder = DATA / args.table
    table = load_table(folder / "train.jsonl", load_models(folder / "models.json"))
    emb = Embedder()
    emb.embed(table.queries)
    t0 = time.perf_counter()
    seeds = [one_seed(table, s, emb) for s in args.seeds]
    summary: dict[str, Any] = {}
    for name in ROUTERS:
        q = [s[name]["test"][0] for s in seeds]
        summary[name] = {
            "quality": float(np.mean(q)),
            "cost_per_row": float(np.mean([s[name]["test"][1] for s in seeds])),
            "minus_random": float(np.mean([s[name]["minus_random"] for s in seeds])),
            "minus_line": float(
                np.mean([s[name]["test"][0] - s[name]["line_at_its_cost"] for s in seeds])
            ),
        }
    for base in ("random", "cheapest"):
        summary[base] = {
            "quality": float(np.mean([s[base][0] for s in seeds])),
            "cost_per_row": float(np.mean([s[base][1] for s in seeds])),
        }
    report = {
        "table": args.table,
        "rows": len(table),
        "cost_estimated": table.cost_estimated,
        "seeds": seeds,
        "summary": summary,
        "seconds": round(time.perf_counter() - t0, 1),
        "machine": f"{platform.machine()} {platform.python_version()}",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
