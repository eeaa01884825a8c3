"""The baselines every learned router must beat side by side.

Quality predictors (kNN, MLP, matrix factorisation) predict each model's score from the
query embedding and route by utility; the SVM classifies the reward-best model directly.
Random, best-single and cheapest need no features. The oracle is not a router: it reads
the test outcomes and is reported as the upper bound (see `signoria.routers.evaluate`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

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

    def __init__(self) -> None:
        self.model: Any = None

    def make(self, ctx: RouterContext) -> Any:
        raise NotImplementedError

    def fit(self, table: RoutingTable, ctx: RouterContext) -> None:
        self.model = self.make(ctx)
        self.model.fit(ctx.features(table.queries), table.scores)

    def utilities(self, queries: Sequence[str], ctx: RouterContext) -> np.ndarray:
        quality = np.asarray(self.model.predict(ctx.features(queries)), dtype=float)
        return ctx.utility(quality.reshape(len(queries), len(ctx.models)))

    def save(self, directory: Path) -> None:
        import joblib  # scikit-learn's, like the model: the `routers` extra

        joblib.dump(self.model, directory / "model.joblib")

    def load(self, directory: Path, ctx: RouterContext) -> None:
        import joblib

        self.model = joblib.load(directory / "model.joblib")


class KNNRouter(_SklearnQuality):
    name: ClassVar[str] = "knn"

    def make(self, ctx: RouterContext) -> Any:
        from sklearn.neighbors import KNeighborsRegressor

        return KNeighborsRegressor(n_neighbors=10, metric="cosine", weights="distance")


class MLPRouter(_SklearnQuality):
    name: ClassVar[str] = "mlp"

    def make(self, ctx: RouterContext) -> Any:
        from sklearn.neural_network import MLPRegressor

        return MLPRegressor(
            hidden_layer_sizes=(128,), max_iter=300, early_stopping=True, random_state=ctx.seed
        )


class SVMRouter:
    """Classifies the reward-best model (ties to the cheaper of the best) with an SVM."""

    name: ClassVar[str] = "svm"

    def __init__(self) -> None:
        self.model: Any = None
        self.classes: list[int] = []

    def fit(self, table: RoutingTable, ctx: RouterContext) -> None:
        from sklearn.svm import LinearSVC

        reward = ctx.reward(table) - 1e-9 * ctx.normalised_cost()[None, :]
        labels = np.argmax(reward, axis=1)
        self.classes = sorted(set(labels.tolist()))
        if len(self.classes) == 1:
            self.model = None
            return
        self.model = LinearSVC(C=1.0, random_state=ctx.seed)
        self.model.fit(ctx.features(table.queries), labels)

    def utilities(self, queries: Sequence[str], ctx: RouterContext) -> np.ndarray:
        out = np.full((len(queries), len(ctx.models)), -np.inf)
        if self.model is None:
            out[:, self.classes[0]] = 0.0
            return out
        scores = self.model.decision_function(ctx.features(queries))
        if scores.ndim == 1:  # two classes: one margin
            scores = np.stack([-scores, scores], axis=1)
        out[:, self.classes] = scores
        return out

    def save(self, directory: Path) -> None:
        import joblib

        joblib.dump({"model": self.model, "classes": self.classes}, directory / "model.joblib")

    def load(self, directory: Path, ctx: RouterContext) -> None:
        import joblib

        state = joblib.load(directory / "model.joblib")
        self.model, self.classes = state["model"], state["classes"]


class MatrixFactorisation:
    """RouteLLM-style MF: score(q, m) = sigmoid(v_m . W e_q + b_m), trained on outcomes."""

    name: ClassVar[str] = "mf"

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
