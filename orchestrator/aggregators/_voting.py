"""Vote counting shared by every voting aggregator and defence.

There is one `tally`: majority is a tally with every weight 1, weighted-vote one with
model weights, agreement-vote one with agreement weights, dropout-vote a tally of tallies.
Each produces a `Verdict`, and `Verdict.aggregate` is the one place that turns a verdict
into an `Aggregate`, so chosen/discarded/flagged mean the same thing in all of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from signoria.agents.types import Completion
from signoria.orchestrator.aggregators.protocol import (
    AggregationContext,
    answered,
    nothing_to_aggregate,
)
from signoria.orchestrator.answers import AnswerKind, extract_answer, looks_injected
from signoria.orchestrator.result import Aggregate

# Completion index -> its extracted answer (None: it answered, but states no answer).
Ballots = dict[int, str | None]


def cast_ballots(query: str, completions: Sequence[Completion], kind: AnswerKind) -> Ballots:
    """One ballot per completion that answered, in routing order."""
    return {i: extract_answer(completions[i].text, kind, query) for i in answered(completions)}


def injected(completions: Sequence[Completion]) -> tuple[int, ...]:
    """Answered completions that try to instruct whoever reads them: flagged, never dropped
    for it, so an injection attempt still counts as exactly one ballot."""
    return tuple(i for i in answered(completions) if looks_injected(completions[i].text))


@dataclass(frozen=True)
class Tally:
    winner: str | None
    votes: dict[str, float]
    # Indices whose ballot is the winner, in routing order.
    supporters: tuple[int, ...]

    @property
    def tied(self) -> bool:
        """Whether the winner won only by being seen first."""
        top = sorted(self.votes.values(), reverse=True)
        return len(top) > 1 and top[0] == top[1]


def tally(ballots: Mapping[int, str | None], weights: Mapping[int, float] | None = None) -> Tally:
    """Weighted count of the ballots (weight 1 when not given); None ballots do not count.

    Ties go to the answer first seen in routing order (the lowest index), so the same
    ballots give the same winner on every run.
    """
    votes: dict[str, float] = {}
    for i, answer in sorted(ballots.items()):
        if answer is not None:
            votes[answer] = votes.get(answer, 0.0) + (1.0 if weights is None else weights[i])
    if not votes:
        return Tally(winner=None, votes={}, supporters=())
    # dicts keep insertion order, i.e. first-seen order: max() keeps the first of equals.
    winner = max(votes, key=lambda a: votes[a])
    supporters = tuple(i for i, a in sorted(ballots.items()) if a == winner)
    return Tally(winner=winner, votes=votes, supporters=supporters)


@dataclass(frozen=True)
class Verdict:
    """What a vote or a defence decided about the completions.

    `kept` carry the result (the winner's supporters, the larger cluster); `flagged` are
    judged deceptive or outliers (including injection attempts); the answer is the text of
    the first kept completion that is not an injection attempt.
    """

    kept: tuple[int, ...]
    flagged: tuple[int, ...] = ()
    votes: dict[str, float] = field(default_factory=dict)
    note: str | None = None
    # Overrides the first-kept rule, e.g. the member nearest a cluster's centre.
    representative: int | None = None

    def answer_index(self, completions: Sequence[Completion]) -> int | None:
        if self.representative is not None:
            return self.representative
        clean = [i for i in self.kept if not looks_injected(completions[i].text)]
        candidates = clean or list(self.kept)
        return candidates[0] if candidates else None

    def aggregate(self, name: str, completions: Sequence[Completion]) -> Aggregate:
        index = self.answer_index(completions)
        note = self.note
        if index is None and not self.votes and not self.flagged:
            # Replies came back but none held an answer to count (e.g. cut at 1 token):
            # nothing was voted down, so the first clean reply is the answer, said so,
            # rather than a 503 for a request every expert answered.
            unvoted = [i for i in answered(completions) if not looks_injected(completions[i].text)]
            index = unvoted[0] if unvoted else None
            note = "no reply held an answer to vote on; the first reply is returned unvoted"
        if index is None:
            return nothing_to_aggregate(name, completions)
        return Aggregate(
            aggregator=name,
            text=completions[index].text,
            chosen=self.kept,
            discarded=tuple(i for i in range(len(completions)) if i not in self.kept),
            votes=dict(self.votes),
            flagged=self.flagged,
            error=note,
            finish_reason=completions[index].finish_reason,
        )


def vote_verdict(
    completions: Sequence[Completion],
    ballots: Ballots,
    weights: Mapping[int, float] | None = None,
) -> Verdict:
    """A plain (weighted) vote: the winner's supporters are kept; injections are flagged."""
    result = tally(ballots, weights)
    return Verdict(kept=result.supporters, flagged=injected(completions), votes=result.votes)


def merge_flags(*groups: Sequence[int]) -> tuple[int, ...]:
    return tuple(sorted({i for group in groups for i in group}))


class DefenceParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    answer: AnswerKind = "auto"


class DefenceVote:
    """A deception defence used on its own: its verdict is the answer.

    Subclasses give the `name` and the `verdict` (pure, except for a defence that learns
    from history); the guard aggregator uses the same `verdict` to filter the completions
    of another aggregator.
    """

    name: ClassVar[str]

    def __init__(self, params: DefenceParams) -> None:
        self.params = params

    def verdict(self, query: str, completions: Sequence[Completion], kind: AnswerKind) -> Verdict:
        raise NotImplementedError

    async def aggregate(
        self, query: str, completions: Sequence[Completion], ctx: AggregationContext
    ) -> Aggregate:
        verdict = self.verdict(query, completions, self.params.answer)
        return verdict.aggregate(self.name, completions)


def dissenters(ballots: Ballots, winner: str | None) -> tuple[int, ...]:
    """Answered completions whose ballot is not the winner (no answer included): the
    outliers a robust vote flags."""
    return () if winner is None else tuple(i for i, b in ballots.items() if b != winner)
