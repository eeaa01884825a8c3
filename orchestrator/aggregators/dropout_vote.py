"""Dropout & Vote: vote over every leave-one-out subset, then vote over those results.

A defence against one deceptive agent: each subset leaves one agent out, so in one of
them the liar is gone; an answer that only wins with the liar's ballot loses most
subsets. With n agents there are n subsets, each a plain majority (the shared tally);
the final answer is the majority of the n subset winners, ties to the first seen.
`votes` counts the subsets each answer won; agents who disagree with the final answer
(or state none) are flagged as outliers, as are injection attempts.
"""

from __future__ import annotations

from collections.abc import Sequence

from agents.types import Completion
from orchestrator.aggregators._voting import (
    DefenceVote,
    Verdict,
    cast_ballots,
    dissenters,
    injected,
    merge_flags,
    tally,
)
from orchestrator.answers import AnswerKind


class DropoutVote(DefenceVote):
    name = "dropout-vote"

    @staticmethod
    def verdict(query: str, completions: Sequence[Completion], kind: AnswerKind) -> Verdict:
        ballots = cast_ballots(query, completions, kind)
        if len(ballots) <= 1:
            # No subset to leave anyone out of: a lone ballot is its own majority.
            subsets = dict(ballots)
        else:
            subsets = {
                left_out: tally({i: b for i, b in ballots.items() if i != left_out}).winner
                for left_out in ballots
            }
        # Count the subset winners in the order their answers were first given, so a tie
        # goes to the first answer in routing order, as in every other vote.
        first_seen = {b: i for i, b in reversed(ballots.items())}
        ranked = sorted(
            subsets.items(), key=lambda kv: (first_seen.get(kv[1], len(ballots)), kv[0])
        )
        final = tally(dict(enumerate(result for _, result in ranked)))
        winner = final.winner
        kept = () if winner is None else tuple(i for i, b in ballots.items() if b == winner)
        return Verdict(
            kept=kept,
            flagged=merge_flags(dissenters(ballots, winner), injected(completions)),
            votes=final.votes,
        )
