"""What a routing policy did on an outcome table, and the cost-quality curve of a sweep.

A one-shot router makes one call per query; an answer-aware cascade may make several
(cheap model first, then a stronger one when it does not accept). Both are judged the
same way: the realised score of the answer it returned, and the USD of *every* call it
made for the row. `PolicyOutcome` holds that per row, so the summaries, the sweeps and
the plots never need to know which kind of policy produced it.

A sweep is a list of `CurvePoint`s, one per value of the policy's knob (a threshold,
a target share of strong calls, a willingness to pay); `curve_summary` reads off it
what a buyer asks: the cheapest point that reaches the best single model's quality, the
best quality at a quarter and at half of its cost, and the area under the curve.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from signoria.routers.data import RoutingTable
from signoria.routers.trainable import RouterContext


@dataclass(frozen=True)
class PolicyOutcome:
    """Per row of a table: the score of the final answer, the USD paid for the row
    (every call; NaN when a call's cost is unknown) and the number of calls per model."""

    score: np.ndarray  # [n]
    cost: np.ndarray  # [n]
    calls: np.ndarray  # [n, m]

    @classmethod
    def one_call(cls, table: RoutingTable, choice: np.ndarray) -> PolicyOutcome:
        """The outcome of a router that asks exactly one model per row."""
        rows = np.arange(len(table))
        calls = np.zeros((len(table), len(table.models)))
        calls[rows, choice] = 1.0
        return cls(score=table.scores[rows, choice], cost=table.costs[rows, choice], calls=calls)

    def quality(self) -> float:
        return float(self.score.mean()) if self.score.size else float("nan")

    def total_cost(self) -> float | None:
        """Total USD, or None when any call's cost is unknown (never reported as 0)."""
        return None if np.isnan(self.cost).any() else float(self.cost.sum())

    def call_share(self, models: Sequence[str]) -> dict[str, float]:
        """Calls per model divided by the number of rows (a cascade's shares sum past 1)."""
        per_model = self.calls.sum(axis=0) / max(1, len(self.score))
        return {m: round(float(s), 4) for m, s in zip(models, per_model, strict=True) if s > 0}


@dataclass(frozen=True)
class CurvePoint:
    param: float
    quality: float
    cost: float | None
    call_share: dict[str, float]

    @classmethod
    def of(cls, param: float, outcome: PolicyOutcome, models: Sequence[str]) -> CurvePoint:
        return cls(
            param=float(param),
            quality=outcome.quality(),
            cost=outcome.total_cost(),
            call_share=outcome.call_share(models),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "param": self.param,
            "quality": round(self.quality, 6),
            "cost": None if self.cost is None else round(self.cost, 8),
            "call_share": self.call_share,
        }


def best_single(table: RoutingTable) -> int:
    """The best single model on `table`: the highest quality, the cheaper on ties."""
    total = np.nan_to_num(table.costs, nan=np.inf).sum(axis=0)
    return int(np.lexsort((total, -table.scores.mean(axis=0)))[0])


def single_point(table: RoutingTable, model: int) -> CurvePoint:
    """What asking `model` alone on every row gives."""
    outcome = PolicyOutcome.one_call(table, np.full(len(table), model))
    return CurvePoint.of(0.0, outcome, table.models)


def single_model_points(table: RoutingTable) -> dict[str, CurvePoint]:
    return {m: single_point(table, j) for j, m in enumerate(table.models)}


class Sweepable(Protocol):
    """A policy with one knob that trades cost for quality."""

    sweep_param: ClassVar[str]

    def sweep_values(self, ctx: RouterContext | None) -> Sequence[float]:
        """The knob's values to sweep, cheapest setting first."""
        ...

    def outcome_at(
        self, value: float, table: RoutingTable, ctx: RouterContext | None
    ) -> PolicyOutcome:
        """What the policy does on `table` with its knob at `value`."""
        ...


def sweep(
    policy: Sweepable, table: RoutingTable, ctx: RouterContext | None = None
) -> list[CurvePoint]:
    return [
        CurvePoint.of(v, policy.outcome_at(v, table, ctx), table.models)
        for v in policy.sweep_values(ctx)
    ]


def pareto_front(points: Sequence[CurvePoint]) -> list[CurvePoint]:
    """Points no other point beats on both cost and quality, by increasing cost."""
    priced = sorted((p for p in points if p.cost is not None), key=lambda p: (p.cost, -p.quality))
    front: list[CurvePoint] = []
    for point in priced:
        if not front or point.quality > front[-1].quality:
            front.append(point)
    return front


def best_quality_within(points: Sequence[CurvePoint], cost: float) -> CurvePoint | None:
    """The highest-quality point whose cost is at most `cost` (the cheaper on ties)."""
    inside = [p for p in points if p.cost is not None and p.cost <= cost + 1e-12]
    return max(inside, key=lambda p: (p.quality, -(p.cost or 0.0)), default=None)


def cheapest_reaching(points: Sequence[CurvePoint], quality: float) -> CurvePoint | None:
    reaching = [p for p in points if p.cost is not None and p.quality >= quality - 1e-12]
    return min(reaching, key=lambda p: (p.cost or 0.0, -p.quality), default=None)


def area_under_curve(points: Sequence[CurvePoint], max_cost: float) -> float | None:
    """Area under the Pareto front's step curve over cost in [0, max_cost], divided by
    max_cost: the mean best quality a budget drawn uniformly from that range buys."""
    front = pareto_front(points)
    if not front or max_cost <= 0:
        return None
    area, edges = 0.0, [p.cost or 0.0 for p in front] + [max_cost]
    for point, right in zip(front, edges[1:], strict=True):
        left = min(point.cost or 0.0, max_cost)
        area += point.quality * max(0.0, min(right, max_cost) - left)
    return area / max_cost


def curve_summary(points: Sequence[CurvePoint], reference: CurvePoint) -> dict[str, Any]:
    """What a curve buys against a reference point (the best single model)."""
    if reference.cost is None:
        return {"reference_quality": reference.quality, "reference_cost": None}
    ref_cost = reference.cost

    def point(p: CurvePoint | None) -> dict[str, Any] | None:
        if p is None:
            return None
        return {**p.as_json(), "cost_ratio": None if p.cost is None else p.cost / ref_cost}

    return {
        "reference_quality": reference.quality,
        "reference_cost": ref_cost,
        "cheapest_reaching_reference": point(cheapest_reaching(points, reference.quality)),
        "best_within_25pct": point(best_quality_within(points, 0.25 * ref_cost)),
        "best_within_50pct": point(best_quality_within(points, 0.5 * ref_cost)),
        "auc": area_under_curve(points, ref_cost),
    }
