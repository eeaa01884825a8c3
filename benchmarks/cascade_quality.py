"""Does the answer-aware cascade buy the best single model's quality for less? Held out.

    .venv/bin/python -m benchmarks.cascade_quality [--seeds 0 1 2 3 4] [--validation-only]

For each seed s, the RouterBench table is carved first: test = `split(0.3, seed=1000+s)`,
never read before the final evaluation. Everything else is chosen on the training side:
the cascade's chain and knob on a validation split of it (`route cascade train`'s
search, salted seed s), for three targets relative to the best single model of the
training rows (GPT-4): the best quality within 25% and within 50% of its cost, and the
cheapest point reaching its quality. Each chosen cascade is refitted on all training
rows and run once on the test rows, beside:
- best-single (chosen on training rows), the cheapest model, and random routing between
  the two at the cascade's own cost (expected value, exact);
- for the cost targets, the same cascade holding its budget with a pacer (`budget_usd` =
  the target share of the best single model's mean cost on the training rows; the test
  rows arrive in an order fixed by a hash of their ids), added 2026-12-08;
- the hand rule of issue 18 (Mixtral-8x7B and Yi-34B; accept when their letters agree,
  else GPT-4; MBPP to GPT-3.5), fixed in advance;
- two-model (RouteLLM style, GPT-4 vs Mixtral only): the cascade (Mixtral, then GPT-4)
  ranks queries by its predicted gain after reading Mixtral's answer; PGR curve, APGR,
  CPT(50%/80%) and the GPT-4 call share needed for 95% of GPT-4's quality, next to
  random (APGR 0.5 by construction).
Reported: per seed and mean with a 95% t-interval over seeds; for each target a paired
bootstrap interval (2,000 resamples of test rows) of cascade minus best-single quality.
`--validation-only` prints the validation figures and never touches the test rows (what
development iterations may look at). One JSON document on stdout, a summary on stderr.
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
from scipy import stats

from signoria.orchestrator.answers import extract_letter
from signoria.orchestrator.cascade.commands import budget_for, train_for_targets
from signoria.orchestrator.cascade.pacing import Pacer
from signoria.orchestrator.cascade.policy import AnswerCascade, CascadeSettings
from signoria.orchestrator.cascade.search import Target
from signoria.routers.data import RoutingTable, load_models, load_table, split_point
from signoria.routers.embedding import Embedder
from signoria.routers.metrics import cpt, pgr_curve, two_model_report
from signoria.routers.policy import best_single

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "routerbench"
GPT4, MIXTRAL, YI, GPT35 = (
    "gpt-4-1106-preview",
    "mistralai/mixtral-8x7b-chat",
    "zero-one-ai/Yi-34B-Chat",
    "gpt-3.5-turbo-1106",
)
CACHE = Path("/tmp/signoria-cascade-bench-embeddings.npz")
EMBEDDER = Embedder.load(CACHE)
TARGETS = {
    "within_25pct_cost": Target(cost_ratio=0.25),
    "within_50pct_cost": Target(cost_ratio=0.5),
    "reach_best_quality": Target(quality_ratio=1.0),
}


def carve(table: RoutingTable, seed: int) -> tuple[RoutingTable, RoutingTable]:
    return table.split(0.3, seed=1000 + seed)


def row_outcome(
    table: RoutingTable, choice_cost: list[tuple[str, list[str]]]
) -> tuple[np.ndarray, np.ndarray]:
    """Score and cost per row of a fixed rule: (answering model, models paid for)."""
    score = np.array(
        [table.scores[i, table.models.index(a)] for i, (a, _) in enumerate(choice_cost)]
    )
    cost = np.array(
        [
            sum(table.costs[i, table.models.index(m)] for m in paid)
            for i, (_, paid) in enumerate(choice_cost)
        ]
    )
    return score, cost


def hand_rule(table: RoutingTable) -> tuple[np.ndarray, np.ndarray]:
    plan = []
    for row in table.rows:
        if row.task == "mbpp":
            plan.append((GPT35, [GPT35]))
            continue
        a, b = (extract_letter(row.outcomes[m].response or "") for m in (MIXTRAL, YI))
        plan.append(
            (MIXTRAL, [MIXTRAL, YI]) if a is not None and a == b else (GPT4, [MIXTRAL, YI, GPT4])
        )
    return row_outcome(table, plan)


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, seed: int, n: int = 2000
) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    diff = a - b
    means = np.array([diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(n)])
    return float(diff.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def point(
    score: np.ndarray, cost: np.ndarray, ref_cost: float, ref_quality: float
) -> dict[str, float]:
    return {
        "quality": float(score.mean()),
        "cost": float(cost.sum()),
        "cost_ratio": float(cost.sum() / ref_cost),
        "quality_ratio": float(score.mean() / ref_quality),
    }


def random_at(cost: float, cheap: dict[str, float], strong: dict[str, float]) -> float:
    """Expected quality of routing at random between cheapest and strongest at `cost`."""
    p = min(1.0, max(0.0, (cost - cheap["cost"]) / (strong["cost"] - cheap["cost"])))
    return cheap["quality"] + p * (strong["quality"] - cheap["quality"])


def two_model(train: RoutingTable, test: RoutingTable) -> dict[str, Any]:
    keep = (GPT4, MIXTRAL)
    pair_train, pair_test = _only(train, keep), _only(test, keep)
    cascade = AnswerCascade.fit(pair_train, CascadeSettings(chain=((MIXTRAL,), (GPT4,))))
    prepared = cascade.prepare(pair_test)
    gain = prepared.probability[(0, 1)] - prepared.probability[(0, 0)]
    strong, weak = pair_test.models.index(GPT4), pair_test.models.index(MIXTRAL)
    report = two_model_report(pair_test, strong, weak, gain)  # APGR and CPT per query
    fine = pgr_curve(pair_test.scores[:, strong], pair_test.scores[:, weak], gain)
    q_s, q_w = pair_test.scores[:, strong].mean(), pair_test.scores[:, weak].mean()
    target = (0.95 * q_s - q_w) / (q_s - q_w)
    return {
        **report,
        "share_for_95pct_quality": cpt(fine, target),
        "pgr_for_95pct": float(target),
    }


def _only(table: RoutingTable, models: tuple[str, ...]) -> RoutingTable:
    out = table
    for m in table.models:
        if m not in models:
            out = out.without_model(m)
    return out


def one_seed(
    table: RoutingTable, seed: int, validation_only: bool, options: dict[str, Any]
) -> dict[str, Any]:
    train, test = carve(table, seed)
    strong = train.models[best_single(train)]
    j = test.models.index(strong)
    out: dict[str, Any] = {
        "seed": seed,
        "train": len(train),
        "test": len(test),
        "best_single": strong,
    }
    ref_cost, ref_quality = float(test.costs[:, j].sum()), float(test.scores[:, j].mean())
    cheapest = int(np.argmin(np.nanmean(train.costs, axis=0)))
    cheap = point(test.scores[:, cheapest], test.costs[:, cheapest], ref_cost, ref_quality)
    best = point(test.scores[:, j], test.costs[:, j], ref_cost, ref_quality)
    t0 = time.perf_counter()
    fitted = train_for_targets(
        train,
        chain=None,
        value_usd=None,
        targets=list(TARGETS.values()),
        validation=0.3,
        seed=seed,
        options=options,
        embedder=EMBEDDER,
    )
    out["search_seconds"] = round(time.perf_counter() - t0, 1)
    for name, (cascade, report) in zip(TARGETS, fitted, strict=True):
        entry: dict[str, Any] = {
            "chain": report["settings"]["chain"],
            "value_usd": report["settings"]["value_usd"],
            "validation": report["validation"],
        }
        if not validation_only:
            outcome = cascade.outcome(test)
            entry["test"] = point(outcome.score, outcome.cost, ref_cost, ref_quality)
            entry["test"]["random_at_equal_cost"] = random_at(entry["test"]["cost"], cheap, best)
            entry["test"]["vs_best_single"] = paired_bootstrap(
                outcome.score, test.scores[:, j], seed
            )
            share = TARGETS[name].cost_ratio
            if share is not None:  # the same cascade holding the budget with a pacer
                budget = budget_for(train, TARGETS[name])
                assert budget is not None  # a cost target on a priced table
                pacer = Pacer(budget, cascade.settings.value_usd)
                paced = cascade.outcome(arriving(test), pacer=pacer)
                entry["test_paced"] = point(paced.score, paced.cost, ref_cost, ref_quality)
                entry["test_paced"]["budget_usd"] = budget
        out[name] = entry
    if not validation_only:
        score, cost = hand_rule(test)
        out["hand_rule"] = point(score, cost, ref_cost, ref_quality)
        out["best_single_test"] = best
        out["cheapest_test"] = {**cheap, "model": test.models[cheapest]}
        report = two_model(train, test)
        out["two_model"] = {k: v for k, v in report.items() if k != "pgr_curve"}
    return out


def interval(values: list[float]) -> dict[str, float]:
    arr = np.array(values, dtype=float)
    half = (
        float(stats.t.ppf(0.975, len(arr) - 1) * arr.std(ddof=1) / np.sqrt(len(arr)))
        if len(arr) > 1
        else 0.0
    )
    return {
        "mean": float(arr.mean()),
        "ci95": half,
        "min": float(arr.min()),
        "max": float(arr.max()),
    }


def _figures(run: dict[str, Any], name: str, validation_only: bool) -> tuple[float, float, float]:
    """(quality, cost ratio, quality ratio) of one target in one run, vs best-single."""
    if not validation_only:
        test = run[name]["test"]
        return test["quality"], test["cost_ratio"], test["quality_ratio"]
    chosen, ref = run[name]["validation"]["point"], run[name]["validation"]["best_single"]
    return chosen["quality"], chosen["cost"] / ref["cost"], chosen["quality"] / ref["quality"]


def arriving(table: RoutingTable) -> RoutingTable:
    """The rows as live traffic would bring them: mixed, in an order fixed by their ids."""
    return table.subset(sorted(range(len(table)), key=lambda i: split_point(table.rows[i].id, 77)))


def summarise(runs: list[dict[str, Any]], validation_only: bool) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for name in TARGETS:
        figures = [_figures(r, name, validation_only) for r in runs]
        summary[name] = {
            "split": "validation" if validation_only else "test",
            "quality": interval([f[0] for f in figures]),
            "cost_ratio": interval([f[1] for f in figures]),
            "quality_ratio": interval([f[2] for f in figures]),
        }
        if not validation_only and "test_paced" in runs[0][name]:
            summary[f"{name}_paced"] = {
                k: interval([r[name]["test_paced"][k] for r in runs])
                for k in ("quality", "cost_ratio", "quality_ratio")
            }
    if not validation_only:
        summary["best_single_quality"] = interval([r["best_single_test"]["quality"] for r in runs])
        summary["hand_rule"] = {
            k: interval([r["hand_rule"][k] for r in runs]) for k in ("quality", "cost_ratio")
        }
        summary["two_model"] = {
            k: interval([r["two_model"][k] for r in runs if r["two_model"][k] is not None])
            for k in ("apgr", "cpt50", "cpt80", "share_for_95pct_quality")
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--validation-only", action="store_true")
    parser.add_argument("--query-prior", action="store_true", help="cascade option query_prior")
    args = parser.parse_args()
    table = load_table(args.data / "train.jsonl", load_models(args.data / "models.json"))
    t0 = time.perf_counter()
    options = {"query_prior": True} if args.query_prior else {}
    if args.query_prior:
        EMBEDDER.embed(table.queries)  # once, before the timings; cached on disk
        EMBEDDER.save(CACHE)
    runs = [one_seed(table, s, args.validation_only, options) for s in args.seeds]
    result = {
        "benchmark": "cascade_quality",
        "rows": len(table),
        "seeds": args.seeds,
        "options": options,
        "machine": f"{platform.machine()}, 2 cores, python {platform.python_version()}",
        "seconds": round(time.perf_counter() - t0, 1),
        "runs": runs,
        "summary": summarise(runs, args.validation_only),
    }
    print(json.dumps(result))
    for name, s in result["summary"].items():
        if "quality" in s and "cost_ratio" in s:
            q, c = s["quality"], s["cost_ratio"]
            line = f"{name}: quality {q['mean']:.4f} ± {q['ci95']:.4f}, "
            print(line + f"cost ratio {c['mean']:.3f} ± {c['ci95']:.3f}", file=sys.stderr)


if __name__ == "__main__":
    main()
