"""Evaluate an artifact's router and every baseline on the same held-out rows.

Rows are scored with the outcomes recorded for the chosen model: quality is its score,
cost its recorded (or price-estimated) cost, reward the trained trade-off. The oracle
reads the outcomes and is the upper bound (ties to the cheaper model of the row). A model
in the test table that the artifact never saw can only be chosen by an inductive router
(one with `inductive = True`, which builds the model from its description); the others
simply cannot pick it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from signoria.agents.types import ModelCard
from signoria.routers.artifact import load_context, load_router, read_manifest
from signoria.routers.data import RoutingTable
from signoria.routers.metrics import oracle_choice, summarise, two_model_report
from signoria.routers.trainable import RouterContext, TrainableRouter


def _price(entry: ModelCard) -> float | None:
    if entry.input_price is None or entry.output_price is None:
        return None
    return (entry.input_price + entry.output_price) / 2


def extended_context(
    ctx: RouterContext, models: tuple[str, ...], info: dict[str, ModelCard]
) -> RouterContext:
    """`ctx` over `models`; an unseen model's expected cost is scaled from the known
    models' by list price (an estimate: it has no recorded calls to average)."""
    known = dict(zip(ctx.models, ctx.expected_cost, strict=True))
    ratios = [
        cost / p
        for m, cost in known.items()
        if (p := _price(info.get(m, ctx.info.get(m, ModelCard(name=m))))) and cost > 0
    ]
    per_price = float(np.mean(ratios)) if ratios else 0.0
    expected = np.array(
        [known[m] if m in known else (_price(info[m]) or 0.0) * per_price for m in models]
    )
    return dataclasses.replace(
        ctx, models=models, info={**ctx.info, **info}, expected_cost=expected
    )


def aligned_utilities(
    router: TrainableRouter, ctx: RouterContext, table: RoutingTable, info: dict[str, ModelCard]
) -> np.ndarray:
    """Utilities over `table.models`; -inf where the router cannot choose a model."""
    if getattr(router, "inductive", False):
        ctx = extended_context(ctx, table.models, info)
    raw = router.utilities(table.queries, ctx)
    out = np.full((len(table), len(table.models)), -np.inf)
    for j, model in enumerate(ctx.models):
        if model in table.models:
            out[:, table.models.index(model)] = raw[:, j]
    return out


def two_model_preference(
    router: TrainableRouter, ctx: RouterContext, test: RoutingTable, utilities: np.ndarray
) -> np.ndarray:
    """How much the router prefers the strong model of a two-model `test` (higher: send
    it to strong): the router's own `preference()` where it has one (threshold: predicted
    gain, not its one-hot decision), else the utility difference."""
    strong = int(np.argmax(test.scores.mean(axis=0)))
    preference = getattr(router, "preference", None)
    if preference is not None and hasattr(router, "strong"):
        sign = 1.0 if ctx.models[router.strong] == test.models[strong] else -1.0
        return sign * np.asarray(preference(test.queries, ctx), dtype=float)
    diff: np.ndarray = utilities[:, strong] - utilities[:, 1 - strong]
    return diff


def evaluate(artifact: Path, test: RoutingTable, router_name: str | None = None) -> dict[str, Any]:
    """`router_name` (default: the artifact's router) is the one reported in full (two-model
    metrics included); every other router of the artifact is reported beside it."""
    manifest = read_manifest(artifact)
    name = router_name or manifest.router
    # One context for every router of the artifact: the test queries are embedded once.
    ctx = load_context(artifact)
    router = load_router(artifact, name, ctx)
    info = dict(test.info)
    scored = extended_context(ctx, test.models, info)  # costs normalised as in training
    reward = scored.reward(test)

    def report(utilities: np.ndarray) -> dict[str, Any]:
        return summarise(test, np.argmax(utilities, axis=1), reward)

    utilities = aligned_utilities(router, ctx, test, info)
    result: dict[str, Any] = {"router": name, "n": len(test), **report(utilities)}
    result["baselines"] = {}
    for other in (manifest.router, *manifest.baselines):
        if other != name:
            baseline = load_router(artifact, other, ctx)
            result["baselines"][other] = report(aligned_utilities(baseline, ctx, test, info))
    result["baselines"]["oracle"] = summarise(test, oracle_choice(test, reward), reward)
    result["trade_off"] = manifest.trade_off.model_dump()
    result["cost_estimated"] = manifest.cost_estimated or test.cost_estimated
    result["unseen_models"] = [m for m in test.models if m not in ctx.models]
    if len(test.models) == 2:
        strong = int(np.argmax(test.scores.mean(axis=0)))
        preference = two_model_preference(router, ctx, test, utilities)
        result["two_model"] = two_model_report(test, strong, 1 - strong, preference)
    return result


def plot(result: dict[str, Any], path: Path) -> None:
    """The cost-quality plane: the router, every baseline and the oracle."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = {result["router"]: result, **result["baselines"]}
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, r in points.items():
        if r["cost"] is None:
            continue
        marker = "*" if name == result["router"] else "o"
        ax.scatter(r["cost"], r["quality"], marker=marker, s=120 if marker == "*" else 40)
        ax.annotate(
            name, (r["cost"], r["quality"]), fontsize=7, xytext=(4, 3), textcoords="offset points"
        )
    estimated = " (estimated from prices)" if result["cost_estimated"] else ""
    ax.set_xlabel(f"total cost, USD{estimated}")
    ax.set_ylabel("quality (mean score)")
    ax.set_title(f"{result['router']} vs baselines, n={result['n']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
