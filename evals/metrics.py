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
