"""Cost-aware selection on top of a quality predictor: threshold, Pareto-under-budget and
cascade routers.

All three reuse a baseline quality predictor (`signoria.routers.baselines`: kNN, MLP or matrix
factorisation) read with a performance-only context, so its utilities are its predicted
scores; they differ only in the policy applied to those predictions:

- threshold (RouteLLM): two models, strong = best mean training score, weak = cheapest.
  Preference = predicted gain of strong over weak; a query goes to the strong model when
  its preference reaches a threshold calibrated as a quantile of the traffic's
  preferences, so a chosen share of calls (the cost knob) goes to the strong model.
  Its predictor defaults to the MLP: kNN and MF reproduce the training labels on
  training queries, so a quantile of their in-sample preferences says little about
  new traffic; pass `calibrate(share, scores=router.preference(traffic, ctx))` to
  calibrate on real, unlabelled traffic instead.
- pareto: the best predicted model among those whose expected cost fits a per-query
  budget (default: the median model's expected cost); the cheapest if none fits.
- cascade: answer with the cheapest model unless it is predicted weak (below a threshold)
  or the two cheapest models are predicted to disagree on correctness; then escalate to
  the best predicted model. Offline, "disagree" is on predicted correctness: the query
  alone reaches a router, not the cheap models' live answers (see docs/routers.md).

These policies encode their decision as one-hot utilities (1 for the chosen model): the
trade-off of the context is deliberately not applied, the policy is the trade-off. Each
has one knob (`sweep_param`: share, budget_usd, threshold) that `route eval --sweep`
moves over its whole range, and a params model that `route train --option` validates.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from signoria.errors import UsageError
from signoria.routers.baselines import KNNRouter, MatrixFactorisation, MLPRouter
from signoria.routers.data import RoutingTable
from signoria.routers.embedding import text_key
from signoria.routers.trainable import RouterContext, TradeOff, TrainableRouter

PREDICTORS: dict[str, Callable[[], TrainableRouter]] = {
    KNNRouter.name: KNNRouter,
    MLPRouter.name: MLPRouter,
    MatrixFactorisation.name: MatrixFactorisation,
}
CORRECT = 0.5  # predicted score at or above which a model is predicted right
Predictor = Literal["knn", "mlp", "mf"]


class ThresholdParams(BaseModel):
    """`share`: the share of traffic sent to the strong model, the cost knob a buyer sets.
    `predictor`: which baseline predicts the two models' scores."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    predictor: Predictor = "mlp"
    share: float = Field(default=0.5, ge=0.0, le=1.0)
    # The pair (default: the best mean training score; the cheapest other model): a
    # mid-priced weak model often buys more per dollar than the cheapest one.
    strong: str | None = None
    weak: str | None = None


class ParetoParams(BaseModel):
    """`budget_usd`: what one query may cost (expected, USD); None = the median model's
    expected cost. The best predicted model that fits is chosen."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    predictor: Predictor = "knn"
    budget_usd: float | None = Field(default=None, gt=0.0)


class CascadeParams(BaseModel):
    """`threshold`: escalate when the cheap model's predicted score is below it;
    `disagreement`: also when the two cheapest are predicted to disagree."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    predictor: Predictor = "knn"
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    disagreement: bool = True
    # The first model (default: the cheapest); the second is the cheapest other one.
    cheap: str | None = None


def quality_context(ctx: RouterContext) -> RouterContext:
    """The same context with alpha=1, beta=0: a quality predictor's utilities are then
    exactly its predicted scores (same embedder, so no query is embedded twice)."""
    return dataclasses.replace(ctx, trade_off=TradeOff(alpha=1.0, beta=0.0))


def one_hot(choice: np.ndarray, models: int) -> np.ndarray:
    out = np.zeros((len(choice), models))
    out[np.arange(len(choice)), choice] = 1.0
    return out


def tie_break(queries: Sequence[str]) -> np.ndarray:
    """A tiny, stable per-query offset (< 1e-6) so quantile thresholds split tied
    predictions instead of sending a whole tied block one way."""
    return np.array([int(text_key(q)[:8], 16) / 16**8 * 1e-6 for q in queries])


def calibrate_threshold(scores: np.ndarray, share: float) -> float:
    """The threshold that sends round(share * n) of `scores` (those >= it) to the strong
    model: midway between the k-th and (k+1)-th highest scores."""
    ranked = np.sort(np.asarray(scores, dtype=float))[::-1]
    n = len(ranked)
    k = round(share * n)
    if n == 0:
        return 0.0
    if k <= 0:
        return float(ranked[0]) + 1.0
    if k >= n:
        return float(ranked[-1])
    return float((ranked[k - 1] + ranked[k]) / 2.0)


