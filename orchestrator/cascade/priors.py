"""What the query alone says about each chain model: a learned prior beside the answers.

Agreement features are discrete (a handful of vote patterns per stage), so a scorer on
them alone treats whole blocks of queries alike: every code question, say, escalates or
none does. A per-model logistic regression on the query's MiniLM embedding (the chance
that the model gets it right) separates queries within a block. The scorers are fitted
on *out-of-fold* priors of the training rows, so that they learn how far to trust a
prior on queries it was not fitted on, which is what it will see live.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from signoria.orchestrator.cascade.fitting import Scorer


class QueryPriors:
    def __init__(self, models: Sequence[str], coef: np.ndarray, intercept: np.ndarray) -> None:
        self.models = tuple(models)
        self.coef = coef  # [dim, m]
        self.intercept = intercept  # [m]

    @classmethod
    def fit(
        cls, x: np.ndarray, right: np.ndarray, models: Sequence[str], regularisation: float
    ) -> QueryPriors:
        """`right`: [n, m] 0/1, whether each model answered each training query right."""
        fitted = [Scorer.fit(x, right[:, j], regularisation) for j in range(len(models))]
        coef = np.stack([s.coef for s in fitted], axis=1) if fitted else np.zeros((x.shape[1], 0))
        return cls(models, coef, np.array([s.intercept for s in fitted]))

    @classmethod
    def out_of_fold(
        cls,
        x: np.ndarray,
        right: np.ndarray,
        models: Sequence[str],
        regularisation: float,
        folds: int = 5,
        seed: int = 0,
    ) -> np.ndarray:
        """[n, m] priors of each training row from a model that never saw that row."""
        out = np.zeros(right.shape, dtype=float)
        order = np.random.default_rng(seed).permutation(len(x))
        for part in np.array_split(order, min(folds, max(2, len(x)))):
            rest = np.setdiff1d(order, part)
            out[part] = cls.fit(x[rest], right[rest], models, regularisation).predict(x[part])
        return out

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = np.atleast_2d(x) @ self.coef + self.intercept
        out: np.ndarray = 1.0 / (1.0 + np.exp(-z))
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "models": list(self.models),
            "coef": self.coef.round(6).tolist(),
            "intercept": self.intercept.tolist(),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> QueryPriors:
        return cls(
            [str(m) for m in raw["models"]],
            np.asarray(raw["coef"], dtype=float),
            np.asarray(raw["intercept"], dtype=float),
        )
