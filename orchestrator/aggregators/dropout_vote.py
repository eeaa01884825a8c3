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

from signoria.agents.types import Completion
from signoria.orchestrator.aggregators._voting import (
    Ballots,
    DefenceVote,
    Verdict,
    cast_ballots,
    dissenters,
    injected,
    merge_flags,
    tally,
)
from signoria.orchestrator.answers import AnswerKind


class DropoutVote(DefenceVote):
    name = "dropout-vote"

    @staticmethod
    def verdict(query: str, completions: Sequence[Completion], kind: AnswerKind) -> Verdict:
        ballots = cast_ballots(query, completions, kind)
        everyone = tally(ballots)
        if len(ballots) <= 1:
            # No subset to leave anyone out of: a lone ballot is its own majority.
            final = everyone
        else:
            subsets = {
                left_out: _clear_winner({i: b for i, b in ballots.items() if i != left_out})
                for left_out in ballots
            }
            final = tally(subsets)
            if final.winner is None or final.tied:
                # No subset majority is clear: fall back to the plain majority of all.
                final = everyone
        winner = final.winner
        kept = () if winner is None else tuple(i for i, b in ballots.items() if b == winner)
        return Verdict(
            kept=kept,
            flagged=merge_flags(dissenters(ballots, winner), injected(completions)),
            votes=final.votes,
        )


def _clear_winner(ballots: Ballots) -> str | None:
    """A subset's majority, or None when it is tied.

    Breaking a subset's tie by routing order would hand every tie to whoever sits first:
    a liar in the first seat would then win each subset it ties, and so the vote.
    """
    result = tally(ballots)
    return None if result.tied else result.winner
