"""Agreement vote: each answer weighs as many ballots as there are others agreeing with it.

A lone answer, however confident or persuasive its wording, weighs nothing, so one
deceptive agent cannot win a vote unless someone else independently says the same; a
consensus of m agents weighs m*(m-1). Counting is the shared tally with those weights,
ties to the first-seen answer. When some answers agree, the ones nobody agrees with are
flagged as outliers (with injection attempts).
"""

from __future__ import annotations

from collections.abc import Sequence

from signoria.agents.types import Completion
from signoria.orchestrator.aggregators._voting import (
    DefenceVote,
    Verdict,
    cast_ballots,
    injected,
    merge_flags,
    tally,
)
from signoria.orchestrator.answers import AnswerKind


class AgreementVote(DefenceVote):
    name = "agreement-vote"

    @staticmethod
    def verdict(query: str, completions: Sequence[Completion], kind: AnswerKind) -> Verdict:
        ballots = cast_ballots(query, completions, kind)
        support = {
            i: sum(1 for j, other in ballots.items() if j != i and b is not None and other == b)
            for i, b in ballots.items()
        }
        result = tally(ballots, support)
        consensus = any(support.values())
        loners = tuple(i for i, s in support.items() if consensus and s == 0)
        return Verdict(
            kept=result.supporters,
            flagged=merge_flags(loners, injected(completions)),
            votes=result.votes,
        )
