"""Run metrics from stored items: accuracy with a confidence interval, cost, latency,
call share. Computed from the database, so a resumed run's report covers all its items."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from signoria.agents.pricing import total_cost
from signoria.orchestrator.storage.records import ItemRecord


def wilson_interval(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval: well behaved at small n and at 0% or 100%."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def _percentiles(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p90": None, "p99": None}
    p50, p90, p99 = np.percentile(np.asarray(values), [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99)}


def call_share(items: Sequence[ItemRecord]) -> dict[str, float]:
    """Fraction of all model calls that went to each model: a collapse is visible here."""
    counts = Counter(call.expert for item in items for call in item.calls)
    total = sum(counts.values())
    return {name: count / total for name, count in counts.most_common()} if total else {}


def run_metrics(items: Sequence[ItemRecord]) -> dict[str, Any]:
    scores = [item.scores[0].value for item in items if item.scores]
    accuracy = sum(scores) / len(scores) if scores else None
    low, high = wilson_interval(sum(scores), len(scores))
    cost = total_cost(item.cost for item in items)
    latencies = [item.latency_s for item in items if item.latency_s is not None]
    calls = [call for item in items for call in item.calls]
    # Answers whose recorded finish reason says they were cut at max_tokens: an answer cut
    # before it was stated scores 0 for the limit, not for the model.
    ended = [item for item in items if item.finish_reason is not None]
    truncated = sum(1 for item in ended if item.finish_reason == "length")
    return {
        "n": len(items),
        "scored": len(scores),
        "failed": sum(1 for item in items if item.error),
        "accuracy": accuracy,
        "accuracy_ci95": [low, high] if scores else None,
        "cost": cost,
        "cost_per_item": None if cost is None or not items else cost / len(items),
        "latency_s": _percentiles(latencies),
        "calls": len(calls),
        "tokens_in": sum(c.tokens_in for c in calls),
        "tokens_out": sum(c.tokens_out for c in calls),
        "call_share": call_share(items),
        "truncated": truncated,
        "truncated_share": truncated / len(ended) if ended else None,
    }


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar test: under no difference, the discordant items split like
    a fair coin. Exact rather than chi-squared because live runs have few discordant items."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def paired(baseline: Sequence[ItemRecord], other: Sequence[ItemRecord]) -> dict[str, Any]:
    """Two runs on their common scored items: who got which right, the exact McNemar p,
    the accuracy difference with a 95% interval, and the latency ratio item for item.

    Only items both runs scored count, so a run still in progress is compared on what it
    has done, never on different items."""
    first = {i.item_key: i for i in baseline if i.scores}
    common = [(first[i.item_key], i) for i in other if i.scores and i.item_key in first]
    a = np.array([x.scores[0].value for x, _ in common], dtype=float)
    b = np.array([y.scores[0].value for _, y in common], dtype=float)
    n = len(common)
    diff = b - a
    half = 1.96 * float(diff.std(ddof=1)) / math.sqrt(n) if n > 1 else None
    mean = float(diff.mean()) if n else None
    only_a = int(((a > 0.5) & (b <= 0.5)).sum())
    only_b = int(((b > 0.5) & (a <= 0.5)).sum())
    timed = [
        (x.latency_s, y.latency_s)
        for x, y in common
        if x.latency_s is not None and y.latency_s is not None
    ]
    base_s = sum(t for t, _ in timed)
    base_p50 = float(np.median([t for t, _ in timed])) if timed else 0.0
    return {
        "n": n,
        "both_right": int(((a > 0.5) & (b > 0.5)).sum()),
        "only_baseline": only_a,
        "only_run": only_b,
        "neither": int(((a <= 0.5) & (b <= 0.5)).sum()),
        "accuracy_baseline": float(a.mean()) if n else None,
        "accuracy_run": float(b.mean()) if n else None,
        "difference": mean,
        "difference_ci95": None if half is None or mean is None else [mean - half, mean + half],
        "mcnemar_p": mcnemar_p(only_a, only_b),
        "latency_ratio_mean": sum(t for _, t in timed) / base_s if base_s > 0 else None,
        "latency_ratio_p50": (
            float(np.median([t for _, t in timed])) / base_p50 if base_p50 > 0 else None
        ),
    }


def flat_metrics(metrics: dict[str, Any]) -> dict[str, float | None]:
    """The scalar metrics, as stored in the run_metrics table."""
    lat = metrics["latency_s"]
    ci = metrics["accuracy_ci95"] or [None, None]
    return {
        "n": metrics["n"],
        "failed": metrics["failed"],
        "accuracy": metrics["accuracy"],
        "accuracy_ci_low": ci[0],
        "accuracy_ci_high": ci[1],
        "cost": metrics["cost"],
        "latency_p50": lat["p50"],
        "latency_p90": lat["p90"],
        "latency_p99": lat["p99"],
        "tokens_out": metrics["tokens_out"],
        "truncated_share": metrics["truncated_share"],
    }
