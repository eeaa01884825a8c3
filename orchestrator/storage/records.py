"""What readers of the database get: plain, frozen records, not ORM rows.

Reports, exports and the CLI read runs through these, so they never hold a session, never
trigger a lazy load after it closed, and do not change when the schema's mapping does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from signoria.orchestrator.result import CascadeStep, PolicyTurn


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)


class CallRecord(_Record):
    expert: str
    role: str
    attempt: int
    seed: int | None
    tokens_in: int
    tokens_out: int
    latency_s: float
    cost: float | None
    error: str | None
    text: str
    finish_reason: str | None = None
    flags: tuple[str, ...] = ()
    reported_tokens_out: int | None = None
    reported_cost: float | None = None
    # The calls of the client's tools it asked for, in OpenAI's shape.
    tool_calls: tuple[dict[str, Any], ...] = ()


class RoutingRecord(_Record):
    router: str
    experts: list[Any]
    scores: dict[str, Any]
    predicted_quality: float | None
    predicted_cost: float | None
    reason: str


class AggregationInputRecord(_Record):
    position: int
    outcome: str
    call_position: int | None = None


class AggregationRecord(_Record):
    aggregator: str
    text: str
    votes: dict[str, Any]
    rounds: int
    error: str | None
    inputs: tuple[AggregationInputRecord, ...]
    # The aggregator's own trace, typed as the live result has it (empty for aggregators
    # that keep none, and for aggregations stored before it was kept).
    steps: tuple[CascadeStep, ...] = ()
    turns: tuple[PolicyTurn, ...] = ()


class ScoreRecord(_Record):
    metric: str
    value: float
    extracted: str | None


class FeedbackRecord(_Record):
    """A client's verdict on a served answer (see `storage/feedback.py`)."""

    score: float | None
    reference: str | None
    comment: str | None
    task: str | None
    created_at: datetime
    updated_at: datetime


class ItemRecord(_Record):
    item_key: str
    position: int | None
    query: str
    reference: str | None
    answer: str | None
    error: str | None
    cost: float | None
    latency_s: float | None
    calls: tuple[CallRecord, ...]
    routing: tuple[RoutingRecord, ...]
    aggregations: tuple[AggregationRecord, ...]
    scores: tuple[ScoreRecord, ...]
    pipeline: str | None = None
    feedback: FeedbackRecord | None = None
    finish_reason: str | None = None
    cached_from: str | None = None
    created_at: datetime | None = None
    # The fingerprint of the API key that asked (served requests; None: keys off).
    client: str | None = None


class RunRecord(_Record):
    id: str
    kind: str
    pipeline: str | None
    benchmark: str | None
    data_path: str | None
    config: dict[str, Any]
    status: str
    created_at: datetime
    finished_at: datetime | None


class RunSummary(BaseModel):
    """One line of `signoria runs list`, aggregated in SQL."""

    model_config = ConfigDict(frozen=True)

    run: RunRecord
    items: int
    scored: int
    accuracy: float | None
    # None when any item's cost is unknown: a sum over unknowns is unknown, never 0.
    cost: float | None
