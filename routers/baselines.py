"""The baselines every learned router must beat side by side.

Quality predictors (kNN, MLP, matrix factorisation) predict each model's score from the
query embedding and route by utility (the SVM per model, on correctness), so their
utilities re-weight with the trade-off (`route eval --sweep` sweeps alpha).
Random, best-single and cheapest need no features. The oracle is not a router: it reads
the test outcomes and is reported as the upper bound (see `signoria.routers.evaluate`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from signoria.routers.data import RoutingTable
from signoria.routers.trainable import RouterContext


class _Constant:
    """Routes every query to one model; subclasses choose which."""

    name: ClassVar[str] = "constant"

    def __init__(self) -> None:
        self.index = 0

    def utilities(self, queries: Sequence[str], ctx: RouterContext) -> np.ndarray:
        out = np.zeros((len(queries), len(ctx.models)))
        out[:, self.index] = 1.0
        return out

    def save(self, directory: Path) -> None:
        (directory / "weights.json").write_text(json.dumps({"index": self.index}))

    def load(self, directory: Path, ctx: RouterContext) -> None:
        self.index = int(json.loads((directory / "weights.json").read_text())["index"])


class BestSingle(_Constant):
    name: ClassVar[str] = "best-single"

    def fit(self, table: RoutingTable, ctx: RouterContext) -> None:
        self.index = ctx.best_single(table)


class Cheapest(_Constant):
    name: ClassVar[str] = "cheapest"

    def fit(self, table: RoutingTable, ctx: RouterContext) -> None:
        self.index = int(np.argmin(ctx.expected_cost))


class RandomRouter:
    name: ClassVar[str] = "random"

    def fit(self, table: RoutingTable, ctx: RouterContext) -> None:
        return None

    def utilities(self, queries: Sequence[str], ctx: RouterContext) -> np.ndarray:
        rng = np.random.default_rng(ctx.seed)
        return rng.random((len(queries), len(ctx.models)))

    def save(self, directory: Path) -> None:
        return None

    def load(self, directory: Path, ctx: RouterContext) -> None:
        return None


class _SklearnQuality:
    """Predicts each model's score from the query embedding with a scikit-learn regressor."""

    name: ClassVar[str] = "sklearn"
    sweep_param: ClassVar[str] = "alpha"

    def __init__(self) -> None:
        self.model: Any = None

    def make(self, ctx: RouterContext) -> Any:
        raise NotImplementedError

    def fit(self, table: RoutingTable, ctx: RouterContext) -> None:
        self.model = self.make(ctx)
        self.model.fit(ctx.features(table.queries), table.scores)

    def utilities(self, queries: Sequence[str], ctx: RouterContext) -> np.ndarray:
        quality = np.asarray(self.predict(ctx.features(queries)), dtype=float)
        return ctx.utility(quality.reshape(len(queries), len(ctx.models)))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict(x))

    def save(self, directory: Path) -> None:
        import joblib  # scikit-learn's, like the model: the `routers` extra

        joblib.dump(self.model, directory / "model.joblib")

    def load(self, directory: Path, ctx: RouterContext) -> None:
        import joblib

        self.model = joblib.load(directory / "model.joblib")


def unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    unit: np.ndarray = x / norms
    return unit


