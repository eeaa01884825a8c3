"""A guard: a deception defence in front of any other aggregator.

Defences and aggregators compose instead of multiplying (no "cluster-filter-then-MoA"
class): the guard runs a defence's verdict over the completions, blanks the ones it
drops (same positions, empty text and an error, so index i still means routing slot i)
and hands the rest to the inner aggregator, built by name through the registry like any
configured aggregator:

    aggregator:
      name: guard
      defence: cluster-filter
      inner: {name: synthesize, model: qwen2.5-coder-1.5b}

The result is the inner aggregate, with the guard's drops added to `discarded` and its
flags to `flagged`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from signoria.agents.types import Completion
from signoria.orchestrator.aggregators._voting import DefenceParams, DefenceVote, merge_flags
from signoria.orchestrator.aggregators.agreement_vote import AgreementVote
from signoria.orchestrator.aggregators.cluster_filter import ClusterFilter
from signoria.orchestrator.aggregators.dropout_vote import DropoutVote
from signoria.orchestrator.aggregators.protocol import AggregationContext, Aggregator, answered
from signoria.orchestrator.aggregators.registry import AGGREGATORS
from signoria.orchestrator.aggregators.reputation_vote import ReputationVote
from signoria.orchestrator.answers import AnswerKind
from signoria.orchestrator.result import Aggregate
from signoria.registry import StrategyConfigError, StrategySpec, model_refs, parse_strategy

DEFENCES: dict[str, type[DefenceVote]] = {
    d.name: d for d in (ClusterFilter, DropoutVote, AgreementVote, ReputationVote)
}
Defence = Literal["cluster-filter", "dropout-vote", "agreement-vote", "reputation-vote"]


class GuardParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    defence: Defence = "cluster-filter"
    answer: AnswerKind = Field(default="auto", description="how the defence compares answers")
    inner: StrategySpec = Field(description="{name: <aggregator>, ...its params}")

    @field_validator("inner", mode="before")
    @classmethod
    def _validate_inner(cls, raw: Any) -> StrategySpec:
        # The same parser as a config's aggregator section, so errors read the same.
        try:
            return parse_strategy(raw, AGGREGATORS)
        except StrategyConfigError as exc:
            # Inside the inner aggregator's params, say whose params: `synthesize.model`.
            inner = raw.get("name") if isinstance(raw, dict) and exc.where != "name" else None
            raise ValueError(f"{inner}.{exc}" if inner else str(exc)) from None

    def model_refs(self) -> dict[str, str]:
        return {f"inner.{key}": m for key, m in model_refs(self.inner.params).items()}


class Guard:
    def __init__(self, params: GuardParams) -> None:
        self.params = params
        # An instance per guard: a defence may learn from history (reputation-vote).
        self.defence = DEFENCES[params.defence](DefenceParams(answer=params.answer))
        inner = params.inner
        self.inner: Aggregator = AGGREGATORS.build(inner.name, inner.params)

    async def aggregate(
        self, query: str, completions: Sequence[Completion], ctx: AggregationContext
    ) -> Aggregate:
        name = f"guard({self.params.defence})>{self.params.inner.name}"[:64]
        verdict = self.defence.verdict(query, completions, self.params.answer)
        # No verdict (nothing extractable to defend on): pass everything through.
        dropped = set(answered(completions)) - set(verdict.kept) if verdict.kept else set()
        filtered = [
            c.model_copy(update={"text": "", "error": f"dropped by {self.params.defence}"})
            if i in dropped
            else c
            for i, c in enumerate(completions)
        ]
        inner = await self.inner.aggregate(query, filtered, ctx)
        discarded = sorted((set(inner.discarded) | dropped) - set(inner.chosen))
        errors = [e for e in (verdict.note, inner.error) if e]
        return inner.model_copy(
            update={
                "aggregator": name,
                "discarded": tuple(discarded),
                "flagged": merge_flags(verdict.flagged, inner.flagged),
                "error": "; ".join(errors) or None,
            }
        )
