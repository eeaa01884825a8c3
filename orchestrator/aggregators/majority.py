"""Majority vote over extracted answers (numbers, MCQ letters, normalised text).

Ties go to the answer that appeared first in routing order, so the same completions give
the same result on every run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from agents.types import Completion
from orchestrator.aggregators.protocol import AggregationContext, answered, nothing_to_aggregate
from orchestrator.answers import AnswerKind, extract_answer
from orchestrator.result import Aggregate


class MajorityParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    answer: AnswerKind = "auto"


class MajorityVote:
    def __init__(self, params: MajorityParams) -> None:
        self.params = params

    async def aggregate(
        self, query: str, completions: Sequence[Completion], ctx: AggregationContext
    ) -> Aggregate:
        extracted = {
            i: extract_answer(completions[i].text, self.params.answer, query)
            for i in answered(completions)
        }
        votes = Counter(a for a in extracted.values() if a is not None)
        if not votes:
            return nothing_to_aggregate("majority", completions)
        first_seen = {a: i for i, a in reversed(extracted.items()) if a is not None}
        winner = max(votes, key=lambda a: (votes[a], -first_seen[a]))
        chosen = tuple(i for i, a in extracted.items() if a == winner)
        return Aggregate(
            aggregator="majority",
            text=completions[chosen[0]].text,
            chosen=chosen,
            discarded=tuple(i for i in range(len(completions)) if i not in chosen),
            votes=dict(votes),
        )
