"""What a cascade's scorer sees after a stage: the answers so far and how much they agree.

The signal is the pool's own answers (letters, numbers, normalised text, extracted as the
voting aggregators and the scorers extract them), not the query alone: two cheap models
that agree are right far more often than either alone, and a disagreement is the cheapest
warning there is. The vote among the answers so far is weighted by each model's log-odds
of being right on that kind of question (Nitzan & Paroush), learned on training rows.

The features are a fixed-length vector per stage: the answer kind (one-hot), the winning
answer's weight share, the number of distinct answers, whether all agree, and per model
called so far whether it sided with the winner (+1), against it (-1) or gave no answer
(0), and the log length of its answer (long hedging answers are a weak signal of doubt).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from signoria.orchestrator.answers import AnswerKind, extract_answer, infer_kind

KINDS: tuple[AnswerKind, ...] = ("letter", "number", "text")
# A weight for a model no better than chance: small but positive, so it still breaks ties.
FLOOR = 0.01


def answer_kind(query: str) -> AnswerKind:
    """The kind of answer the query asks for; known live as well as offline."""
    kind = infer_kind(query)
    return "text" if kind == "auto" else kind


@dataclass(frozen=True)
class Answer:
    """One model's answer to the query: its text and the comparable value in it."""

    model: str
    text: str
    value: str | None

    @classmethod
    def of(cls, model: str, text: str, kind: AnswerKind, query: str) -> Answer:
        return cls(model=model, text=text, value=extract_answer(text, kind, query))


@dataclass(frozen=True)
class Vote:
    winner: str | None
    share: float
    distinct: int
    # Index (into the answers) of the first answer stating the winner.
    first: int | None


def log_odds(accuracy: float) -> float:
    accuracy = min(max(accuracy, 1e-6), 1 - 1e-6)
    return max(FLOOR, math.log(accuracy / (1.0 - accuracy)))


def weighted_vote(answers: Sequence[Answer], weights: Mapping[str, float]) -> Vote:
    """Weighted count of the stated answers; ties to the first seen (chain order)."""
    tally: dict[str, float] = {}
    for answer in answers:
        if answer.value is not None:
            tally[answer.value] = tally.get(answer.value, 0.0) + weights.get(answer.model, FLOOR)
    if not tally:
        return Vote(winner=None, share=0.0, distinct=0, first=None)
    winner = max(tally, key=lambda value: tally[value])
    first = next(i for i, a in enumerate(answers) if a.value == winner)
    return Vote(
        winner=winner, share=tally[winner] / sum(tally.values()), distinct=len(tally), first=first
    )


def stage_features(
    answers: Sequence[Answer], kind: AnswerKind, weights: Mapping[str, float]
) -> tuple[np.ndarray, Vote]:
    """The scorer's input after a stage (answers in chain order) and the vote it is about."""
    vote = weighted_vote(answers, weights)
    head = [1.0 if kind == k else 0.0 for k in KINDS]
    head += [vote.share, float(vote.distinct), float(vote.distinct == 1)]
    per_model: list[float] = []
    for answer in answers:
        side = 0.0 if answer.value is None else (1.0 if answer.value == vote.winner else -1.0)
        per_model += [side, math.log1p(len(answer.text)) / 8.0]
    return np.array(head + per_model), vote
