"""What a cascade learns from its training rows besides the scorers' inputs: each
model's vote weight per answer kind, each stage's expected cost per answer kind, and the
logistic scorers themselves, kept as plain numbers so a cascade file needs no pickle."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from signoria.orchestrator.cascade.features import KINDS, log_odds
from signoria.routers.data import RoutingTable


@dataclass(frozen=True)
class Scorer:
    """A fitted logistic regression kept as numbers."""

    coef: np.ndarray
    intercept: float

    def probability(self, x: np.ndarray) -> np.ndarray:
        z = np.atleast_2d(x) @ self.coef + self.intercept
        out: np.ndarray = 1.0 / (1.0 + np.exp(-z))
        return out

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, regularisation: float) -> Scorer:
        rate = float(np.clip(y.mean(), 1e-3, 1 - 1e-3)) if y.size else 0.5
        if y.size == 0 or y.min() == y.max():  # one class: a constant is all there is
            return cls(coef=np.zeros(x.shape[1]), intercept=float(np.log(rate / (1 - rate))))
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=regularisation, max_iter=2000).fit(x, y)
        return cls(coef=model.coef_[0].astype(float), intercept=float(model.intercept_[0]))


def weights_by_kind(
    table: RoutingTable, kinds: Sequence[str], prior: float
) -> dict[str, dict[str, float]]:
    """Per answer kind and model: the log-odds of the model's training accuracy."""
    out: dict[str, dict[str, float]] = {}
    kind_of = np.array(kinds)
    for kind in (*KINDS, "all"):
        rows = np.ones(len(table), bool) if kind == "all" else kind_of == kind
        if not rows.any():
            continue
        right = (table.scores[rows] >= 0.5).sum(axis=0)
        accuracy = (right + prior) / (rows.sum() + 2 * prior)
        out[kind] = {m: log_odds(float(a)) for m, a in zip(table.models, accuracy, strict=True)}
    return out


def stage_costs(
    table: RoutingTable, kinds: Sequence[str], chain: tuple[tuple[str, ...], ...]
) -> dict[str, list[float]]:
    kind_of = np.array(kinds)
    costs = np.nan_to_num(table.costs, nan=0.0)
    out: dict[str, list[float]] = {}
    for kind in (*KINDS, "all"):
        rows = np.ones(len(table), bool) if kind == "all" else kind_of == kind
        if rows.any():
            out[kind] = [
                float(costs[rows][:, [table.models.index(m) for m in stage]].sum(axis=1).mean())
                for stage in chain
            ]
    return out
