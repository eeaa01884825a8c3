"""Cost-aware routers: threshold (RouteLLM), Pareto under a budget, cascade. Policies by
hand on small arrays; training, routing and round-trips on the tiny RouterBench fixture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from signoria.agents.types import ModelCard
from signoria.routers.cost_aware import (
    CascadeRouter,
    ParetoRouter,
    ThresholdRouter,
    calibrate_threshold,
    cascade_choice,
    pareto_utilities,
)
from signoria.routers.data import Outcome, RoutingTable, Row, build_table
from signoria.routers.metrics import two_model_report
from signoria.routers.registry import TRAINABLE
from signoria.routers.trainable import TradeOff, choose
from tests.routing_tiny import tiny_context, tiny_table


@pytest.fixture(scope="module")
def fitted() -> dict[str, ThresholdRouter | ParetoRouter | CascadeRouter]:
    table = tiny_table()
    ctx = tiny_context(table)
    routers: dict[str, ThresholdRouter | ParetoRouter | CascadeRouter] = {
        "threshold": ThresholdRouter(),
        "pareto": ParetoRouter(),
        "cascade": CascadeRouter(),
    }
    for router in routers.values():
        router.fit(table, ctx)
    return routers


@pytest.mark.parametrize("name", ["threshold", "pareto", "cascade"])
def test_trains_routes_and_round_trips(
    name: str, fitted: dict[str, object], tmp_path: Path
) -> None:
    table = tiny_table()
    ctx = tiny_context(table)
    router = fitted[name]
    assert isinstance(router, ThresholdRouter | ParetoRouter | CascadeRouter)
    u = router.utilities(table.queries, ctx)
    assert u.shape == (len(table), len(table.models)) and np.isfinite(u).all()
    router.save(tmp_path)
    again = TRAINABLE.load(name)()
    again.load(tmp_path, ctx)
    np.testing.assert_array_equal(again.utilities(table.queries, ctx), u)


def test_threshold_calibration_gives_the_requested_share(fitted: dict[str, object]) -> None:
    table = tiny_table()
    ctx = tiny_context(table)
    router = fitted["threshold"]
    assert isinstance(router, ThresholdRouter)
    assert table.models[router.strong] == "gpt-4-1106-preview"  # best mean score
    assert table.models[router.weak] == "mistralai/mistral-7b-chat"  # cheapest
    for share in (0.0, 0.2, 0.5, 0.73, 1.0):
        router.calibrate(share)
        chosen = choose(router.utilities(table.queries, ctx))
        assert set(chosen.tolist()) <= {router.strong, router.weak}
        assert abs(int((chosen == router.strong).sum()) - share * len(table)) <= 1
    router.calibrate(0.5)
    # The router's own preference ranks queries for the PGR curve: better than random.
    report = two_model_report(
        table, router.strong, router.weak, router.preference(table.queries, ctx)
    )
    assert report["apgr"] > 0.5


def test_calibrate_threshold_by_hand() -> None:
    scores = np.array([0.9, 0.1, 0.5, 0.3])
    assert calibrate_threshold(scores, 0.5) == pytest.approx(0.4)
    assert calibrate_threshold(scores, 0.0) > 0.9
    assert calibrate_threshold(scores, 1.0) == pytest.approx(0.1)


def two_model_table(strong: list[float], weak: list[float]) -> RoutingTable:
    rows = tuple(
        Row(
            id=str(i),
            task="t",
            query=f"q{i}",
            outcomes={"S": Outcome(score=s, cost=1.0), "W": Outcome(score=w, cost=0.1)},
        )
        for i, (s, w) in enumerate(zip(strong, weak, strict=True))
    )
    return build_table(rows, ("S", "W"), {"S": ModelCard(name="S"), "W": ModelCard(name="W")})


def test_pgr_and_apgr_by_hand() -> None:
    # Strong wins on rows 0 and 3 only; a perfect preference sends those first.
    table = two_model_table([1, 1, 0, 1], [0, 1, 0, 0])
    report = two_model_report(table, 0, 1, np.array([1.0, 0.0, 0.0, 1.0]))
    curve = dict(report["pgr_curve"])
    assert curve[0.0] == 0.0 and curve[0.25] == pytest.approx(0.5) and curve[0.5] == 1.0
    # Read per query (shares 0, .25, .5, .75, 1): PGR 0, .5, 1, 1, 1; area 0.75.
    assert report["apgr"] == pytest.approx(0.75)
    assert report["cpt50"] == 0.25 and report["cpt80"] == 0.5


def test_pareto_by_hand_and_never_over_budget(fitted: dict[str, object]) -> None:
    quality = np.array([[0.9, 0.5, 0.2], [0.1, 0.4, 0.3], [0.9, 0.9, 0.1]])
    cost = np.array([3.0, 1.0, 0.5])
    assert choose(pareto_utilities(quality, cost, budget=1.0)).tolist() == [1, 1, 1]
    assert choose(pareto_utilities(quality, cost, budget=5.0)).tolist() == [0, 1, 1]
    assert choose(pareto_utilities(quality, cost, budget=0.1)).tolist() == [2, 2, 2]

    table = tiny_table()
    ctx = tiny_context(table)
    router = fitted["pareto"]
    assert isinstance(router, ParetoRouter) and router.budget_usd is not None
    assert router.budget_usd == pytest.approx(float(np.median(ctx.expected_cost)))
    for budget in (router.budget_usd, 4e-4, 1e-4):
        router.budget_usd = budget
        spent = ctx.expected_cost[choose(router.utilities(table.queries, ctx))]
        assert (spent <= budget).all()
    router.budget_usd = float(np.median(ctx.expected_cost))


def test_cascade_escalates_exactly_when_cheap_is_predicted_weak() -> None:
    # Columns: cheap, second cheapest, expensive.
    quality = np.array(
        [
            [0.8, 0.7, 0.9],  # cheap confident, both agree: stay
            [0.3, 0.2, 0.9],  # cheap weak: escalate to the best (2)
            [0.4, 0.1, 0.2],  # cheap weak but still the best predicted: "escalate" to 0
            [0.6, 0.3, 0.9],  # cheap confident, second disagrees
        ]
    )
    choice, escalated = cascade_choice(quality, 0, 1, threshold=0.5, disagreement=False)
    assert escalated.tolist() == [False, True, True, False]
    assert choice.tolist() == [0, 2, 0, 0]
    choice, escalated = cascade_choice(quality, 0, 1, threshold=0.5, disagreement=True)
    assert escalated.tolist() == [False, True, True, True] and choice.tolist() == [0, 2, 0, 2]


def test_cascade_on_the_fixture_starts_cheap(fitted: dict[str, object]) -> None:
    table = tiny_table()
    ctx = tiny_context(table, TradeOff())
    router = fitted["cascade"]
    assert isinstance(router, CascadeRouter)
    assert table.models[router.cheap] == "mistralai/mistral-7b-chat"
    choice, escalated = router.decide(table.queries, ctx)
    assert (choice[~escalated] == router.cheap).all()
    quality = router.quality(table.queries, ctx)
    weak = quality[:, router.cheap] < router.threshold
    assert escalated[weak].all()


def test_options_choose_the_pair_and_the_first_model() -> None:
    from signoria.errors import UsageError
    from signoria.routers.artifact import build

    table = tiny_table().subset(range(80))
    ctx = tiny_context(table)
    mixtral = "mistralai/mixtral-8x7b-chat"
    threshold = build("threshold", {"weak": mixtral, "share": 0.25, "predictor": "knn"})
    threshold.fit(table, ctx)
    assert isinstance(threshold, ThresholdRouter) and table.models[threshold.weak] == mixtral
    assert threshold.share == 0.25 and threshold.predictor_name == "knn"
    cascade = build("cascade", {"cheap": mixtral, "threshold": 0.7})
    cascade.fit(table, ctx)
    assert isinstance(cascade, CascadeRouter) and table.models[cascade.cheap] == mixtral
    assert cascade.threshold == 0.7 and cascade.second != cascade.cheap
    with pytest.raises(UsageError, match="option weak: 'nope' is not a model"):
        build("threshold", {"weak": "nope"}).fit(table, ctx)
