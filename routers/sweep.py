"""Whole cost-quality curves of an artifact's routers on held-out rows (`route eval --sweep`).

Two kinds of knob:
- *Utility routers* (knn, mlp, svm, mf, skills, graph with its quality readout) score
  `alpha * predicted quality - beta * normalised cost`. Their predictions do not depend
  on the trade-off, so the curve sweeps alpha with beta = 1 - alpha from two readings of
  their utilities, at (1, 0) and (0, 1), and is exact for any router whose utilities are
  affine in the trade-off; that is checked on the rows, not assumed. A router whose
  choice does not move with the trade-off (random, best-single, cheapest, and the
  GraphRouter's reward readout, whose logits fold in the trade-off it was trained at) has
  no such curve and is listed under `not_swept` with the reason.
- *Policy routers* (threshold: share, pareto: budget_usd, cascade: threshold) name their
  knob in `sweep_param` and take each of `sweep_values(ctx)` through `set_knob`.

Every point is a `signoria.routers.policy.CurvePoint`, read with `curve_summary` against
the best single model of the test rows (the highest quality, the cheaper on ties).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from signoria.agents.types import ModelCard
from signoria.routers.artifact import load_context, load_router, read_manifest
from signoria.routers.data import RoutingTable
from signoria.routers.evaluate import aligned_utilities, extended_context
from signoria.routers.metrics import oracle_choice
from signoria.routers.policy import (
    CurvePoint,
    PolicyOutcome,
    Sweepable,
    best_single,
    curve_summary,
    single_model_points,
    sweep,
)
from signoria.routers.trainable import RouterContext, TradeOff, TrainableRouter

# alpha = 1 / (1 + lambda), lambda = beta / alpha from 1000 down to 0.001: the cost weight
# spans the whole range where RouterBench's models trade places; cheapest first.
ALPHAS = (0.0, *(1.0 / (1.0 + lam) for lam in np.geomspace(1e3, 1e-3, 49)), 1.0)


def at(ctx: RouterContext, alpha: float, beta: float) -> RouterContext:
    return dataclasses.replace(ctx, trade_off=TradeOff(alpha=alpha, beta=beta))


class TradeOffSweep:
    """A utility router's curve over alpha (beta = 1 - alpha) on one table."""

    sweep_param: ClassVar[str] = "alpha"

    def __init__(self, quality: np.ndarray, cost: np.ndarray, table: RoutingTable) -> None:
        self.quality, self.cost, self.table = quality, cost, table

    def sweep_values(self, ctx: RouterContext | None) -> Sequence[float]:
        return ALPHAS

    def outcome_at(
        self, value: float, table: RoutingTable, ctx: RouterContext | None
    ) -> PolicyOutcome:
        if table is not self.table:
            raise ValueError("a TradeOffSweep answers for the table it was read on")
        with np.errstate(invalid="ignore"):  # -inf columns (models it cannot pick) stay -inf
            utility = value * self.quality + (1.0 - value) * self.cost
        return PolicyOutcome.one_call(table, np.argmax(np.nan_to_num(utility, nan=-np.inf), 1))


class KnobSweep:
    """A policy router's curve over its own knob (restored afterwards); `of` makes the
    subclass whose `sweep_param` is the router's."""

    sweep_param: ClassVar[str] = "knob"

    @classmethod
    def of(
        cls, router: Any, ctx: RouterContext, info: dict[str, ModelCard], table: RoutingTable
    ) -> KnobSweep:
        attrs = {"sweep_param": str(router.sweep_param)}
        named: type[KnobSweep] = type(f"{cls.__name__}_{router.sweep_param}", (cls,), attrs)
        return named(router, ctx, info, table)

    def __init__(
        self, router: Any, ctx: RouterContext, info: dict[str, ModelCard], table: RoutingTable
    ) -> None:
        self.router, self.ctx, self.info, self.table = router, ctx, info, table

    def sweep_values(self, ctx: RouterContext | None) -> Sequence[float]:
        values: Sequence[float] = self.router.sweep_values(self.ctx)
        return values

    def outcome_at(
        self, value: float, table: RoutingTable, ctx: RouterContext | None
    ) -> PolicyOutcome:
        before = self.router.knob()
        self.router.set_knob(value)
        try:
            utilities = aligned_utilities(self.router, self.ctx, table, self.info)
        finally:
            self.router.set_knob(before)
        return PolicyOutcome.one_call(table, np.argmax(utilities, axis=1))


