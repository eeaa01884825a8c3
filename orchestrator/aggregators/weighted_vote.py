"""Weighted vote: each ballot counts by the strength of the model that cast it.

A model's weight comes from the config (`weights`, e.g. its validation accuracy) and,
with `use_router_scores`, is multiplied by the router's per-query score for it, so a
learned router's confidence carries into the vote. Everything else (extraction, ties to
the first-seen answer, flags for injection attempts) is the shared majority count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from signoria.agents.types import Completion
from signoria.orchestrator.aggregators._voting import cast_ballots, vote_verdict
from signoria.orchestrator.aggregators.protocol import AggregationContext
from signoria.orchestrator.answers import AnswerKind
from signoria.orchestrator.result import Aggregate


class WeightedVoteParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    answer: AnswerKind = "auto"
    weights: dict[str, Annotated[float, Field(ge=0.0)]] = Field(
        default_factory=dict, description="model -> strength; unlisted models weigh 1"
    )
    default_weight: float = Field(default=1.0, ge=0.0)
    use_router_scores: bool = Field(
        default=False, description="multiply by routing.scores[model] (1 when absent)"
    )

    def model_refs(self) -> dict[str, str]:
        return {f"weights.{name}": name for name in self.weights}


class WeightedVote:
    def __init__(self, params: WeightedVoteParams) -> None:
        self.params = params

    def weight(self, model: str, ctx: AggregationContext) -> float:
        weight = self.params.weights.get(model, self.params.default_weight)
        if self.params.use_router_scores and ctx.routing is not None:
            # A score below 0 (a logit, say) must not turn a ballot against its answer.
            weight *= max(0.0, ctx.routing.scores.get(model, 1.0))
        return weight

    async def aggregate(
        self, query: str, completions: Sequence[Completion], ctx: AggregationContext
    ) -> Aggregate:
        ballots = cast_ballots(query, completions, self.params.answer)
        # The model that wrote the text casts the ballot (a fallback answers for its slot).
        weights = {i: self.weight(completions[i].expert, ctx) for i in ballots}
        verdict = vote_verdict(completions, ballots, weights)
        return verdict.aggregate("weighted-vote", completions)
