"""Does pacing hold a cascade's spend at its budget on rows it was not trained on?

    .venv/bin/python -m benchmarks.cascade_pacing [--seeds 0 1 2 3 4] [--rate 0.05]

Decided without the test rows. For each seed s, the RouterBench table is carved as
`benchmarks.cascade_quality` carves it (test = `split(0.3, seed=1000+s)`, never read
here); its training side is split again (salted, 30%) into an inner training part and an
inner held-out part. On the inner training part, `route cascade train`'s search (as
shipped: one validation split, the query prior on) chooses a chain and knob for "best
quality within 25% (50%) of the best single model's cost"; the budget per query is that
share of the best single model's mean cost on the inner training rows. On the held-out
rows, as queries arriving one by one, the cascade runs with its trained knob (static) and
with a pacer from that knob (`cascade.pacing`), the rows in a hashed order (mixed
traffic) and as filed (the tasks in blocks: a shift the pacer must follow). One JSON
document on stdout, a summary on stderr.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from typing import Any

from benchmarks.cascade_quality import CACHE, DATA, EMBEDDER, arriving, interval
from signoria.orchestrator.cascade.commands import budget_for, train_for_targets
from signoria.orchestrator.cascade.pacing import Pacer
from signoria.orchestrator.cascade.policy import AnswerCascade
from signoria.orchestrator.cascade.search import Target
from signoria.routers.data import RoutingTable, load_models, load_table
from signoria.routers.policy import PolicyOutcome, best_single

TARGETS = {"within_25pct_cost": 0.25, "within_50pct_cost": 0.5}
ORDERS = ("static", "paced_mixed", "paced_blocks")


def figures(outcome: PolicyOutcome, held: RoutingTable, strong: int) -> dict[str, float]:
    return {
        "quality_ratio": float(outcome.score.mean() / held.scores[:, strong].mean()),
        "cost_ratio": float(outcome.cost.sum() / held.costs[:, strong].sum()),
    }


def run_target(
    cascade: AnswerCascade, inner: RoutingTable, held: RoutingTable, share: float, rate: float
) -> dict[str, Any]:
    strong = best_single(inner)
    budget = budget_for(inner, Target(cost_ratio=share))
    assert budget is not None  # a cost target on a priced table
    mixed = arriving(held)
    out: dict[str, Any] = {"budget_usd": budget, "value_usd": cascade.settings.value_usd}
    out["static"] = figures(cascade.outcome(held), held, strong)
    for name, rows in (("paced_mixed", mixed), ("paced_blocks", held)):
        pacer = Pacer(budget, cascade.settings.value_usd, rate)
        out[name] = figures(cascade.outcome(rows, pacer=pacer), rows, strong)
    return out


def one_seed(table: RoutingTable, seed: int, rate: float) -> dict[str, Any]:
    train, _ = table.split(0.3, seed=1000 + seed)  # the test side is never used here
    inner, held = train.split(0.3, seed=7919 + seed)
    fitted = train_for_targets(
        inner,
        chain=None,
        value_usd=None,
        targets=[Target(cost_ratio=share) for share in TARGETS.values()],
        validation=0.3,
        seed=seed + 100,
        options={"query_prior": True},
        embedder=EMBEDDER,
    )
    out: dict[str, Any] = {"seed": seed, "inner": len(inner), "held_out": len(held)}
    for (name, share), (cascade, _) in zip(TARGETS.items(), fitted, strict=True):
        out[name] = run_target(cascade, inner, held, share, rate)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--rate", type=float, default=0.05)
    args = parser.parse_args()
    table = load_table(DATA / "train.jsonl", load_models(DATA / "models.json"))
    EMBEDDER.embed(table.queries)
    EMBEDDER.save(CACHE)
    t0 = time.perf_counter()
    runs = [one_seed(table, s, args.rate) for s in args.seeds]
    summary = {
        name: {
            order: {
                figure: interval([r[name][order][figure] for r in runs])
                for figure in ("quality_ratio", "cost_ratio")
            }
            for order in ORDERS
        }
        for name in TARGETS
    }
    result = {
        "benchmark": "cascade_pacing",
        "seeds": args.seeds,
        "rate": args.rate,
        "machine": f"{platform.machine()}, 2 cores, python {platform.python_version()}",
        "seconds": round(time.perf_counter() - t0, 1),
        "runs": runs,
        "summary": summary,
    }
    print(json.dumps(result))
    for name, orders in summary.items():
        for order, f in orders.items():
            q, c = f["quality_ratio"], f["cost_ratio"]
            print(
                f"{name} {order}: quality {q['mean']:.3f} ± {q['ci95']:.3f}, cost "
                f"{c['mean']:.3f} ± {c['ci95']:.3f} (min {c['min']:.3f}, max {c['max']:.3f})",
                file=sys.stderr,
            )


if __name__ == "__main__":
    main()
