"""Reputation vote: each expert's ballot weighs by how often its peers have agreed with it.

One item's ballots cannot tell a liar from an honest expert: any rule that is symmetric
in the experts is a function of the vote counts (majority), and any asymmetric one (seat
order, configured strength) is exactly what a liar in the trusted seat exploits. What
does tell them apart is history: a deceptive expert keeps disagreeing with the others.
So the aggregator remembers, per expert name, how often its answer matched the majority
of the *other* experts on past items (its own ballot never counts for itself), and
weighs ballots by the log-odds of that agreement rate (the optimal weight of independent
voters, Nitzan & Paroush 1982), with a Laplace prior. A new expert starts at the prior,
so a first request is a plain majority; an expert that agrees no more than chance weighs
almost nothing. Ties still go to the first-seen answer.

The memory lives in the aggregator instance (one per configured pipeline, i.e. per
server process); it is bounded by the number of distinct experts. Known weakness: a
"sleeper" that answers honestly for a long time earns a reputation it can later spend.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import Field

from signoria.agents.types import Completion
from signoria.orchestrator.aggregators._voting import (
    Ballots,
    DefenceParams,
    DefenceVote,
    Verdict,
    cast_ballots,
    dissenters,
    injected,
    merge_flags,
    tally,
)
from signoria.orchestrator.answers import AnswerKind

# Weight of an expert with no usable history, or no better than chance: small but not
# zero, so that a vote among unknown experts is still a plain majority.
FLOOR = 0.05


class ReputationParams(DefenceParams):
    prior: float = Field(
        default=1.0, gt=0.0, description="Laplace pseudo-counts of agreement and disagreement"
    )


@dataclass
class Record:
    agreed: float = 0.0
    seen: float = 0.0


class ReputationVote(DefenceVote):
    name = "reputation-vote"

    def __init__(self, params: DefenceParams) -> None:
        super().__init__(params)
        self.prior = params.prior if isinstance(params, ReputationParams) else 1.0
        self.records: dict[str, Record] = {}

    def weight(self, expert: str) -> float:
        record = self.records.get(expert, Record())
        rate = (record.agreed + self.prior) / (record.seen + 2 * self.prior)
        return max(FLOOR, math.log(rate / (1.0 - rate)))

    def verdict(self, query: str, completions: Sequence[Completion], kind: AnswerKind) -> Verdict:
        ballots = cast_ballots(query, completions, kind)
        weights = {i: self.weight(completions[i].expert) for i in ballots}
        result = tally(ballots, weights)
        self._remember(ballots, completions)
        return Verdict(
            kept=result.supporters,
            flagged=merge_flags(dissenters(ballots, result.winner), injected(completions)),
            votes=result.votes,
        )

    def _remember(self, ballots: Ballots, completions: Sequence[Completion]) -> None:
        """Score each ballot against the plain majority of the others, when there is one."""
        for i, ballot in ballots.items():
            others = tally({j: b for j, b in ballots.items() if j != i})
            if ballot is None or others.winner is None or others.tied:
                continue
            record = self.records.setdefault(completions[i].expert, Record())
            record.seen += 1
            record.agreed += ballot == others.winner
