"""Learned vote: ballots weighed by fitted per-expert, per-task accuracy, and by trust.

Weights (`vote_weights.py`) come from outcome data: each expert's accuracy on the task,
as log-odds against the query's chance level, sharpened so that a strong expert is
followed unless the others agree against it. That alone trusts a name, which is what a
liar in the strongest seat would exploit, so each known expert also carries a trust, the
probability that it is honest, kept as a bounded sequential likelihood-ratio test: on
every item where the Nitzan-Paroush (unsharpened, so no one seat dominates it) majority
of the *other* experts is clear, agreeing with it counts for honesty and disagreeing
against, each by how likely that is for an honest
expert (its agreement rate on the training rows) against a liar (who agrees only when
that majority is wrong and picked the same wrong option). A liar's ballot is always
wrong, so an expert trusted with probability t is right with probability t * accuracy,
and its weight is the log-odds of that: a few lies in a row bring a strong expert below
chance, while an honest one, whose disagreements are as rare as on the training rows,
stays at rest. The test is bounded at TRUST_CAP both ways, so a long honest record buys
only a few items of lying, and an exposed expert that turns honest earns trust back.

Unknown experts (not in the weights file) earn no trust, and an expert trusted less
than not is out of the vote: neither counts, not even to break a tie, unless no trusted
expert states an answer (then everyone's plain majority decides). A query's task is
the one whose prompt template it carries (or the configured `task`); otherwise the
pooled weights apply.

Trust lives in the aggregator instance (per configured pipeline and process), keyed by
expert name, like reputation-vote's record.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from signoria.agents.types import Completion
from signoria.orchestrator.aggregators._voting import (
    Ballots,
    Verdict,
    cast_ballots,
    dissenters,
    injected,
    merge_flags,
    tally,
)
from signoria.orchestrator.aggregators.protocol import AggregationContext
from signoria.orchestrator.aggregators.vote_weights import (
    TEST_SHARPNESS,
    TRUST_CAP,
    VoteWeights,
    VoteWeightsError,
    options_of,
    trust_evidence,
)
from signoria.orchestrator.answers import AnswerKind
from signoria.orchestrator.result import Aggregate

BOUND = math.log(TRUST_CAP / (1.0 - TRUST_CAP))  # the trust test's log-odds bound
# Items are not independent (hard questions split everyone at once), so each item's
# likelihood ratio is tempered: an honest expert must disagree on several items in a
# row to lose its vote, a liar that disagrees on almost every item still does within a
# handful.
STEP = 0.5


class LearnedVoteParams(BaseModel):
    """The fitted weights to vote with; `trust: false` switches the liar test off (the
    weights alone, e.g. to measure what the test adds)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    weights: Path = Field(description="vote-weights JSON from `signoria aggregator fit`")
    answer: AnswerKind | None = Field(default=None, description="default: as fitted")
    task: str | None = Field(default=None, description="default: recognised per query")
    trust: bool = True

    def model_refs(self) -> dict[str, str]:
        # The weights name models of an outcome table; one absent from the pool simply
        # casts no ballot, and one the weights do not know earns no trust.
        return {}


class LearnedVote:
    name = "learned-vote"

    def __init__(self, params: LearnedVoteParams) -> None:
        self.params = params
        self.weights = VoteWeights.load(params.weights.expanduser())
        if params.task is not None and params.task not in self.weights.tasks:
            known = ", ".join(self.weights.tasks)
            raise VoteWeightsError(f"{params.weights}: no task {params.task!r} (has: {known})")
        self.kind: AnswerKind = params.answer or self.weights.answer
        self.known = set(self.weights.experts)
        # Log-odds of honesty per expert name; absent means at rest (BOUND).
        self.honesty: dict[str, float] = {}

    def trust(self, expert: str) -> float:
        return 1.0 / (1.0 + math.exp(-self.honesty.get(expert, BOUND)))

    async def aggregate(
        self, query: str, completions: Sequence[Completion], ctx: AggregationContext
    ) -> Aggregate:
        ballots = cast_ballots(query, completions, self.kind)
        task = self.params.task or self.weights.task_of(query)
        k = options_of(query)
        names = {i: completions[i].expert for i in ballots}
        # Who votes: fitted experts, trusted more than not. The others (unknown, exposed)
        # weigh nothing, not even as tie-breakers, unless nobody else states an answer.
        voting = {n for n in names.values() if n in self.known and self.trust(n) > 0.5}
        missing = [m for m in self.weights.experts if m not in voting]
        sharpness = self.weights.sharpness(task, missing)
        weights = {
            i: self.weights.weight(task, names[i], k, self.trust(names[i]), sharpness)
            for i in ballots
        }
        counted = {i: b for i, b in ballots.items() if names[i] in voting and b is not None}
        # Nobody trusted states an answer: a plain majority of everyone.
        result = tally(counted, weights) if counted else tally(ballots)
        if self.params.trust:
            self._test(ballots, names, voting, task, k)
        verdict = Verdict(
            kept=tuple(i for i, b in ballots.items() if b is not None and b == result.winner),
            flagged=merge_flags(dissenters(ballots, result.winner), injected(completions)),
            votes=result.votes,
        )
        return verdict.aggregate(self.name, completions)

    def _test(
        self,
        ballots: Ballots,
        names: dict[int, str],
        voting: set[str],
        task: str,
        options: int,
    ) -> None:
        """One step of each known expert's trust test, against the others' unsharpened
        vote at their current trust."""
        test_weights = {
            i: self.weights.weight(task, names[i], options, self.trust(names[i]), TEST_SHARPNESS)
            for i in ballots
        }
        steps: dict[str, float] = {}
        for i, ballot in ballots.items():
            stats = self.weights.stats(task, names[i])
            if ballot is None or stats is None or names[i] in steps:
                continue
            # The others: the ballots of the other known experts at their current weights
            # (an exposed one weighs little but may earn trust back; an expert's own
            # samples would agree with it for free).
            others = {
                j: b for j, b in ballots.items() if names[j] != names[i] and names[j] in self.known
            }
            result = tally(others, {j: test_weights[j] for j in others})
            if result.winner is None or result.tied:
                continue
            missing = [m for m in self.weights.experts if m not in voting and m != names[i]]
            agreed = ballot == result.winner
            steps[names[i]] = STEP * trust_evidence(stats, options, agreed, missing)
        for name, step in steps.items():
            self.honesty[name] = max(-BOUND, min(BOUND, self.honesty.get(name, BOUND) + step))
