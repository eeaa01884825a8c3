"""A served or evaluated Router-R1 episode, scored from its record as training scores it.

The record keeps the policy's turns (`aggregations.turns`), the item's score and the
calls' cost; the paper's reward follows from them: the format term from the turns (every
turn well formed, the last one an answer; a re-asked malformed turn spoils it, as it
would have scored -1 in training), the outcome from the score, the cost on a frozen
scale. So a policy is evaluated through the product path on the terms it was trained on.
"""

from __future__ import annotations

from collections.abc import Sequence

from signoria.orchestrator.result import PolicyTurn
from signoria.orchestrator.router_r1.reward import CostScale, reward
from signoria.orchestrator.storage.records import ItemRecord


def well_formed(turns: Sequence[PolicyTurn]) -> bool:
    return (
        bool(turns)
        and turns[-1].action == "answer"
        and all(t.action in ("route", "answer") for t in turns)
    )


def policy_turns(item: ItemRecord) -> tuple[PolicyTurn, ...]:
    return next((a.turns for a in item.aggregations if a.turns), ())


def episode_reward(item: ItemRecord, scale: CostScale, cost_weight: float) -> float:
    right = bool(item.scores) and item.scores[0].value >= 0.5
    return reward(
        format_ok=well_formed(policy_turns(item)),
        correct=right,
        cost_reward=scale(item.cost),
        cost_weight=cost_weight,
    )
