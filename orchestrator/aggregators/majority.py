"""Majority vote over extracted answers (numbers, MCQ letters, normalised text).

Ties go to the answer that appeared first in routing order, so the same completions give
the same result on every run. Answers that try to instruct the reader ("ignore previous
instructions") are flagged but keep their one ballot.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from signoria.agents.types import Completion
from signoria.orchestrator.aggregators._voting import cast_ballots, vote_verdict
from signoria.orchestrator.aggregators.protocol import AggregationContext
from signoria.orchestrator.answers import AnswerKind
from signoria.orchestrator.result import Aggregate


class MajorityParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    answer: AnswerKind = "auto"


class MajorityVote:
    def __init__(self, params: MajorityParams) -> None:
        self.params = params

    async def aggregate(
        self, query: str, completions: Sequence[Completion], ctx: AggregationContext
    ) -> Aggregate:
        ballots = cast_ballots(query, completions, self.params.answer)
        return vote_verdict(completions, ballots).aggregate("majority", completions)