def sweeper(
    router: TrainableRouter, ctx: RouterContext, table: RoutingTable, info: dict[str, ModelCard]
) -> tuple[Sweepable | None, str]:
    """The router's sweep on `table`, or None and why it has none."""
    if hasattr(router, "set_knob") and hasattr(router, "sweep_values"):
        return KnobSweep.of(router, ctx, info, table), ""
    quality = aligned_utilities(router, at(ctx, 1.0, 0.0), table, info)
    cost = aligned_utilities(router, at(ctx, 0.0, 1.0), table, info)
    finite = np.isfinite(quality) & np.isfinite(cost)
    if np.allclose(quality[finite], cost[finite]):
        return None, "its choice does not depend on the trade-off (no knob, or fixed at training)"
    probe = slice(0, min(32, len(table)))
    half = aligned_utilities(
        router, at(ctx, 0.5, 0.5), table.subset(range(len(table))[probe]), info
    )
    mixed = 0.5 * quality[probe] + 0.5 * cost[probe]
    ok = np.isfinite(half)
    if not np.allclose(half[ok], mixed[ok], atol=1e-6):
        return None, "its utilities are not affine in (alpha, beta): alpha cannot be re-weighted"
    return TradeOffSweep(quality, cost, table), ""


def sweep_report(
    artifact: Path, test: RoutingTable, router_name: str | None = None
) -> dict[str, Any]:
    """`{"router", "sweep_param", "curve", "baselines", "summary", "curves", "not_swept"}`:
    the chosen router's curve, every other sweepable router's curve of the artifact,
    and the points a curve must beat (random, cheapest, best-single, oracle, each model)."""
    manifest = read_manifest(artifact)
    name = router_name or manifest.router
    ctx = load_context(artifact)
    info = dict(test.info)
    scored = extended_context(ctx, test.models, info)
    models = test.models
    curves: dict[str, dict[str, Any]] = {}
    not_swept: dict[str, str] = {}
    baselines: dict[str, dict[str, Any]] = {}
    reference = single_model_points(test)[models[best_single(test)]]
    for other in dict.fromkeys((name, *[manifest.router, *manifest.baselines])):
        router = load_router(artifact, other, ctx)
        if other in {"random", "cheapest", "best-single"}:
            utilities = aligned_utilities(router, ctx, test, info)
            outcome = PolicyOutcome.one_call(test, np.argmax(utilities, axis=1))
            baselines[other] = CurvePoint.of(0.0, outcome, models).as_json()
        policy, why = sweeper(router, ctx, test, info)
        if policy is None:
            not_swept[other] = why
            continue
        points = sweep(policy, test, ctx)
        curves[other] = {
            "sweep_param": policy.sweep_param,
            "curve": [p.as_json() for p in points],
            "summary": curve_summary(points, reference),
        }
    oracle = PolicyOutcome.one_call(test, oracle_choice(test, scored.reward(test)))
    baselines["oracle"] = CurvePoint.of(0.0, oracle, models).as_json()
    baselines.update({m: p.as_json() for m, p in single_model_points(test).items()})
    main = curves.get(name)
    return {
        "router": name,
        "n": len(test),
        "sweep_param": main["sweep_param"] if main else None,
        "curve": main["curve"] if main else [],
        "baselines": baselines,
        "summary": main["summary"] if main else None,
        "reference": models[best_single(test)],
        "curves": curves,
        "not_swept": not_swept,
        "cost_estimated": manifest.cost_estimated or test.cost_estimated,
    }


def plot_curves(result: dict[str, Any], path: Path) -> None:
    """Every swept router as a line, every baseline as a point, on the cost-quality plane
    (cost on a symmetric log axis: the models' costs span three orders of magnitude)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, entry in result["curves"].items():
        priced = sorted(
            (p for p in entry["curve"] if p["cost"] is not None), key=lambda p: p["cost"]
        )
        width = 2.2 if name == result["router"] else 1.0
        label = f"{name} ({entry['sweep_param']})"
        ax.plot([p["cost"] for p in priced], [p["quality"] for p in priced], lw=width, label=label)
    for name, point in result["baselines"].items():
        if point["cost"] is None:
            continue
        named = name in {"random", "cheapest", "best-single", "oracle"}
        ax.scatter(
            point["cost"],
            point["quality"],
            s=30 if named else 14,
            color="black" if named else "grey",
        )
        ax.annotate(
            name.split("/")[-1][:18],
            (point["cost"], point["quality"]),
            fontsize=6,
            xytext=(3, 2),
            textcoords="offset points",
        )
    costs = [p["cost"] for p in result["baselines"].values() if p["cost"]]
    ax.set_xscale("symlog", linthresh=min(costs) if costs else 1e-3)
    estimated = " (estimated from prices)" if result["cost_estimated"] else ""
    ax.set_xlabel(f"total cost, USD{estimated}")
    ax.set_ylabel("quality (mean score)")
    ax.set_title(f"cost-quality curves on {result['n']} held-out rows", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
