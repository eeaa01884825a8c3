"""Route by the kind of query: k-means clusters of the query embeddings, each with the
models' measured scores on its training queries (the recipe of "The Avengers", Zhang et
al. 2025, and of UniRoute's cluster features).

Why it beats per-query regressors on tables like LLMRouter's: what separates the models
there is mostly the *task* (one model is best at maths, another at commonsense), and a
cluster's mean score is a low-variance estimate of that, where a regressor or a
10-neighbour average fits the noise of single outcomes. Small clusters are shrunk towards
the pooled scores (`shrinkage` pseudo-queries), so a cluster of five queries does not
route on five coin flips. Routing one query is one product with the centroids, and the
artifact is plain numbers (JSON), no pickle.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from signoria.routers.baselines import unit_rows
from signoria.routers.data import RoutingTable
from signoria.routers.trainable import RouterContext


class ClusterParams(BaseModel):
    """`clusters`: how many kinds of query (k of k-means; fewer when the table is small).
    `shrinkage`: pseudo-queries of the pooled scores added to every cluster."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    clusters: int = Field(default=32, ge=1, le=4096)
    shrinkage: float = Field(default=5.0, ge=0.0)


class ClusterRouter:
    name: ClassVar[str] = "cluster"
    sweep_param: ClassVar[str] = "alpha"

    def __init__(self) -> None:
        self.config = ClusterParams()
        self.centroids = np.zeros((0, 0))
        self.quality = np.zeros((0, 0))  # [clusters, models]

    def fit(self, table: RoutingTable, ctx: RouterContext) -> None:
        from sklearn.cluster import KMeans

        x = unit_rows(np.asarray(ctx.features(table.queries), dtype=np.float64))
        k = max(1, min(self.config.clusters, len(table)))
        kmeans = KMeans(n_clusters=k, n_init=4, random_state=ctx.seed).fit(x)
        self.centroids = np.asarray(kmeans.cluster_centers_, dtype=np.float64)
        self.quality = self.shrunk_means(np.asarray(kmeans.labels_), table.scores, k)

    def shrunk_means(self, labels: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
        """Per cluster, each model's mean score with `shrinkage` pooled pseudo-queries."""
        pooled = np.nanmean(scores, axis=0)
        lam = self.config.shrinkage
        out = np.zeros((k, scores.shape[1]))
        for c in range(k):
            members = scores[labels == c]
            weight = len(members) + lam
            out[c] = (np.nansum(members, axis=0) + lam * pooled) / weight if weight else pooled
        return out

    def assign(self, x: np.ndarray) -> np.ndarray:
        """Nearest centroid of each (unit) query vector, as k-means assigned them."""
        x = unit_rows(np.asarray(x, dtype=np.float64))
        squared = (self.centroids**2).sum(axis=1)[None, :] - 2.0 * x @ self.centroids.T
        nearest: np.ndarray = np.argmin(squared, axis=1)
        return nearest

    def utilities(self, queries: Sequence[str], ctx: RouterContext) -> np.ndarray:
        return ctx.utility(self.quality[self.assign(ctx.features(queries))])

    def save(self, directory: Path) -> None:
        state = {
            "config": self.config.model_dump(),
            "centroids": self.centroids.tolist(),
            "quality": self.quality.tolist(),
        }
        (directory / "clusters.json").write_text(json.dumps(state))

    def load(self, directory: Path, ctx: RouterContext) -> None:
        state = json.loads((directory / "clusters.json").read_text())
        self.config = ClusterParams.model_validate(state["config"])
        self.centroids = np.asarray(state["centroids"], dtype=np.float64)
        self.quality = np.asarray(state["quality"], dtype=np.float64)
