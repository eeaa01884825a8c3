"""Router metrics: quality, cost, reward and call share of a set of choices, and the
two-model metrics of RouteLLM (PGR, APGR, CPT).

PGR at a cost level = (router quality - weak quality) / (strong quality - weak quality);
the PGR-vs-cost curve sweeps the share of queries sent to the strong model from 0 to 1;
APGR is the area under it; CPT(x) is the smallest strong-model share that reaches x PGR.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from signoria.routers.data import RoutingTable


def summarise(table: RoutingTable, choice: np.ndarray, reward: np.ndarray) -> dict[str, Any]:
    """Quality = mean score of the chosen models; cost = total USD (null if unknown)."""
    rows = np.arange(len(table))
    chosen_costs = table.costs[rows, choice]
    cost = None if np.isnan(chosen_costs).any() else float(chosen_costs.sum())
    counts = np.bincount(choice, minlength=len(table.models)) / max(1, len(table))
    return {
        "quality": float(table.scores[rows, choice].mean()),
        "cost": cost,
        "reward": float(reward[rows, choice].mean()),
        "call_share": {m: float(c) for m, c in zip(table.models, counts, strict=True) if c > 0},
    }


def pgr_curve(
    strong_scores: np.ndarray, weak_scores: np.ndarray, preference: np.ndarray, points: int = 21
) -> list[tuple[float, float]]:
    """(strong-model share, PGR) as the queries with the highest `preference` for the
    strong model are sent to it first."""
    order = np.argsort(-preference, kind="stable")
    n = len(order)
    strong_q, weak_q = strong_scores.mean(), weak_scores.mean()
    gap = strong_q - weak_q
    curve = []
    for share in np.linspace(0.0, 1.0, points):
        k = round(float(share) * n)
        routed = weak_scores.copy()
        routed[order[:k]] = strong_scores[order[:k]]
        pgr = (routed.mean() - weak_q) / gap if gap != 0 else float("nan")
        curve.append((float(share), float(pgr)))
    return curve


def apgr(curve: list[tuple[float, float]]) -> float:
    shares = np.array([c[0] for c in curve])
    pgrs = np.array([c[1] for c in curve])
    return float(np.trapezoid(pgrs, shares))


def cpt(curve: list[tuple[float, float]], target: float) -> float | None:
    """Smallest strong-model share whose PGR reaches `target` (None if never)."""
    for share, pgr in curve:
        if pgr >= target:
            return share
    return None


def two_model_report(
    table: RoutingTable, strong: int, weak: int, preference: np.ndarray
) -> dict[str, Any]:
    curve = pgr_curve(table.scores[:, strong], table.scores[:, weak], preference)
    return {
        "strong": table.models[strong],
        "weak": table.models[weak],
        "pgr_curve": curve,
        "apgr": apgr(curve),
        "cpt50": cpt(curve, 0.5),
        "cpt80": cpt(curve, 0.8),
    }
