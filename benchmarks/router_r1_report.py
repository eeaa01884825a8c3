"""The report of `benchmarks/router_r1.py`: every policy and baseline on the test rows,
and the paired differences that say whether GRPO raised the held-out reward.

Reward is the paper's, on the cost scale and weight the trained artifact records (one
frozen scale for all, from the training questions' calls). Best-single is the expert
most accurate on the training rows, best-single-reward the one whose constant policy
earns the most reward there, random routing the mean over experts of each test row; all
are scored as a policy that asks that expert once and answers with its reply. Intervals:
95% percentile bootstrap over test rows (10,000 resamples, fixed seed), paired by row.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from signoria.agents.jsonl import read_jsonl
from signoria.orchestrator.router_r1.reward import CostScale, reward
from signoria.orchestrator.router_r1.scoring import episode_reward, policy_turns, well_formed
from signoria.orchestrator.storage import Store

POLICIES = ("untrained", "warm", "trained")
RESAMPLES = 10_000


def _interval(values: np.ndarray, rng: np.random.Generator) -> list[float]:
    picks = rng.integers(0, len(values), size=(RESAMPLES, len(values)))
    means = values[picks].mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def _summary(
    reward_: np.ndarray, right: np.ndarray, cost: np.ndarray, rng: np.random.Generator
) -> dict[str, Any]:
    return {
        "reward": float(reward_.mean()),
        "reward_ci95": _interval(reward_, rng),
        "quality": float(right.mean()),
        "quality_ci95": _interval(right, rng),
        "cost_per_query": float(np.nanmean(cost)),
    }


def _test_rows(work: Path) -> dict[str, dict[str, Any]]:
    return {str(row["id"]): row for _, row in read_jsonl(work / "test.jsonl")}


def _best_single(
    outcomes: list[dict[str, Any]],
    experts: tuple[str, ...],
    value: Callable[[dict[str, Any]], float],
) -> str:
    """The expert with the highest total `value` of its recorded outcomes on the training
    rows (quality, or the reward a policy that always asks it would earn)."""
    totals = {name: sum(value(row[name]) for row in outcomes) for name in experts}
    return max(experts, key=lambda name: totals[name])


def report(work: Path, trained_in: Path, experts: tuple[str, ...], *, seed: int) -> dict[str, Any]:
    manifest = json.loads((trained_in / "trained" / "manifest.json").read_text())
    low, high = manifest["cost_scale"]
    scale = CostScale(frozen=(float(low), float(high)))
    weight = float(manifest["cost_weight"])
    rng = np.random.default_rng(seed)
    rows = _test_rows(work)
    keys = sorted(rows)
    store = Store.open(f"sqlite:///{work / 'eval.db'}", migrate=False)
    results: dict[str, Any] = {}
    per_row: dict[str, np.ndarray] = {}
    try:
        for policy in POLICIES:
            items = {i.item_key: i for i in store.items(f"r1-{policy}")}
            missing = [k for k in keys if k not in items]
            if missing:
                raise SystemExit(f"run r1-{policy} lacks {len(missing)} test rows: run eval")
            chosen = [items[k] for k in keys]
            r = np.array([episode_reward(i, scale, weight) for i in chosen])
            right = np.array([float(bool(i.scores) and i.scores[0].value >= 0.5) for i in chosen])
            cost = np.array([np.nan if i.cost is None else i.cost for i in chosen])
            routed = Counter(t.expert for i in chosen for t in policy_turns(i) if t.expert)
            results[policy] = {
                **_summary(r, right, cost, rng),
                "format_valid_share": float(
                    np.mean([well_formed(policy_turns(i)) for i in chosen])
                ),
                "routes_per_query": sum(routed.values()) / len(chosen),
                "route_share": {m: c / max(1, sum(routed.values())) for m, c in routed.items()},
                "failed": sum(1 for i in chosen if i.error),
            }
            per_row[policy] = r
    finally:
        store.close()

    def asking_only(score: float, cost: float) -> float:
        return reward(
            format_ok=True, correct=score > 0.5, cost_reward=scale(cost), cost_weight=weight
        )

    right_of: dict[str, np.ndarray] = {}
    cost_of: dict[str, np.ndarray] = {}
    for name in experts:
        right = right_of[name] = np.array([float(rows[k]["outcomes"][name]["score"]) for k in keys])
        cost = cost_of[name] = np.array([float(rows[k]["outcomes"][name]["cost"]) for k in keys])
        r = np.array([asking_only(ok, c) for ok, c in zip(right, cost, strict=True)])
        results[f"only:{name}"] = _summary(r, right, cost, rng)
        per_row[f"only:{name}"] = r
    # Two single-expert baselines, each chosen on the training rows: the most accurate
    # expert, and the one whose constant policy earns the most reward (the one a policy
    # that learned nothing per query would match).
    trained_on = [row["outcomes"] for _, row in read_jsonl(Path(manifest["trained_on"]["train"]))]
    choices = {
        "best-single": lambda o: float(o["score"]),
        "best-single-reward": lambda o: asking_only(float(o["score"]), float(o["cost"])),
    }
    for baseline, value in choices.items():
        best = _best_single(trained_on, experts, value)
        results[baseline] = {"expert": best, **results[f"only:{best}"]}
        per_row[baseline] = per_row[f"only:{best}"]
    random_reward = np.mean([per_row[f"only:{m}"] for m in experts], axis=0)
    random_right = np.mean([right_of[m] for m in experts], axis=0)
    random_cost = np.mean([cost_of[m] for m in experts], axis=0)
    results["random"] = _summary(random_reward, random_right, random_cost, rng)
    per_row["random"] = random_reward
    paired = {
        f"trained - {other}": {
            "mean": float((per_row["trained"] - per_row[other]).mean()),
            "ci95": _interval(per_row["trained"] - per_row[other], rng),
        }
        for other in ("untrained", "warm", "best-single", "best-single-reward", "random")
    }
    log = [
        json.loads(line)
        for line in (trained_in / "trained" / "train_log.jsonl").read_text().splitlines()
        if line.strip()
    ]
    curve = [
        {k: e.get(k) for k in ("step", "reward", "format_ok", "accuracy", "cost_usd", "routes")}
        for e in log
        if e.get("phase") == "grpo" and "reward" in e
    ]
    return {
        "n": len(keys),
        "seed": seed,
        "cost_weight": weight,
        "cost_scale": manifest["cost_scale"],
        "settings": manifest["settings"],
        "training_seconds": manifest["seconds"],
        "results": results,
        "paired_reward": paired,
        "curve": curve,
        "summary": {
            name: {k: results[name][k] for k in ("reward", "quality", "cost_per_query")}
            | ({"format": results[name]["format_valid_share"]} if name in POLICIES else {})
            for name in (*POLICIES, "best-single", "best-single-reward", "random")
        }
        | {"paired": paired},
    }
