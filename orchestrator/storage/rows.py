"""Rows of an answered item: the item with its calls, routing and aggregation, built from
an `AskResult` before any session sees them (so a batch is built and written at once)."""

from __future__ import annotations

from typing import Required, TypedDict

from sqlalchemy import Select
from sqlalchemy.orm import selectinload

from signoria.orchestrator.result import AskResult
from signoria.orchestrator.storage.schema import (
    AggregationInput,
    AggregationRecord,
    Item,
    ModelCall,
    RoutingRecord,
    Score,
)


class ItemFields(TypedDict, total=False):
    """What one stored item is made of (`new_item`'s keywords), checked where it is built."""

    item_key: Required[str]
    query: Required[str]
    reference: str | None
    result: AskResult | None
    error: str | None
    score: float | None
    extracted: str | None
    metric: str
    position: int | None
    client: str | None


def new_item(
    run_id: str,
    *,
    item_key: str,
    query: str,
    reference: str | None = None,
    result: AskResult | None = None,
    error: str | None = None,
    score: float | None = None,
    extracted: str | None = None,
    metric: str = "accuracy",
    position: int | None = None,
    client: str | None = None,
) -> Item:
    """An item row with its whole trace, not yet added to any session."""
    item = Item(
        run_id=run_id,
        item_key=item_key,
        position=position,
        query=query,
        pipeline=None if result is None else result.pipeline,
        client=client,
        reference=reference,
        answer=None if result is None or error else result.answer,
        error=error,
        cost=None if result is None else result.cost,
        latency_s=None if result is None else result.latency_s,
        finish_reason=None if result is None or error else result.finish_reason,
        cached_from=None if result is None else result.cached_from,
    )
    if result is not None:
        _attach_trace(item, result)
    if score is not None:
        item.scores.append(Score(metric=metric, value=score, extracted=extracted))
    return item


def with_trace(query: Select[Item]) -> Select[Item]:
    """Load each item's calls, scores, routing, aggregation and feedback with it."""
    return query.options(
        selectinload(Item.calls),
        selectinload(Item.scores),
        selectinload(Item.routing),
        selectinload(Item.aggregations)
        .selectinload(AggregationRecord.inputs)
        .selectinload(AggregationInput.call),
        selectinload(Item.feedback),
    )


def _attach_trace(item: Item, result: AskResult) -> None:
    calls = [
        ModelCall(
            position=i,
            expert=c.expert,
            role=c.role,
            attempt=c.attempt,
            seed=c.seed,
            tokens_in=c.tokens_in,
            tokens_out=c.tokens_out,
            latency_s=c.latency_s,
            cost=c.cost,
            error=c.error,
            text=c.text,
            finish_reason=c.finish_reason,
            flags=list(c.flags),
            reported_tokens_out=c.reported_tokens_out,
            reported_cost=c.reported_cost,
            tool_calls=[call.to_openai() for call in c.tool_calls],
        )
        for i, c in enumerate(result.calls)
    ]
    item.calls.extend(calls)
    if result.routing is not None:
        r = result.routing
        item.routing.append(
            RoutingRecord(
                router=r.router,
                experts=[a.model_dump() for a in r.assignments],
                scores=dict(r.scores),
                predicted_quality=r.predicted_quality,
                predicted_cost=r.predicted_cost,
                reason=r.reason,
            )
        )
    if result.aggregation is not None:
        a = result.aggregation
        record = AggregationRecord(
            aggregator=a.aggregator,
            text=a.text,
            votes=dict(a.votes),
            rounds=a.rounds,
            error=a.error,
            steps=[step.model_dump(mode="json") for step in a.steps],
            turns=[turn.model_dump(mode="json") for turn in a.turns],
        )
        # The answer of slot i is the last call made for it (after retries or a fallback).
        answer_of_slot = {
            c.slot: calls[i] for i, c in enumerate(result.calls) if c.slot is not None
        }
        outcome = {
            **{i: "discarded" for i in a.discarded},
            **{i: "chosen" for i in a.chosen},
            **{i: "flagged" for i in a.flagged},
        }
        for slot, call in sorted(answer_of_slot.items()):
            record.inputs.append(
                AggregationInput(call=call, position=slot, outcome=outcome.get(slot, "kept"))
            )
        item.aggregations.append(record)
