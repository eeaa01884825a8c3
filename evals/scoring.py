"""Scoring an answer against a reference, with the same extraction voting uses."""

from __future__ import annotations

import math

from signoria.evals.datasets import EvalItem
from signoria.orchestrator.answers import extract_answer, normalise_text


def _same_number(a: str, b: str) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-9)
    except ValueError:
        return False


def score(item: EvalItem, text: str) -> tuple[float | None, str | None]:
    """(score in [0, 1] or None when there is no reference, extracted answer)."""
    extracted = extract_answer(text, item.kind, item.question)
    if item.reference is None:
        return None, extracted
    if extracted is None:
        return 0.0, None
    if item.kind == "number":
        return float(_same_number(extracted, item.reference)), extracted
    if item.kind == "letter":
        return float(extracted == item.reference.strip().upper()), extracted
    return float(extracted == normalise_text(item.reference)), extracted
