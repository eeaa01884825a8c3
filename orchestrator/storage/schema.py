"""Tables of runs and everything a request did, for audit, resume and scoring.

One row per item is unique per (run, item key): a killed run that is started again skips
what it already stored and can never store an item twice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}  # noqa: RUF012 (SQLAlchemy API)


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # eval | serve
    pipeline: Mapped[str | None] = mapped_column(String(128))
    benchmark: Mapped[str | None] = mapped_column(String(64))
    data_path: Mapped[str | None] = mapped_column(Text)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="running")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    items: Mapped[list[Item]] = relationship(back_populates="run", cascade="all, delete-orphan")
    metrics: Mapped[list[RunMetric]] = relationship(cascade="all, delete-orphan")


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("run_id", "item_key", name="uq_items_run_key"),
        Index("ix_items_client_created", "client", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    item_key: Mapped[str] = mapped_column(String(256))
    position: Mapped[int | None]
    query: Mapped[str] = mapped_column(Text)
    reference: Mapped[str | None] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    cost: Mapped[float | None] = mapped_column(Float)
    latency_s: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The pipeline (or expert) that answered, and for served requests a fingerprint of the
    # API key that asked (never the key): feedback on a request is only taken from its key.
    pipeline: Mapped[str | None] = mapped_column(String(128))
    client: Mapped[str | None] = mapped_column(String(64))
    # The answer's finish reason ("length": cut at max_tokens), for truncation reports.
    finish_reason: Mapped[str | None] = mapped_column(String(16))
    # A served answer replayed from the response cache: the request that computed it.
    cached_from: Mapped[str | None] = mapped_column(String(64))

    run: Mapped[Run] = relationship(back_populates="items")
    calls: Mapped[list[ModelCall]] = relationship(
        cascade="all, delete-orphan", order_by="ModelCall.position"
    )
    routing: Mapped[list[RoutingRecord]] = relationship(cascade="all, delete-orphan")
    aggregations: Mapped[list[AggregationRecord]] = relationship(cascade="all, delete-orphan")
    scores: Mapped[list[Score]] = relationship(cascade="all, delete-orphan")
    feedback: Mapped[Feedback | None] = relationship(cascade="all, delete-orphan")


class RoutingRecord(Base):
    __tablename__ = "routing_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    router: Mapped[str] = mapped_column(String(64))
    experts: Mapped[list[Any]] = mapped_column(default=list)
    scores: Mapped[dict[str, Any]] = mapped_column(default=dict)
    predicted_quality: Mapped[float | None] = mapped_column(Float)
    predicted_cost: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text, default="")


class ModelCall(Base):
    __tablename__ = "model_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    position: Mapped[int]
    expert: Mapped[str] = mapped_column(String(128), index=True)
    role: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(default=1)
    seed: Mapped[int | None]
    tokens_in: Mapped[int] = mapped_column(default=0)
    tokens_out: Mapped[int] = mapped_column(default=0)
    latency_s: Mapped[float] = mapped_column(Float, default=0.0)
    cost: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text, default="")
    finish_reason: Mapped[str | None] = mapped_column(String(16))
    # Metering (orchestrator/metering.py): why this row differs from what the backend
    # said ("over_reported", "budget_exceeded", "budget_refused"), and the backend's own
    # numbers where they were capped.
    flags: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    reported_tokens_out: Mapped[int | None]
    reported_cost: Mapped[float | None] = mapped_column(Float)
    # The calls of the client's tools the expert asked for, in OpenAI's shape.
    tool_calls: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")


class AggregationRecord(Base):
    __tablename__ = "aggregations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    aggregator: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    votes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    rounds: Mapped[int] = mapped_column(default=1)
    error: Mapped[str | None] = mapped_column(Text)
    # The aggregator's own trace, as `Aggregate` holds it: an answer-aware cascade's
    # decision after each stage, a routing policy's turns (Router-R1).
    steps: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    turns: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")

    inputs: Mapped[list[AggregationInput]] = relationship(cascade="all, delete-orphan")


class AggregationInput(Base):
    """Which expert answer went into an aggregation, and what became of it."""

    __tablename__ = "aggregation_inputs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    aggregation_id: Mapped[int] = mapped_column(
        ForeignKey("aggregations.id", ondelete="CASCADE"), index=True
    )
    call_id: Mapped[int | None] = mapped_column(ForeignKey("model_calls.id", ondelete="CASCADE"))
    position: Mapped[int]
    outcome: Mapped[str] = mapped_column(String(16))  # chosen | discarded | flagged | kept

    call: Mapped[ModelCall | None] = relationship()

    @property
    def call_position(self) -> int | None:
        """The position in its item's trace of the call whose answer this was."""
        return None if self.call is None else self.call.position


class Score(Base):
    __tablename__ = "scores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    metric: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    extracted: Mapped[str | None] = mapped_column(Text)


class Feedback(Base):
    """What a client said about a served answer: a score or a reference answer.

    At most one per item (unique `item_id`): feedback given again replaces the earlier,
    so a client can correct itself and an export never has to choose between two.
    """

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), unique=True, index=True
    )
    score: Mapped[float | None] = mapped_column(Float)
    reference: Mapped[str | None] = mapped_column(Text)
    comment: Mapped[str | None] = mapped_column(Text)
    task: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """A client key: kept as its fingerprint (never the key), with its own limits.

    The fingerprint is what every served request records as its `client`, so a key's
    spend and tokens are read from the recorded requests themselves (the trace's numbers).
    """

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    prefix: Mapped[str] = mapped_column(String(16))  # what `keys list` shows of the key
    limits: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    # "cli" (`signoria keys create`) or "config" (declared under `keys:`, kept in step
    # with the config each time a server starts).
    source: Mapped[str] = mapped_column(String(16), default="cli", server_default="cli")


class KeyAdmission(Base):
    """One admitted request of a limited key: the shared count behind requests/minute,
    so several server instances on one database enforce one limit."""

    __tablename__ = "key_admissions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class CachedResponse(Base):
    """A deterministic request's result, replayed to the same request until it expires.

    `key` hashes the pipeline's version (its config and its experts'), the request and,
    unless the cache is shared, the key that asked; `request_id` is who computed it.
    """

    __tablename__ = "response_cache"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64))
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class RunMetric(Base):
    __tablename__ = "run_metrics"
    __table_args__ = (UniqueConstraint("run_id", "name", name="uq_run_metrics_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float | None] = mapped_column(Float)
