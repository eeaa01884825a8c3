"""Feedback on served requests: what it may say, and how it is stored.

A served request is an item of a run of kind "serve" whose key is the request id the
client got back (the completion's `id`, also the `X-Request-Id` header). Feedback is a
score in [0, 1] for the answer the request returned, or a reference answer that every
recorded expert answer of the request can be scored against; never both, since a
reference already implies the score. Feedback given again for the same request replaces
the earlier one (latest wins), so a client can correct itself and an export never has to
choose between two verdicts.

The same model validates the REST body and the CLI's flags, so both refuse the same
things with the same messages.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from signoria.errors import SignoriaError
from signoria.orchestrator.storage.records import FeedbackRecord
from signoria.orchestrator.storage.schema import Feedback, Item, Run, utcnow

Text = Annotated[str, StringConstraints(min_length=1, max_length=100_000)]
Task = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\w.:/+-]+$")]


class UnknownRequest(SignoriaError):
    """No served request has this id (or, with keys on, none made with the caller's key)."""


class FeedbackRefused(SignoriaError):
    """The request exists but this feedback cannot apply to it."""


class FeedbackInput(BaseModel):
    """The verdict itself, validated strictly: a string is not a score, `true` is not 1."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    score: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    reference: Text | None = None
    comment: Annotated[str, StringConstraints(max_length=4000)] | None = None
    # What kind of query this was (e.g. "gsm8k", "support"), for routers that learn per
    # task; without it an export uses the request's pipeline name.
    task: Task | None = None

    @model_validator(mode="after")
    def _one_verdict(self) -> FeedbackInput:
        if (self.score is None) == (self.reference is None):
            raise ValueError("give exactly one of score and reference")
        return self


def _served_item(session: Session, request_id: str) -> Item | None:
    query = (
        select(Item)
        .join(Run, Run.id == Item.run_id)
        .where(Run.kind == "serve", Item.item_key == request_id)
        .order_by(Item.id.desc())
        .limit(1)
    )
    return session.scalars(query).first()


def give_feedback(
    session: Session,
    request_id: str,
    feedback: FeedbackInput,
    *,
    client: str | None = None,
    enforce_client: bool = False,
) -> FeedbackRecord:
    """Store (or replace) the feedback on `request_id`.

    With `enforce_client`, a request made under another key (or none) is reported as
    unknown rather than forbidden, so a key cannot probe which ids exist.
    """
    item = _served_item(session, request_id)
    if item is None or (enforce_client and item.client != client):
        raise UnknownRequest(f"no served request {request_id!r} in this database")
    if feedback.score is not None and item.answer is None:
        raise FeedbackRefused(
            f"request {request_id!r} failed and returned no answer to score; "
            "give a reference instead, to score the expert answers it recorded"
        )
    values = feedback.model_dump()
    row = item.feedback
    now = utcnow()
    if row is None:
        row = Feedback(**values, created_at=now, updated_at=now)
        item.feedback = row
    else:
        for key, value in values.items():
            setattr(row, key, value)
        row.updated_at = now
    session.flush()
    return FeedbackRecord.model_validate(row)


__all__ = ["FeedbackInput", "FeedbackRefused", "UnknownRequest", "give_feedback"]
