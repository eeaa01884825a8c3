"""GraphRouter on a 300-row cut of the LLMRouter table (tests/fixtures/routing_small.*).

Training is kept small (few epochs, small hidden size): the checks are about mechanics
(shapes, reproducibility, save/load, inductive routing, masking, edge attributes), plus a
lenient "better than random" on a held-out split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from signoria.routers.baselines import RandomRouter
from signoria.routers.data import RoutingTable, load_models, load_table
from signoria.routers.embedding import Embedder
from signoria.routers.graph import GraphConfig, GraphRouter
from signoria.routers.graph.features import (
    EDGE_DIM,
    LLM_TO_QUERY,
    QUERY_TO_LLM,
    assign_tasks,
    build_graph,
    llm_nodes,
    training_graph,
)
from signoria.routers.registry import TRAINABLE
from signoria.routers.trainable import RouterContext, TradeOff, choose
from tests.conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures"
SMALL = GraphConfig(hidden=32, epochs=60, lr=3e-3)
HELD_OUT = "llama3-chatqa-1.5-70b"


@pytest.fixture(scope="module")
def table() -> RoutingTable:
    models = load_models(FIXTURES / "routing_small.models.json")
    return load_table(FIXTURES / "routing_small.jsonl", models)


@pytest.fixture(scope="module")
def embedder(table: RoutingTable) -> Embedder:
    shared = Embedder()
    shared.embed(table.queries)  # once for the module; every context below reuses it
    return shared


@pytest.fixture(scope="module")
def split(table: RoutingTable) -> tuple[RoutingTable, RoutingTable]:
    return table.split(test_fraction=0.2, seed=0)


def context(table: RoutingTable, embedder: Embedder, seed: int = 0) -> RouterContext:
    return RouterContext.from_table(table, TradeOff.scenario("balanced"), seed, embedder)


@pytest.fixture(scope="module")
def trained(
    split: tuple[RoutingTable, RoutingTable], embedder: Embedder
) -> tuple[GraphRouter, RouterContext]:
    train, _ = split
    ctx = context(train, embedder)
    router = GraphRouter(SMALL)
    router.fit(train, ctx)
    return router, ctx


def test_fixture_is_the_documented_cut(table: RoutingTable) -> None:
    assert len(table) == 300
    assert len(table.models) == 5
    assert len(set(table.tasks)) == 6
    assert table.cost_estimated  # LLMRouter records no cost: estimated from prices
    assert max(len(q) for q in table.queries) <= 400


def test_registered_as_graph() -> None:
    assert TRAINABLE.load("graph") is GraphRouter
    assert GraphRouter.name == "graph"


def test_trains_and_routes(
    trained: tuple[GraphRouter, RouterContext], split: tuple[RoutingTable, RoutingTable]
) -> None:
    router, ctx = trained
    _, test = split
    utilities = router.utilities(test.queries, ctx)
    assert utilities.shape == (len(test), len(ctx.models))
    assert np.isfinite(utilities).all()
    assert router.utilities([], ctx).shape == (0, len(ctx.models))


def test_a_query_is_routed_the_same_alone_or_in_a_batch(
    trained: tuple[GraphRouter, RouterContext], split: tuple[RoutingTable, RoutingTable]
) -> None:
    router, ctx = trained
    queries = split[1].queries[:8]
    batch = router.utilities(queries, ctx)
    alone = np.stack([router.utilities([q], ctx)[0] for q in queries])
    np.testing.assert_allclose(batch, alone, rtol=1e-5, atol=1e-5)


def test_routing_without_the_full_pass_gives_the_full_pass_numbers(
    trained: tuple[GraphRouter, RouterContext], split: tuple[RoutingTable, RoutingTable]
) -> None:
    """`predict` runs only the new queries' nodes against frozen training states; the
    reference is the whole graph with the queries appended as receivers (what routing
    did before), on the same trained network."""
    router, ctx = trained
    queries = split[1].queries
    graph, net = router.graph, router.net
    assert graph is not None and net is not None
    x = torch.tensor(ctx.features(queries), dtype=torch.float32)
    tasks = assign_tasks(graph, x, router.config.knn)
    llms = llm_nodes(ctx, graph)
    full = build_graph(
        graph, llms, torch.ones(graph.n_queries, dtype=torch.bool), extra_x=x, extra_task=tasks
    )
    with torch.no_grad():
        reference = net(full, llms.expected_cost)
    fast = router.predict(queries, ctx)
    torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-5)
    assert torch.equal(fast[..., 0].argmax(dim=1), reference[..., 0].argmax(dim=1))
    assert torch.equal(fast[..., 1].argmax(dim=1), reference[..., 1].argmax(dim=1))


def test_frozen_states_follow_the_context(
    trained: tuple[GraphRouter, RouterContext], split: tuple[RoutingTable, RoutingTable]
) -> None:
    """A context with other LLM nodes (a model left out) gets states of its own, not the
    first context's: its scores equal a router that only ever saw that context."""
    router, ctx = trained
    queries = split[1].queries[:6]
    router.utilities(queries, ctx)
    narrower = RouterContext(
        models=ctx.models[1:],
        info=ctx.info,
        trade_off=ctx.trade_off,
        expected_cost=ctx.expected_cost[1:],
        cost_scale=ctx.cost_scale,
        embedder=ctx.embedder,
    )
    narrow = router.utilities(queries, narrower)
    fresh = GraphRouter(router.config)
    fresh.graph, fresh.net, fresh.anchor = router.graph, router.net, router.anchor
    np.testing.assert_array_equal(narrow, fresh.utilities(queries, narrower))
    assert narrow.shape == (6, len(ctx.models) - 1)


