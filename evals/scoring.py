"""Scoring an answer against a reference, with the same extraction voting uses."""

from __future__ import annotations

from signoria.evals.datasets import EvalItem
from signoria.orchestrator.answers import extract_answer, same_answer


def score(item: EvalItem, text: str) -> tuple[float | None, str | None]:
    """(score in [0, 1] or None when there is no reference, extracted answer)."""
    extracted = extract_answer(text, item.kind, item.question)
    if item.reference is None:
        return None, extracted
    if extracted is None:
        return 0.0, None
    return float(same_answer(extracted, item.reference, item.kind)), extracted
