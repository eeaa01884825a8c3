"""Self-consistency that stops sampling once the answers agree (adaptive consistency).

A fixed-k vote pays for k samples on every query, although most queries are settled by the
first two: when a greedy answer and one sampled answer state the same number or letter,
more samples rarely change the majority (Aggarwal et al. 2023, "Let's Sample Step by Step:
Adaptive-Consistency"; Li et al. 2024, early-stopping self-consistency). So the router asks
once (usually greedily) and this aggregator asks the same expert for further samples, one
at a time, through the request's own call runner (budget, deadline, retries, breakers,
trace: each sample is a recorded expert call), until `agree` answers agree or
`max_samples` have been drawn. The answer is the plurality, ties to the first answer (the
greedy one), so the vote only ever overrides the first answer by a majority.

A sample that fails (budget refused, timeout) ends the sampling: the vote is taken over
what exists, and the trace's `error` says why it stopped early.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

from signoria.agents.types import Completion, GenerationParams
from signoria.orchestrator.aggregators._voting import Ballots, cast_ballots, tally, vote_verdict
from signoria.orchestrator.aggregators.protocol import (
    AggregationContext,
    answered,
    nothing_to_aggregate,
)
from signoria.orchestrator.answers import AnswerKind
from signoria.orchestrator.result import Aggregate

NAME = "adaptive-vote"


class AdaptiveVoteParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    agree: int = Field(default=2, ge=2, description="stop once this many answers agree")
    max_samples: int = Field(
        default=4, ge=2, description="most completions per query, the router's included"
    )
    temperature: float = Field(default=0.7, gt=0.0, le=2.0, description="of the extra samples")
    seed: int = Field(default=1, ge=0, le=2**31 - 1, description="seed of the first extra sample")
    expert: str | None = Field(
        default=None, description="expert to sample; default: the first one that answered"
    )
    answer: AnswerKind = "auto"

    @model_validator(mode="after")
    def _reachable(self) -> AdaptiveVoteParams:
        if self.agree > self.max_samples:
            raise ValueError(f"agree ({self.agree}) cannot exceed max_samples ({self.max_samples})")
        return self

    def model_refs(self) -> dict[str, str]:
        return {} if self.expert is None else {"expert": self.expert}


def settled(ballots: Ballots, agree: int) -> bool:
    """Whether the leading answer has `agree` votes and leads outright."""
    result = tally(ballots)
    if result.winner is None:
        return False
    return result.votes[result.winner] >= agree and not result.tied


class AdaptiveVote:
    def __init__(self, params: AdaptiveVoteParams) -> None:
        self.params = params

    async def aggregate(
        self, query: str, completions: Sequence[Completion], ctx: AggregationContext
    ) -> Aggregate:
        got = list(completions)
        ok = answered(got)
        if not ok:
            return nothing_to_aggregate(NAME, got)
        expert = self.params.expert or got[ok[0]].expert
        kind = self.params.answer
        stopped: str | None = None
        drawn = 0
        while len(got) < self.params.max_samples and not settled(
            cast_ballots(query, got, kind), self.params.agree
        ):
            sample = await self._sample(expert, drawn, len(got), ctx)
            got.append(sample)
            drawn += 1
            if not sample.ok:
                stopped = f"sampling stopped at extra sample {drawn}: {sample.error}"
                break
        aggregate = vote_verdict(got, cast_ballots(query, got, kind)).aggregate(NAME, got)
        note = "; ".join(n for n in (aggregate.error, stopped) if n) or None
        return aggregate.model_copy(update={"rounds": 1 + drawn, "error": note})

    async def _sample(
        self, expert: str, drawn: int, slot: int, ctx: AggregationContext
    ) -> Completion:
        params = GenerationParams(
            max_tokens=ctx.max_tokens,
            temperature=self.params.temperature,
            seed=self.params.seed + drawn,
        )
        return await ctx.ask_expert(expert, params, slot, who=NAME)