def test_same_seed_same_router(
    trained: tuple[GraphRouter, RouterContext],
    split: tuple[RoutingTable, RoutingTable],
    embedder: Embedder,
) -> None:
    router, ctx = trained
    train, test = split
    again = GraphRouter(SMALL)
    again.fit(train, context(train, embedder))
    np.testing.assert_array_equal(
        router.utilities(test.queries, ctx), again.utilities(test.queries, ctx)
    )


def test_save_load_round_trip(
    trained: tuple[GraphRouter, RouterContext],
    split: tuple[RoutingTable, RoutingTable],
    tmp_path: Path,
) -> None:
    router, ctx = trained
    router.save(tmp_path)
    loaded = GraphRouter()
    loaded.load(tmp_path, ctx)
    assert loaded.config == SMALL
    queries = split[1].queries
    np.testing.assert_array_equal(router.utilities(queries, ctx), loaded.utilities(queries, ctx))


def with_margin(router: GraphRouter, margin: float) -> GraphRouter:
    """The same trained network, read out with another anchor margin."""
    anchored = GraphRouter(SMALL.model_copy(update={"anchor_margin": margin}))
    anchored.net, anchored.graph, anchored.anchor = router.net, router.graph, router.anchor
    return anchored


def test_anchor_margin_leans_on_the_best_single_model(
    trained: tuple[GraphRouter, RouterContext],
    split: tuple[RoutingTable, RoutingTable],
    tmp_path: Path,
) -> None:
    router, ctx = trained
    train, test = split
    best = train.models[int(np.argmax(ctx.reward(train).mean(axis=0)))]
    assert router.anchor == best
    column = ctx.models.index(best)
    plain = router.utilities(test.queries, ctx)
    anchored = with_margin(router, 0.2)
    leaned = anchored.utilities(test.queries, ctx)
    np.testing.assert_allclose(leaned[:, column], plain[:, column] + 0.2, rtol=1e-6)
    others = [j for j in range(len(ctx.models)) if j != column]
    np.testing.assert_array_equal(leaned[:, others], plain[:, others])
    share = float(np.mean(np.argmax(leaned, axis=1) == column))
    assert share >= float(np.mean(np.argmax(plain, axis=1) == column))
    huge = with_margin(router, 10.0)
    assert (np.argmax(huge.utilities(test.queries, ctx), axis=1) == column).all()
    anchored.save(tmp_path)  # the anchor travels with the artifact
    loaded = GraphRouter()
    loaded.load(tmp_path, ctx)
    assert loaded.anchor == best and loaded.config.anchor_margin == 0.2


