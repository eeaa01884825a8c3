"""What each console page shows, shaped from the stored records (no HTML here)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from signoria.agents.pricing import total_cost
from signoria.orchestrator.result import CascadeStep, PolicyTurn
from signoria.orchestrator.storage.records import CallRecord, ItemRecord


def key_label(fingerprint: str | None, names: Mapping[str, str]) -> str:
    """A key as a person knows it: its name, or (keys from the environment) a short id."""
    if fingerprint is None:
        return "-"
    return names.get(fingerprint, f"env:{fingerprint[:8]}")


def status_of(item: ItemRecord) -> str:
    return "error" if item.error else "ok"


@dataclass(frozen=True)
class CallView:
    """A stored call, and how the aggregator used its answer (chosen, discarded,
    flagged, kept; None for calls whose answer was not aggregated)."""

    position: int
    call: CallRecord
    slot: int | None = None
    outcome: str | None = None


@dataclass(frozen=True)
class TurnView:
    """A routing policy's turn, and the position of the call that answered its route (so
    the page can point from the question asked to the call's row)."""

    turn: PolicyTurn
    call: int | None = None


@dataclass(frozen=True)
class RequestView:
    item: ItemRecord
    key: str
    calls: list[CallView]
    routing: dict[str, Any] | None
    aggregation: dict[str, Any] | None
    flagged_experts: list[str] = field(default_factory=list)
    # The aggregator's own trace: a cascade's decision per stage, a policy's turns.
    steps: list[CascadeStep] = field(default_factory=list)
    turns: list[TurnView] = field(default_factory=list)


def request_view(item: ItemRecord, names: Mapping[str, str]) -> RequestView:
    """One request's trace: the router's decision and scores, every call with how the
    aggregator used it, the votes and what it flagged, a cascade's steps or a routing
    policy's turns, the final answer."""
    outcomes: dict[int, tuple[int, str]] = {}  # call position -> (slot, outcome)
    aggregation = None
    steps: list[CascadeStep] = []
    turns: list[TurnView] = []
    if item.aggregations:
        record = item.aggregations[0]
        outcomes = {
            i.call_position: (i.position, i.outcome)
            for i in record.inputs
            if i.call_position is not None
        }
        aggregation = record.model_dump()
        steps = list(record.steps)
        call_of_slot = {i.position: i.call_position for i in record.inputs}
        turns = [
            TurnView(t, None if t.slot is None else call_of_slot.get(t.slot)) for t in record.turns
        ]
    calls = [
        CallView(i, c, *outcomes[i]) if i in outcomes else CallView(i, c)
        for i, c in enumerate(item.calls)
    ]
    flagged = [c.call.expert for c in calls if c.outcome == "flagged"]
    routing = item.routing[0].model_dump() if item.routing else None
    return RequestView(
        item=item,
        key=key_label(item.client, names),
        calls=calls,
        routing=routing,
        aggregation=aggregation,
        flagged_experts=flagged,
        steps=steps,
        turns=turns,
    )


def _bucket_width(times: Sequence[datetime]) -> timedelta:
    span = max(times) - min(times) if times else timedelta(0)
    if span <= timedelta(hours=2):
        return timedelta(minutes=1)
    if span <= timedelta(days=2):
        return timedelta(hours=1)
    return timedelta(days=1)


@dataclass(frozen=True)
class ShareOverTime:
    pipeline: str
    buckets: list[str]
    # model -> its share of the bucket's calls, one value per bucket
    shares: dict[str, list[float]]
    totals: dict[str, int]


def share_over_time(items: Sequence[ItemRecord]) -> list[ShareOverTime]:
    """Per pipeline, each model's share of the expert calls per time bucket (minutes,
    hours or days, by the span of the traffic)."""
    by_pipeline: dict[str, list[ItemRecord]] = defaultdict(list)
    for item in items:
        if item.created_at is not None:
            by_pipeline[item.pipeline or "?"].append(item)
    views = []
    for pipeline, its in sorted(by_pipeline.items()):
        times = [i.created_at for i in its if i.created_at is not None]
        width = _bucket_width(times)
        start = min(times)
        counts: dict[int, Counter[str]] = defaultdict(Counter)
        for item in its:
            assert item.created_at is not None
            index = int((item.created_at - start) / width)
            counts[index].update(c.expert for c in item.calls if c.role != "aggregator")
        indices = sorted(counts)
        fmt = "%H:%M" if width < timedelta(hours=1) else "%m-%d %H:00"
        labels = [(start + width * i).strftime(fmt) for i in indices]
        models = sorted({m for c in counts.values() for m in c})
        shares = {
            m: [counts[i][m] / max(1, sum(counts[i].values())) for i in indices] for m in models
        }
        totals = dict(sum(counts.values(), Counter()).most_common())
        views.append(ShareOverTime(pipeline, labels, shares, totals))
    return views


@dataclass(frozen=True)
class KeySpend:
    key: str
    requests: int
    failed: int
    spend: float | None
    # What the requests with a known price cost: a floor when some are unpriced.
    priced_spend: float
    unpriced: int


def spend_per_key(items: Sequence[ItemRecord], names: Mapping[str, str]) -> list[KeySpend]:
    """Requests and USD per key; `spend` None when any of its requests has no price."""
    by_key: dict[str | None, list[ItemRecord]] = defaultdict(list)
    for item in items:
        by_key[item.client].append(item)
    rows = [
        KeySpend(
            key=key_label(client, names),
            requests=len(its),
            failed=sum(1 for i in its if i.error),
            spend=total_cost(i.cost for i in its),
            priced_spend=sum(i.cost for i in its if i.cost is not None),
            unpriced=sum(1 for i in its if i.cost is None),
        )
        for client, its in by_key.items()
    ]
    return sorted(rows, key=lambda r: -r.requests)
