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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agents.errors import UnknownNameError
from agents.plugins import model_refs
from agents.types import Completion
from orchestrator.aggregators._voting import DefenceParams, DefenceVote, merge_flags
from orchestrator.aggregators.agreement_vote import AgreementVote
from orchestrator.aggregators.cluster_filter import ClusterFilter
from orchestrator.aggregators.dropout_vote import DropoutVote
from orchestrator.aggregators.protocol import AggregationContext, Aggregator, answered
from orchestrator.aggregators.reputation_vote import ReputationVote
from orchestrator.answers import AnswerKind
from orchestrator.result import Aggregate

DEFENCES: dict[str, type[DefenceVote]] = {
    d.name: d for d in (ClusterFilter, DropoutVote, AgreementVote, ReputationVote)
}
Defence = Literal["cluster-filter", "dropout-vote", "agreement-vote", "reputation-vote"]


class InnerAggregator(BaseModel):
    """A configured aggregator inside another: its registry name and validated params."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    params: BaseModel


class GuardParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    defence: Defence = "cluster-filter"
    answer: AnswerKind = Field(default="auto", description="how the defence compares answers")
    inner: InnerAggregator = Field(description="{name: <aggregator>, ...its params}")

    @field_validator("inner", mode="before")
    @classmethod
    def _validate_inner(cls, raw: Any) -> Any:
        if isinstance(raw, InnerAggregator):
            return raw
        if isinstance(raw, str):
            raw = {"name": raw}
        if not isinstance(raw, dict) or "name" not in raw:
            raise ValueError("needs a name: {name: <aggregator>, ...its params}")
        # Imported here: the registry imports this module.
        from orchestrator.aggregators.registry import AGGREGATORS

        name = str(raw["name"])
        try:
            strategy = AGGREGATORS[name]
            params = strategy.params.model_validate({k: v for k, v in raw.items() if k != "name"})
        except UnknownNameError as exc:
            raise ValueError(str(exc)) from None
        except ValidationError as exc:
            # One line, naming the inner key, like every other config error.
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"]) or "<params>"
            raise ValueError(f"{name}.{loc}: {err['msg']}") from None
        return InnerAggregator(name=name, params=params)

    def model_refs(self) -> dict[str, str]:
        return {f"inner.{key}": m for key, m in model_refs(self.inner.params).items()}


class Guard:
    def __init__(self, params: GuardParams) -> None:
        from orchestrator.aggregators.registry import AGGREGATORS

        self.params = params
        # An instance per guard: a defence may learn from history (reputation-vote).
        self.defence = DEFENCES[params.defence](DefenceParams(answer=params.answer))
        self.inner: Aggregator = AGGREGATORS[params.inner.name].build(params.inner.params)

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
