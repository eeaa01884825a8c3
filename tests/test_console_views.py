"""What the console's pages are made of, from records built by hand: a router's collapse
onto one model shows in the share over time, and spend per key keeps unknown prices
unknown."""

from __future__ import annotations

from datetime import datetime, timedelta

from signoria.evals.console.views import share_over_time, spend_per_key
from signoria.orchestrator.storage.records import CallRecord, ItemRecord

START = datetime(2026, 12, 1, 9, 0)


def served(minute: int, experts: list[str], cost: float | None, client: str | None) -> ItemRecord:
    calls = tuple(
        CallRecord(
            expert=e,
            role="expert",
            attempt=1,
            seed=0,
            tokens_in=1,
            tokens_out=1,
            latency_s=0.1,
            cost=cost,
            error=None,
            text="x",
        )
        for e in experts
    )
    return ItemRecord(
        item_key=f"r{minute}",
        position=None,
        query="q",
        reference=None,
        answer="x",
        error=None,
        cost=cost,
        latency_s=0.1,
        calls=calls,
        routing=(),
        aggregations=(),
        scores=(),
        pipeline="routed",
        created_at=START + timedelta(minutes=minute),
        client=client,
    )


def test_a_router_collapsing_onto_one_model_shows_in_the_share_over_time() -> None:
    # Three hours of traffic: a balanced first hour, then everything to "big".
    items = [served(m, ["small" if m % 2 else "big"], 0.01, "k") for m in range(0, 60, 5)]
    items += [served(m, ["big"], 0.01, "k") for m in range(60, 180, 5)]
    [view] = share_over_time(items)
    assert view.pipeline == "routed" and len(view.buckets) == 3  # hours, by the span
    assert view.shares["big"] == [0.5, 1.0, 1.0] and view.shares["small"] == [0.5, 0.0, 0.0]
    assert view.totals == {"big": 30, "small": 6}


def test_spend_per_key_is_unknown_when_any_request_is_unpriced() -> None:
    items = [
        served(0, ["a"], 0.5, "fp-a"),
        served(1, ["a"], None, "fp-a"),
        served(2, ["a"], 0.25, None),
    ]
    rows = {r.key: r for r in spend_per_key(items, {"fp-a": "team-a"})}
    assert rows["team-a"].spend is None and rows["team-a"].priced_spend == 0.5
    assert rows["team-a"].unpriced == 1 and rows["team-a"].requests == 2
    assert rows["-"].spend == 0.25
