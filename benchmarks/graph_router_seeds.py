"""GraphRouter against the baselines over several seeds, with paired comparisons.

    .venv/bin/python -m benchmarks.graph_router_seeds [--seeds 0 1 2 3 4] [--quick] \
        [--tables routerbench llmrouter] > results.json

For each seed s and shared table: split with `RoutingTable.split(0.2, s)`, fit with
training seed s, evaluate on that seed's test split.
- balanced (alpha = beta = 0.5): GraphRouter (default config and readout), kNN, MLP,
  best-single; reward, quality, cost per query;
- performance-first (alpha = 1, beta = 0): GraphRouter and best-single.
Per router: mean ± sd over seeds; GraphRouter against each baseline, paired by seed (same
split, same training seed): wins / ties / losses, mean difference, paired t-test p and
two-sided sign-test p (ties dropped; with 5 seeds the smallest sign-test p is 0.0625).
Helpers (loading, fitting, evaluation, embedding cache) come from `graph_router.py`.
Markdown goes to stderr, one JSON document to stdout. `--quick`: 600 rows, 40 epochs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

from scipy import stats

from benchmarks.graph_router import CACHE, TABLES, evaluate, fit, load
from signoria.routers.baselines import BestSingle, KNNRouter, MLPRouter
from signoria.routers.embedding import Embedder
from signoria.routers.graph import GraphConfig, GraphRouter
from signoria.routers.trainable import RouterContext, TradeOff, TrainableRouter

METRICS = ("reward", "quality", "cost_per_query")
BASELINES = {"balanced": ("knn", "mlp", "best-single"), "performance": ("best-single",)}


def make(key: str, config: GraphConfig) -> TrainableRouter:
    routers: dict[str, type[TrainableRouter]] = {
        "knn": KNNRouter,
        "mlp": MLPRouter,
        "best-single": BestSingle,
    }
    return GraphRouter(config) if key == "graph" else routers[key]()


def one_seed(
    name: str, seed: int, config: GraphConfig, embedder: Embedder, quick: bool, anchor: float | None
) -> dict:
    """{scenario: {router: {reward, quality, cost_per_query, top}}} for one split."""
    train, test = load(name, 600 if quick else None).split(test_fraction=0.2, seed=seed)
    out: dict[str, Any] = {"train": len(train), "test": len(test)}
    for scenario, baselines in BASELINES.items():
        ctx = RouterContext.from_table(train, TradeOff.scenario(scenario), seed, embedder)
        out[scenario] = {}
        for key in ("graph", *baselines):
            lean = {"anchor_margin": anchor} if scenario == "performance" else {}
            router = make(key, config.model_copy(update=lean))
            seconds = fit(router, train, ctx)
            result = evaluate(router, test, ctx)
            top = max(result["call_share"].items(), key=lambda kv: kv[1])
            out[scenario][key] = {m: result[m] for m in METRICS}
            out[scenario][key].update(top=f"{top[0]} {top[1]:.0%}", fit_s=round(seconds, 1))
    return out


def mean_sd(values: list[float]) -> dict[str, float]:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "sd": sd}


def paired(graph: list[float], base: list[float]) -> dict[str, Any]:
    diff = [g - b for g, b in zip(graph, base, strict=True)]
    wins, losses = sum(d > 1e-12 for d in diff), sum(d < -1e-12 for d in diff)
    t_p = float(stats.ttest_rel(graph, base).pvalue) if len(diff) > 1 else float("nan")
    sign_p = float(stats.binomtest(wins, wins + losses).pvalue) if wins + losses else 1.0
    return {
        "wins": wins,
        "ties": len(diff) - wins - losses,
        "losses": losses,
        "mean_diff": statistics.fmean(diff),
        "sd_diff": statistics.stdev(diff) if len(diff) > 1 else 0.0,
        "t_p": t_p,
        "sign_p": sign_p,
    }


def summarise_seeds(per_seed: dict[int, dict]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for scenario, baselines in BASELINES.items():
        series = {
            key: {m: [per_seed[s][scenario][key][m] for s in per_seed] for m in METRICS}
            for key in ("graph", *baselines)
        }
        metric = "reward" if scenario == "balanced" else "quality"
        out[scenario] = {
            "routers": {k: {m: mean_sd(v[m]) for m in METRICS} for k, v in series.items()},
            "graph_vs": {b: paired(series["graph"][metric], series[b][metric]) for b in baselines},
            "compared_on": metric,
        }
        if scenario == "performance":
            cheaper = paired(
                series["best-single"]["cost_per_query"], series["graph"]["cost_per_query"]
            )
            out[scenario]["graph_cheaper_than_best_single"] = cheaper
    return out


def markdown(name: str, seeds: list[int], summary: dict[str, Any]) -> str:
    def cell(s: dict[str, float], scale: float = 1.0, digits: int = 4) -> str:
        return f"{s['mean'] * scale:.{digits}f} ± {s['sd'] * scale:.{digits}f}"

    lines = [f"### {name}: seeds {seeds}, split(0.2, seed), training seed = seed", ""]
    for scenario, title in (("balanced", "Balanced"), ("performance", "Performance-first")):
        part = summary[scenario]
        metric = part["compared_on"]
        lines += [
            f"{title} (test split, mean ± sd over seeds):",
            "",
            f"| router | reward | quality | cost (mUSD/query) | graph wins on {metric} "
            "(w/t/l) | mean diff (graph - it) | paired t p | sign p |",
            "|---" * 8 + "|",
        ]
        for key, r in part["routers"].items():
            cost = cell(r["cost_per_query"], 1000) if r["cost_per_query"]["mean"] else "n/a"
            cmp = ["-", "-", "-", "-"]
            if key in part["graph_vs"]:
                p = part["graph_vs"][key]
                cmp = [
                    f"{p['wins']}/{p['ties']}/{p['losses']}",
                    f"{p['mean_diff']:+.4f} ± {p['sd_diff']:.4f}",
                    f"{p['t_p']:.3f}",
                    f"{p['sign_p']:.3f}",
                ]
            lines.append(
                f"| {key} | {cell(r['reward'])} | {cell(r['quality'])} | {cost} | "
                + " | ".join(cmp)
                + " |"
            )
        lines.append("")
    c = summary["performance"]["graph_cheaper_than_best_single"]
    lines += [
        f"Performance-first cost: graph cheaper than best-single in {c['wins']}/{len(seeds)} "
        f"seeds, by {c['mean_diff'] * 1000:.4f} ± {c['sd_diff'] * 1000:.4f} mUSD/query.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--quick", action="store_true", help="600 rows, 40 epochs: smoke run")
    parser.add_argument("--tables", nargs="+", default=list(TABLES), choices=list(TABLES))
    parser.add_argument(
        "--anchor-margin",
        type=float,
        default=None,
        help="GraphConfig.anchor_margin for the performance-first GraphRouter",
    )
    args = parser.parse_args()
    config = GraphConfig(epochs=40) if args.quick else GraphConfig()
    embedder = Embedder.load(CACHE)
    report: dict[str, Any] = {
        "seeds": args.seeds,
        "split": "RoutingTable.split(0.2, seed)",
        "quick": args.quick,
        "graph_config": config.model_dump(),
        "performance_anchor_margin": args.anchor_margin,
    }
    for name in args.tables:
        t0 = time.perf_counter()
        per_seed = {}
        for seed in args.seeds:
            per_seed[seed] = one_seed(name, seed, config, embedder, args.quick, args.anchor_margin)
            print(f"{name} seed {seed}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        embedder.save(CACHE)
        summary = summarise_seeds(per_seed)
        report[name] = {"per_seed": per_seed, "summary": summary}
        print(markdown(name, args.seeds, summary), file=sys.stderr, flush=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