def test_beats_random_on_held_out_reward(
    trained: tuple[GraphRouter, RouterContext], split: tuple[RoutingTable, RoutingTable]
) -> None:
    router, ctx = trained
    _, test = split
    reward = ctx.reward(test)
    rows = np.arange(len(test))
    graph = reward[rows, choose(router.utilities(test.queries, ctx))].mean()
    random = RandomRouter()
    random.fit(test, ctx)
    chance = reward[rows, choose(random.utilities(test.queries, ctx))].mean()
    assert graph >= chance


def test_routes_to_a_model_it_never_saw(
    split: tuple[RoutingTable, RoutingTable], embedder: Embedder
) -> None:
    train, test = split
    seen_only = train.without_model(HELD_OUT)
    router = GraphRouter(SMALL)
    router.fit(seen_only, context(seen_only, embedder))
    assert HELD_OUT not in router._trained()[0].models
    full = context(train, embedder)  # the routing context now lists the new model
    utilities = router.utilities(test.queries, full)
    column = full.models.index(HELD_OUT)
    assert utilities.shape == (len(test), len(full.models))
    assert np.isfinite(utilities).all()
    # Scored from its description: its utilities vary with the query and differ from
    # every known model's column.
    assert np.ptp(utilities[:, column]) > 0
    for j in range(len(full.models)):
        if j != column:
            assert not np.allclose(utilities[:, j], utilities[:, column])


def test_supervised_queries_do_not_see_their_own_outcome(
    split: tuple[RoutingTable, RoutingTable], embedder: Embedder
) -> None:
    train, _ = split
    ctx = context(train, embedder)
    graph = training_graph(train.queries, train.tasks, train.scores, train.costs, ctx)
    llms = llm_nodes(ctx, graph)
    observed = torch.ones(graph.n_queries, dtype=torch.bool)
    observed[:10] = False
    batch = build_graph(graph, llms, observed)
    assert batch.receivers.tolist() == list(range(10))
    to_query = batch.edge_index[LLM_TO_QUERY]
    attr = batch.edge_attr[LLM_TO_QUERY]
    masked = to_query[1] < 10
    assert torch.all(attr[masked, 0] == 0) and torch.all(attr[masked, 2] == 0)
    assert torch.all(attr[~masked, 2] == 1)
    assert not torch.isin(batch.edge_index[QUERY_TO_LLM][0], torch.arange(10)).any()


def test_edge_attributes_enter_the_messages(
    trained: tuple[GraphRouter, RouterContext], split: tuple[RoutingTable, RoutingTable]
) -> None:
    trained_router, ctx = trained
    graph, net = trained_router._trained()
    # A router with no frozen states yet: its first call runs the full pass once (both
    # query-LLM edge types) and then the new queries' nodes (LLM -> query edges only).
    router = GraphRouter(trained_router.config)
    router.graph, router.net, router.anchor = graph, net, trained_router.anchor
    seen: list[tuple[str, Any]] = []
    hooks = [
        layer.convs[key].register_forward_pre_hook(
            lambda _m, args, key=key: seen.append((key, args))
        )
        for layer in net.layers
        for key in ("__".join(LLM_TO_QUERY), "__".join(QUERY_TO_LLM))
    ]
    queries = split[1].queries[:16]
    before = router.utilities(queries, ctx)
    for hook in hooks:
        hook.remove()
    # Two layers x two edge types in the full pass, two layers x one for the queries.
    assert [key for key, _ in seen].count("__".join(QUERY_TO_LLM)) == 2
    assert [key for key, _ in seen].count("__".join(LLM_TO_QUERY)) == 4
    for _, args in seen:
        assert len(args) == 3 and args[2].shape[1] == EDGE_DIM
    # And the outcomes on those edges change the decision scores (a router of its own:
    # this one's frozen states were computed from the original outcomes).
    original = graph.scores.clone()
    graph.scores = 1.0 - original
    flipped = GraphRouter(router.config)
    flipped.graph, flipped.net = graph, net
    try:
        after = flipped.utilities(queries, ctx)
    finally:
        graph.scores = original
    assert not np.allclose(before, after)