class KNNParams(BaseModel):
    """`neighbours`: how many training queries vote (10 by default; where the models differ
    by the kind of query more than by the query itself, a wider vote averages out the
    noise of single outcomes: choose it on validation rows)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    neighbours: int = Field(default=10, ge=1, le=10_000)


class KNNRouter(_SklearnQuality):
    """Distance-weighted mean score of the nearest training queries (cosine).

    Fitted and saved as scikit-learn's KNeighborsRegressor; predicted in numpy from its
    training matrix: for one live query scikit-learn's brute-force search spent ~2 ms in
    input checks and chunking around a 0.2 ms product (the same neighbours and numbers,
    tested)."""

    name: ClassVar[str] = "knn"

    def __init__(self) -> None:
        super().__init__()
        self.config = KNNParams()
        self._unit: np.ndarray | None = None

    def make(self, ctx: RouterContext) -> Any:
        from sklearn.neighbors import KNeighborsRegressor

        return KNeighborsRegressor(
            n_neighbors=self.config.neighbours, metric="cosine", weights="distance"
        )

    def fit(self, table: RoutingTable, ctx: RouterContext) -> None:
        super().fit(table, ctx)
        self._unit = None

    def load(self, directory: Path, ctx: RouterContext) -> None:
        super().load(directory, ctx)
        self.config = KNNParams(neighbours=int(self.model.n_neighbors))
        self._unit = None

    def predict(self, x: np.ndarray) -> np.ndarray:
        model = self.model
        if self._unit is None:
            self._unit = unit_rows(np.asarray(model._fit_X))
        k = min(int(model.n_neighbors), self._unit.shape[0])
        # In the embeddings' own precision, as scikit-learn's cosine_distances computes.
        distance = np.clip(1.0 - unit_rows(np.asarray(x)) @ self._unit.T, 0.0, 2.0)
        nearest = np.argpartition(distance, k - 1, axis=1)[:, :k]
        near = np.take_along_axis(distance, nearest, axis=1)
        with np.errstate(divide="ignore"):
            weights = 1.0 / near
        exact = np.isinf(weights)
        rows = exact.any(axis=1)
        weights[rows] = exact[rows]  # a query seen in training: its own score(s) only
        y = np.asarray(model._y, dtype=np.float64).reshape(self._unit.shape[0], -1)
        predicted: np.ndarray = np.einsum("nk,nkm->nm", weights, y[nearest]) / weights.sum(
            axis=1, keepdims=True
        )
        return predicted


class MLPRouter(_SklearnQuality):
    name: ClassVar[str] = "mlp"

    def make(self, ctx: RouterContext) -> Any:
        from sklearn.neural_network import MLPRegressor

        return MLPRegressor(
            hidden_layer_sizes=(128,), max_iter=300, early_stopping=True, random_state=ctx.seed
        )


def linear_platt(
    x: np.ndarray, coef: np.ndarray, intercept: np.ndarray, a: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """Mean over folds of sigmoid(-(a * (x . coef + intercept) + b)): CalibratedClassifierCV's
    positive-class probability for a linear SVM with sigmoid calibration."""
    decision = x @ coef.T + intercept[None, :]
    probability: np.ndarray = (1.0 / (1.0 + np.exp(a[None, :] * decision + b[None, :]))).mean(
        axis=1
    )
    return probability


class SVMRouter:
    """One linear SVM per model on "is this model right on this query" (score >= 0.5),
    Platt-scaled to a probability: that is its predicted quality, routed by utility like
    every other predictor. (Classifying the reward-best model instead collapsed to the
    cheapest model whenever it was among the right ones, in every scenario.)"""

    name: ClassVar[str] = "svm"
    sweep_param: ClassVar[str] = "alpha"

    def __init__(self) -> None:
        # Per model: a fitted classifier, or the training accuracy when one class is seen.
        self.models: list[Any] = []
        self._arrays: list[float | tuple[np.ndarray, ...]] | None = None

    def fit(self, table: RoutingTable, ctx: RouterContext) -> None:
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.svm import LinearSVC

        x = ctx.features(table.queries)
        self.models, self._arrays = [], None
        for j in range(len(ctx.models)):
            right = (table.scores[:, j] >= 0.5).astype(int)
            if min(right.sum(), len(right) - right.sum()) < 3:  # too few of one class
                self.models.append(float(right.mean()) if len(right) else 0.0)
                continue
            svm = LinearSVC(C=0.1, random_state=ctx.seed)
            model = CalibratedClassifierCV(svm, cv=3, method="sigmoid")
            self.models.append(model.fit(x, right))

    def quality(self, queries: Sequence[str], ctx: RouterContext) -> np.ndarray:
        x = ctx.features(queries)
        columns = [
            np.full(len(queries), m) if isinstance(m, float) else linear_platt(x, *m)
            for m in self._linear()
        ]
        return np.stack(columns, axis=1) if columns else np.zeros((len(queries), 0))

    def _linear(self) -> list[float | tuple[np.ndarray, ...]]:
        """Each calibrated SVM as arrays: (coef [k, D], intercept, a, b) over its k folds.

        `predict_proba` of scikit-learn's CalibratedClassifierCV costs ~0.6 ms of input
        checks per fold and model whatever the batch (17 ms for one query over nine
        models); the same linear maps and sigmoids in numpy cost microseconds and give
        the same probabilities (tested)."""
        if self._arrays is None:
            arrays: list[float | tuple[np.ndarray, ...]] = []
            for m in self.models:
                if isinstance(m, float):
                    arrays.append(m)
                    continue
                folds = m.calibrated_classifiers_
                arrays.append(
                    (
                        np.stack([f.estimator.coef_[0] for f in folds]),
                        np.array([f.estimator.intercept_[0] for f in folds]),
                        np.array([f.calibrators[0].a_ for f in folds]),
                        np.array([f.calibrators[0].b_ for f in folds]),
                    )
                )
            self._arrays = arrays
        return self._arrays

    def utilities(self, queries: Sequence[str], ctx: RouterContext) -> np.ndarray:
        return ctx.utility(self.quality(queries, ctx))

    def save(self, directory: Path) -> None:
        import joblib

        joblib.dump({"per_model": self.models}, directory / "model.joblib")

    def load(self, directory: Path, ctx: RouterContext) -> None:
        import joblib

        self.models = list(joblib.load(directory / "model.joblib")["per_model"])
        self._arrays = None


class MatrixFactorisation:
    """RouteLLM-style MF: score(q, m) = sigmoid(v_m . W e_q + b_m), trained on outcomes."""

    name: ClassVar[str] = "mf"
    sweep_param: ClassVar[str] = "alpha"

    def __init__(self, dim: int = 32, epochs: int = 200) -> None:
        self.dim, self.epochs = dim, epochs
        self.state: dict[str, Any] = {}

    def fit(self, table: RoutingTable, ctx: RouterContext) -> None:
        import torch

        torch.manual_seed(ctx.seed)
        x = torch.tensor(ctx.features(table.queries), dtype=torch.float32)
        y = torch.tensor(table.scores, dtype=torch.float32).clamp(0, 1)
        proj = torch.nn.Linear(x.shape[1], self.dim)
        models = torch.nn.Embedding(len(ctx.models), self.dim)
        bias = torch.nn.Parameter(torch.zeros(len(ctx.models)))
        params = [*proj.parameters(), *models.parameters(), bias]
        optimiser = torch.optim.Adam(params, lr=1e-2, weight_decay=1e-4)
        for _ in range(self.epochs):
            optimiser.zero_grad()
            logits = proj(x) @ models.weight.T + bias
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
        self.state = {
            "proj": proj.state_dict(),
            "models": models.weight.detach(),
            "bias": bias.detach(),
        }

    def utilities(self, queries: Sequence[str], ctx: RouterContext) -> np.ndarray:
        import torch

        x = torch.tensor(ctx.features(queries), dtype=torch.float32)
        proj = torch.nn.Linear(x.shape[1], self.dim)
        proj.load_state_dict(self.state["proj"])
        with torch.no_grad():
            quality = torch.sigmoid(proj(x) @ self.state["models"].T + self.state["bias"])
        return ctx.utility(quality.numpy().astype(float))

    def save(self, directory: Path) -> None:
        import torch

        torch.save(self.state, directory / "mf.pt")

    def load(self, directory: Path, ctx: RouterContext) -> None:
        import torch

        self.state = torch.load(directory / "mf.pt", weights_only=True)
