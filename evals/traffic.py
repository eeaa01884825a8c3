"""Recorded server traffic with feedback, as routing-outcome rows routers can train on.

A served request becomes a row only through its feedback, because a request alone says
nothing about how good its answers were:

- a **reference** answer scores every expert answer the request recorded (each model's
  first successful call; aggregator calls and answers to a routing policy's own
  questions excluded), with the same extraction and matching as the benchmark runner
  (`evals/scoring.py`, kind inferred from the reference). A request that called several
  experts thus yields one outcome per expert.
- a **score** scores the answer the request *returned*, so it is credited to the
  model(s) whose own answer is that answer (same text once stripped); for a single-expert
  or routed request that is the model that produced it. An answer that no expert gave
  verbatim (a synthesis, a vote reporting only the extracted letter) cannot be credited
  to a model and yields no row.

The row's task is the feedback's `task`, else the pipeline that answered. Requests
without feedback, or whose feedback credits no model, are skipped and counted by reason.
A row holds outcomes only for models the request called: a router learns from traffic
only about the models that traffic called (see docs/routers.md, "Retrain from traffic").
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from signoria.evals.datasets import EvalItem, answer_kind
from signoria.evals.scoring import score
from signoria.orchestrator.storage.records import CallRecord, ItemRecord

DEFAULT_TASK = "traffic"


@dataclass
class TrafficRows:
    """Outcome rows and, per reason, how many requests gave none."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)

    def add(self, item: ItemRecord) -> None:
        row, reason = traffic_row(item)
        if row is None:
            self.skipped[reason] += 1
        else:
            self.rows.append(row)

    def skipped_text(self) -> str:
        """`5 requests skipped: 3 without feedback, 2 ...`, for a person to read."""
        reasons = ", ".join(f"{n} {why}" for why, n in sorted(self.skipped.items()))
        return f"{sum(self.skipped.values())} requests skipped: {reasons}"


def first_answers(item: ItemRecord) -> dict[str, CallRecord]:
    """Each expert's first successful answer to the item's query (what it said on its own).

    An answer to a question a routing policy wrote (Router-R1's route turns) is left out:
    it answers that question, not the query, so scored against the query's reference it
    would teach a router a wrong outcome.
    """
    elsewhere = _answers_to_other_questions(item)
    first: dict[str, CallRecord] = {}
    for position, call in enumerate(item.calls):
        if call.role == "aggregator" or call.error is not None or position in elsewhere:
            continue
        first.setdefault(call.expert, call)
    return first


def _answers_to_other_questions(item: ItemRecord) -> set[int]:
    """Positions of the calls that answered a policy's question other than the query."""
    positions: set[int] = set()
    for aggregation in item.aggregations:
        slots = {
            t.slot
            for t in aggregation.turns
            if t.slot is not None and (t.query or "").strip() != item.query.strip()
        }
        positions.update(
            i.call_position
            for i in aggregation.inputs
            if i.position in slots and i.call_position is not None
        )
    return positions


def outcome_of(call: CallRecord, value: float | None) -> dict[str, Any]:
    return {"score": value, "cost": call.cost, "response": call.text}


def traffic_row(item: ItemRecord) -> tuple[dict[str, Any] | None, str]:
    """(the outcome row of one served request, or None and why not)."""
    feedback = item.feedback
    if feedback is None:
        return None, "without feedback"
    answers = first_answers(item)
    if not answers:
        return None, "with no expert answer"
    outcomes: dict[str, dict[str, Any]] = {}
    if feedback.reference is not None:
        probe = EvalItem(
            key=item.item_key,
            task=feedback.task or DEFAULT_TASK,
            prompt=item.query,
            reference=feedback.reference,
            kind=answer_kind(None, feedback.reference),
            question=item.query,
        )
        for model, call in answers.items():
            value, _ = score(probe, call.text)
            if value is not None:
                outcomes[model] = outcome_of(call, value)
    elif feedback.score is not None and item.answer is not None:
        returned = item.answer.strip()
        for model, call in answers.items():
            if call.text.strip() == returned:
                outcomes[model] = outcome_of(call, feedback.score)
    if not outcomes:
        return None, "whose answer no single model gave"
    row = {
        "id": item.item_key,
        "task": feedback.task or item.pipeline or DEFAULT_TASK,
        "query": item.query,
        "reference": feedback.reference,
        "outcomes": outcomes,
    }
    return row, ""