def pareto_utilities(quality: np.ndarray, cost: np.ndarray, budget: float) -> np.ndarray:
    """Finite utilities whose argmax is the best predicted model within `budget`
    (ties to the cheaper); when no model fits, the cheapest model."""
    scale = float(cost.max()) if cost.size and cost.max() > 0 else 1.0
    norm = cost / scale
    fits = cost <= budget
    # Feasible: quality in [0, 1]. Infeasible: below -1, cheaper ranked higher.
    inside = quality - 1e-9 * norm[None, :]
    outside = np.broadcast_to(-1.0 - norm[None, :], quality.shape)
    out: np.ndarray = np.where(fits[None, :], inside, outside)
    return out


def cascade_choice(
    quality: np.ndarray, cheap: int, second: int, threshold: float, disagreement: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(chosen model per row, escalated per row). Escalate when the cheap model's
    predicted score is below `threshold`, or (with `disagreement`) when the cheapest two
    are predicted to disagree on correctness; escalation goes to the best predicted."""
    escalate = quality[:, cheap] < threshold
    if disagreement:
        escalate |= (quality[:, cheap] >= CORRECT) != (quality[:, second] >= CORRECT)
    best = np.argmax(quality, axis=1)
    choice: np.ndarray = np.where(escalate, best, cheap)
    return choice, escalate


def _index(ctx: RouterContext, model: str, key: str) -> int:
    if model not in ctx.models:
        known = ", ".join(ctx.models)
        raise UsageError(f"option {key}: {model!r} is not a model of the table (known: {known})")
    return ctx.models.index(model)


class _PredictedQuality:
    """Shared by the three: fit and persist the predictor, predict quality; subclasses
    add a policy with `fit_policy`, `state` and `set_state`."""

    name: ClassVar[str] = "predicted-quality"
    sweep_param: ClassVar[str]
    config: Any

    def __init__(self, predictor: str = "knn") -> None:
        self.predictor_name = predictor
        self.predictor: TrainableRouter = PREDICTORS[predictor]()

    def _configure(self) -> None:
        """Read the (possibly --option-set) config into the policy's working state."""
        raise NotImplementedError

    def knob(self) -> float:
        """The current value of `sweep_param`."""
        return float(getattr(self, self.sweep_param))

    def set_knob(self, value: float) -> None:
        setattr(self, self.sweep_param, float(value))

    def quality(self, queries: Sequence[str], ctx: RouterContext) -> np.ndarray:
        """[n, m] predicted score per model; the last batch's is kept, because a sweep
        asks for the same rows at every value of the knob."""
        key = (id(self.predictor), len(ctx.models), tuple(queries))
        memo = getattr(self, "_memo", None)
        if memo is not None and memo[0] == key:
            cached: np.ndarray = memo[1]
            return cached
        predicted = self.predictor.utilities(queries, quality_context(ctx))
        self._memo = (key, predicted)
        return predicted

    def fit(self, table: RoutingTable, ctx: RouterContext) -> None:
        self.predictor_name = self.config.predictor
        self.predictor = PREDICTORS[self.predictor_name]()
        self._configure()
        self.predictor.fit(table, quality_context(ctx))
        self.fit_policy(table, ctx)

    def fit_policy(self, table: RoutingTable, ctx: RouterContext) -> None:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        raise NotImplementedError

    def set_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def save(self, directory: Path) -> None:
        (directory / "predictor").mkdir(parents=True, exist_ok=True)
        self.predictor.save(directory / "predictor")
        policy = {
            "predictor": self.predictor_name,
            "config": self.config.model_dump(),
            **self.state(),
        }
        (directory / "policy.json").write_text(json.dumps(policy))

    def load(self, directory: Path, ctx: RouterContext) -> None:
        policy = json.loads((directory / "policy.json").read_text())
        self.predictor_name = str(policy.pop("predictor"))
        if "config" in policy:  # artifacts before the params models have none
            self.config = type(self.config).model_validate(policy.pop("config"))
        self.predictor = PREDICTORS[self.predictor_name]()
        self.predictor.load(directory / "predictor", ctx)
        self.set_state(policy)


class ThresholdRouter(_PredictedQuality):
    name: ClassVar[str] = "threshold"
    sweep_param: ClassVar[str] = "share"

    def __init__(self, predictor: Predictor = "mlp", share: float = 0.5) -> None:
        super().__init__(predictor)
        self.config = ThresholdParams(predictor=predictor, share=share)
        self.share = share
        self.strong = 0
        self.weak = 0
        self.threshold = 0.0
        self.train_scores = np.zeros(0)

    def fit_policy(self, table: RoutingTable, ctx: RouterContext) -> None:
        mean = table.scores.mean(axis=0)
        self.strong = int(np.lexsort((ctx.expected_cost, -mean))[0])
        if self.config.strong is not None:
            self.strong = _index(ctx, self.config.strong, "strong")
        others = [j for j in range(len(ctx.models)) if j != self.strong] or [self.strong]
        self.weak = min(others, key=lambda j: float(ctx.expected_cost[j]))
        if self.config.weak is not None:
            self.weak = _index(ctx, self.config.weak, "weak")
        self.train_scores = self.preference(table.queries, ctx)
        self.calibrate(self.share)

    def preference(self, queries: Sequence[str], ctx: RouterContext) -> np.ndarray:
        """Predicted score gain of strong over weak (higher: send to strong)."""
        q = self.quality(queries, ctx)
        gain: np.ndarray = q[:, self.strong] - q[:, self.weak] + tie_break(queries)
        return gain

    def _configure(self) -> None:
        self.share = self.config.share

    def sweep_values(self, ctx: RouterContext | None) -> list[float]:
        return [round(float(v), 4) for v in np.linspace(0.0, 1.0, 41)]

    def set_knob(self, value: float) -> None:
        self.calibrate(float(value))

    def calibrate(self, share: float, scores: np.ndarray | None = None) -> float:
        """Set the threshold so that `share` of the traffic goes to the strong model;
        traffic = the training queries' preferences unless `scores` are given."""
        self.share = share
        traffic = self.train_scores if scores is None else scores
        self.threshold = calibrate_threshold(traffic, share)
        return self.threshold

    def utilities(self, queries: Sequence[str], ctx: RouterContext) -> np.ndarray:
        strong = self.preference(queries, ctx) >= self.threshold
        return one_hot(np.where(strong, self.strong, self.weak), len(ctx.models))

    def state(self) -> dict[str, Any]:
        return {
            "share": self.share,
            "threshold": self.threshold,
            "strong": self.strong,
            "weak": self.weak,
            "train_scores": self.train_scores.tolist(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.share = float(state["share"])
        self.threshold = float(state["threshold"])
        self.strong, self.weak = int(state["strong"]), int(state["weak"])
        self.train_scores = np.asarray(state["train_scores"], dtype=float)


class ParetoRouter(_PredictedQuality):
    name: ClassVar[str] = "pareto"
    sweep_param: ClassVar[str] = "budget_usd"

    def __init__(self, predictor: Predictor = "knn", budget_usd: float | None = None) -> None:
        super().__init__(predictor)
        self.config = ParetoParams(predictor=predictor, budget_usd=budget_usd)
        self.budget_usd = budget_usd

    def _configure(self) -> None:
        self.budget_usd = self.config.budget_usd

    def sweep_values(self, ctx: RouterContext | None) -> list[float]:
        """Each model's expected cost, ascending: between two of them the set of models
        that fit, and so every choice, is the same; these are the whole curve."""
        if ctx is None:
            return []
        return sorted({float(c) for c in ctx.expected_cost})

    def fit_policy(self, table: RoutingTable, ctx: RouterContext) -> None:
        if self.budget_usd is None:
            self.budget_usd = float(np.median(ctx.expected_cost))

    def utilities(self, queries: Sequence[str], ctx: RouterContext) -> np.ndarray:
        budget = float(np.median(ctx.expected_cost)) if self.budget_usd is None else self.budget_usd
        return pareto_utilities(self.quality(queries, ctx), ctx.expected_cost, budget)

    def state(self) -> dict[str, Any]:
        return {"budget_usd": self.budget_usd}

    def set_state(self, state: dict[str, Any]) -> None:
        budget = state["budget_usd"]
        self.budget_usd = None if budget is None else float(budget)


class CascadeRouter(_PredictedQuality):
    name: ClassVar[str] = "cascade"
    sweep_param: ClassVar[str] = "threshold"

    def __init__(
        self, predictor: Predictor = "knn", threshold: float = 0.5, disagreement: bool = True
    ) -> None:
        super().__init__(predictor)
        self.config = CascadeParams(
            predictor=predictor, threshold=threshold, disagreement=disagreement
        )
        self.threshold = threshold
        self.disagreement = disagreement
        self.cheap = 0
        self.second = 0

    def _configure(self) -> None:
        self.threshold = self.config.threshold
        self.disagreement = self.config.disagreement

    def sweep_values(self, ctx: RouterContext | None) -> list[float]:
        # Above 1 every query escalates (predicted scores are at most 1).
        return [*(round(float(v), 4) for v in np.linspace(0.0, 1.0, 21)), 1.01]

    def fit_policy(self, table: RoutingTable, ctx: RouterContext) -> None:
        order = [int(j) for j in np.argsort(ctx.expected_cost, kind="stable")]
        if self.config.cheap is not None:
            first = _index(ctx, self.config.cheap, "cheap")
            order = [first, *(j for j in order if j != first)]
        self.cheap = order[0]
        self.second = order[1] if len(order) > 1 else self.cheap

    def decide(self, queries: Sequence[str], ctx: RouterContext) -> tuple[np.ndarray, np.ndarray]:
        """(chosen model index, escalated) per query."""
        return cascade_choice(
            self.quality(queries, ctx), self.cheap, self.second, self.threshold, self.disagreement
        )

    def utilities(self, queries: Sequence[str], ctx: RouterContext) -> np.ndarray:
        return one_hot(self.decide(queries, ctx)[0], len(ctx.models))

    def state(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "disagreement": self.disagreement,
            "cheap": self.cheap,
            "second": self.second,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.threshold = float(state["threshold"])
        self.disagreement = bool(state["disagreement"])
        self.cheap, self.second = int(state["cheap"]), int(state["second"])
