"""The cluster router (k-means over query embeddings, per-cluster model scores) and the
kNN router's `neighbours` option, on the real `routing_tiny` fixture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from signoria.routers.artifact import ArtifactError, build, load_artifact, train_artifact
from signoria.routers.baselines import KNNRouter
from signoria.routers.clusters import ClusterRouter
from signoria.routers.trainable import TradeOff, choose
from tests.routing_tiny import tiny_context, tiny_table


def fitted(clusters: int, shrinkage: float = 5.0) -> ClusterRouter:
    table = tiny_table()
    router = build("cluster", {"clusters": clusters, "shrinkage": shrinkage})
    assert isinstance(router, ClusterRouter)
    router.fit(table, tiny_context(table, TradeOff(alpha=1.0, beta=0.0)))
    return router


def test_each_cluster_scores_the_models_by_its_training_queries() -> None:
    table = tiny_table()
    ctx = tiny_context(table, TradeOff(alpha=1.0, beta=0.0))
    router = fitted(clusters=4, shrinkage=0.0)
    labels = router.assign(ctx.features(table.queries))
    assert set(labels) == set(range(4))
    for c in range(4):
        np.testing.assert_allclose(router.quality[c], table.scores[labels == c].mean(axis=0))
    # Routing a training query picks the best model of its cluster.
    picks = choose(router.utilities(table.queries, ctx))
    np.testing.assert_array_equal(picks, router.quality[labels].argmax(axis=1))


def test_shrinkage_pulls_small_clusters_to_the_pooled_scores() -> None:
    table = tiny_table()
    pooled = table.scores.mean(axis=0)
    raw, shrunk = fitted(clusters=8, shrinkage=0.0), fitted(clusters=8, shrinkage=1e6)
    np.testing.assert_allclose(shrunk.quality, np.tile(pooled, (8, 1)), atol=1e-3)
    assert np.abs(raw.quality - pooled).max() > 0.05


def test_one_cluster_is_the_best_single_model() -> None:
    table = tiny_table()
    ctx = tiny_context(table, TradeOff(alpha=1.0, beta=0.0))
    router = fitted(clusters=1)
    picks = set(choose(router.utilities(table.queries[:30], ctx)).tolist())
    assert picks == {int(np.argmax(table.scores.mean(axis=0)))}


def test_the_trade_off_moves_the_choice_to_cheaper_models() -> None:
    table = tiny_table()
    router = fitted(clusters=4)
    quality = tiny_context(table, TradeOff(alpha=1.0, beta=0.0))
    thrifty = tiny_context(table, TradeOff(alpha=0.2, beta=0.8))
    cost = quality.expected_cost
    dear = cost[choose(router.utilities(table.queries, quality))].mean()
    cheap = cost[choose(router.utilities(table.queries, thrifty))].mean()
    assert cheap < dear


def test_the_artifact_round_trips_with_its_options(tmp_path: Path) -> None:
    table = tiny_table()
    train, test = table.split(0.25, seed=0)
    options = {"clusters": 6, "shrinkage": 2.0}
    train_artifact(
        "cluster", train, TradeOff.scenario("balanced"), tmp_path, options=options, baselines=()
    )
    router, ctx = load_artifact(tmp_path, "cluster")
    assert isinstance(router, ClusterRouter)
    assert router.config.clusters == 6 and router.config.shrinkage == 2.0
    assert router.centroids.shape == (6, 384)
    again, ctx_again = load_artifact(tmp_path, "cluster")
    np.testing.assert_allclose(
        router.utilities(test.queries, ctx), again.utilities(test.queries, ctx_again)
    )


def test_cluster_options_are_validated() -> None:
    with pytest.raises(ArtifactError, match="option clusters: Input should be greater"):
        build("cluster", {"clusters": 0})
    with pytest.raises(ArtifactError, match=r"has no option k \(known: clusters, shrinkage\)"):
        build("cluster", {"k": 3})


def test_knn_neighbours_widen_the_vote(tmp_path: Path) -> None:
    table = tiny_table()
    train, test = table.split(0.25, seed=0)
    ctx = tiny_context(train, TradeOff(alpha=1.0, beta=0.0))
    wide = build("knn", {"neighbours": len(train)})
    assert isinstance(wide, KNNRouter)
    wide.fit(train, ctx)
    # Every training query votes, weighted by inverse cosine distance.
    x = ctx.features(test.queries[:5])
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    train_x = ctx.features(train.queries)
    train_unit = train_x / np.linalg.norm(train_x, axis=1, keepdims=True)
    weights = 1.0 / np.clip(1.0 - unit @ train_unit.T, 1e-12, 2.0)
    expected = weights @ train.scores / weights.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(wide.predict(x), expected, rtol=1e-4)
    train_artifact(
        "knn",
        train,
        TradeOff.scenario("balanced"),
        tmp_path,
        options={"neighbours": 7},
        baselines=(),
    )
    loaded, _ = load_artifact(tmp_path, "knn")
    assert isinstance(loaded, KNNRouter) and loaded.config.neighbours == 7


def test_route_eval_sweeps_the_cluster_router_along_alpha(tmp_path: Path) -> None:
    from signoria.routers.sweep import sweep_report

    table = tiny_table()
    train, test = table.split(0.25, seed=0)
    train_artifact(
        "cluster", train, TradeOff(), tmp_path, options={"clusters": 4}, baselines=("random",)
    )
    result = sweep_report(tmp_path, test)
    assert result["router"] == "cluster" and result["sweep_param"] == "alpha"
    costs = [point["cost"] for point in result["curve"]]
    assert len(costs) > 2 and min(costs) < max(costs)  # the trade-off moves the choice
    assert "cluster" not in result["not_swept"]
