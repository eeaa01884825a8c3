"""Router metrics: quality, cost, reward and call share of a set of choices, and the
two-model metrics of RouteLLM (PGR, APGR, CPT).

PGR at a cost level = (router quality - weak quality) / (strong quality - weak quality);
the PGR-vs-cost curve sweeps the share of queries sent to the strong model from 0 to 1;
APGR is the area under it; CPT(x) is the smallest strong-model share that reaches x PGR.
Both are read off a curve with one point per query (a 5% grid rounded CPT up to the next
step); the report rounds them, and shows the curve itself on a 5% grid.
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


def oracle_choice(table: RoutingTable, reward: np.ndarray) -> np.ndarray:
    """The reward-best model per row; ties go to the model that cost less on that row
    (at performance-first two right models tie, and the oracle pays for the cheaper)."""
    cost = np.nan_to_num(table.costs, nan=np.inf)
    best = reward >= reward.max(axis=1, keepdims=True) - 1e-12
    choice: np.ndarray = np.argmin(np.where(best, cost, np.inf), axis=1)
    return choice


def pgr_curve(
    strong_scores: np.ndarray,
    weak_scores: np.ndarray,
    preference: np.ndarray,
    points: int | None = None,
) -> list[tuple[float, float]]:
    """(strong-model share, PGR) as the queries with the highest `preference` for the
    strong model are sent to it first; `points` shares evenly spaced, or (None) every
    query count from 0 to n."""
    order = np.argsort(-preference, kind="stable")
    n = len(order)
    strong_q, weak_q = strong_scores.mean(), weak_scores.mean()
    gap = strong_q - weak_q
    gain = np.concatenate([[0.0], np.cumsum((strong_scores - weak_scores)[order])])
    counts = (
        np.arange(n + 1)
        if points is None
        else np.array([round(float(s) * n) for s in np.linspace(0.0, 1.0, points)])
    )
    shares = counts / max(n, 1) if points is None else np.linspace(0.0, 1.0, len(counts))
    curve = []
    for share, k in zip(shares, counts, strict=True):
        pgr = (gain[k] / max(n, 1)) / gap if gap != 0 else float("nan")
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


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def two_model_report(
    table: RoutingTable, strong: int, weak: int, preference: np.ndarray
) -> dict[str, Any]:
    """APGR and CPT on the per-query curve; the curve shown on a 5% grid; all rounded."""
    strong_s, weak_s = table.scores[:, strong], table.scores[:, weak]
    fine = pgr_curve(strong_s, weak_s, preference)
    shown = pgr_curve(strong_s, weak_s, preference, points=21)
    return {
        "strong": table.models[strong],
        "weak": table.models[weak],
        "pgr_curve": [(round(s, 4), round(p, 4)) for s, p in shown],
        "apgr": _rounded(apgr(fine)),
        "cpt50": _rounded(cpt(fine, 0.5)),
        "cpt80": _rounded(cpt(fine, 0.8)),
    }
