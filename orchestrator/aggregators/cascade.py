"""The live answer-aware cascade: stop when the answers so far are good enough, else ask
the next stage.

It is an aggregator because that is where a request's answers are read: the router asks
the chain's first stage (a `fixed` router naming exactly those experts), and after each
stage this aggregator runs the trained cascade's scorer on the answers so far; when the
scorer escalates, it asks the next stage through the request's own call runner (same
budget, deadline, retries, breakers and trace, recorded as expert calls), and stops
calling experts as soon as it accepts. The trace's `aggregation.steps` shows each stage's
score, the gain it expected from going on, and the decision.

With `budget_usd`, a pacer (`cascade.pacing`) holds the pipeline's mean spend per query at
that budget by moving the knob after every request; each step shows the knob it used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from signoria.agents.types import Completion, GenerationParams
from signoria.orchestrator.aggregators.protocol import (
    AggregationContext,
    answered,
    nothing_to_aggregate,
)
from signoria.orchestrator.answers import AnswerKind
from signoria.orchestrator.cascade.features import Answer, answer_kind
from signoria.orchestrator.cascade.pacing import Pacer
from signoria.orchestrator.cascade.policy import AnswerCascade
from signoria.orchestrator.result import Aggregate, CascadeStep
from signoria.routers.data import RoutingDataError

NAME = "cascade"


class CascadeParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    file: Path = Field(description="cascade file written by `signoria route cascade train`")
    value_usd: float | None = Field(
        default=None, ge=0.0, description="override the trained knob: worth of a right answer"
    )
    answer: AnswerKind = "auto"
    budget_usd: float | None = Field(
        default=None, gt=0.0, description="mean USD per query to hold; the knob moves to hold it"
    )
    pace_rate: float = Field(
        default=0.05, gt=0.0, le=1.0, description="how far one request moves the knob"
    )

    def model_refs(self) -> dict[str, str]:
        """The chain's models, so that the config check names one the pool lacks."""
        try:
            chain = AnswerCascade.load(self.file).settings.chain
        except (RoutingDataError, OSError):
            return {}  # reported, with its cause, when the cascade is built
        return {f"file.chain[{i}][{j}]": m for i, s in enumerate(chain) for j, m in enumerate(s)}


class AnswerAwareCascade:
    def __init__(self, params: CascadeParams) -> None:
        self.params = params
        policy = AnswerCascade.load(params.file)
        self.policy = policy if params.value_usd is None else policy.with_value(params.value_usd)
        self.pacer = (
            None
            if params.budget_usd is None
            else Pacer(params.budget_usd, self.policy.settings.value_usd, params.pace_rate)
        )

    async def aggregate(
        self, query: str, completions: Sequence[Completion], ctx: AggregationContext
    ) -> Aggregate:
        chain = self.policy.settings.chain
        asked = tuple(c.expert for c in completions)
        if asked != chain[0]:
            return Aggregate(
                aggregator=NAME,
                text="",
                error=f"the router must ask the cascade's first stage {list(chain[0])}, "
                f"it asked {list(asked)}",
            )
        kind = answer_kind(query) if self.params.answer == "auto" else self.params.answer
        got = list(completions)
        steps: list[CascadeStep] = []
        prior = self.policy.query_priors([query])[0]
        stage: int | None = 0
        while stage is not None:
            if stage > 0:
                got += await self._ask(chain[stage], len(got), ctx)
            value = None if self.pacer is None else self.pacer.value_usd
            step = self.policy.step(stage, self._answers(got, kind, query), kind, prior, value)
            steps.append(step)
            stage = step.next_stage
        if self.pacer is not None:
            self.pacer.spent(self._spend(got, kind, [s.stage for s in steps]))
        index = self.policy.chosen(self._answers(got, kind, query), kind, len(steps) - 1)
        if not (got[index].ok and got[index].text.strip()):
            # The chosen stage failed (budget, timeout): the first answer that exists.
            ok = answered(got)
            if not ok:
                return nothing_to_aggregate(NAME, got).model_copy(update={"steps": tuple(steps)})
            index = ok[0]
        return Aggregate(
            aggregator=NAME,
            text=got[index].text,
            chosen=(index,),
            discarded=tuple(i for i in range(len(got)) if i != index),
            rounds=len(steps),
            steps=tuple(steps),
            finish_reason=got[index].finish_reason,
        )

    def _spend(self, got: Sequence[Completion], kind: AnswerKind, stages: list[int]) -> float:
        """What this request's calls cost: their reported USD, or, when a price is unknown,
        the stages' mean training cost (the figure the knob was trained against)."""
        costs = [c.cost for c in got]
        if all(c is not None for c in costs):
            return float(sum(c for c in costs if c is not None))
        return self.policy.expected_spend(kind, stages)

    @staticmethod
    def _answers(got: Sequence[Completion], kind: AnswerKind, query: str) -> list[Answer]:
        return [Answer.of(c.expert, c.text if c.ok else "", kind, query) for c in got]

    async def _ask(
        self, models: Sequence[str], first_slot: int, ctx: AggregationContext
    ) -> list[Completion]:
        params = GenerationParams(max_tokens=ctx.max_tokens, temperature=0.0)
        calls = (
            ctx.ask_expert(model, params, first_slot + i, who="the cascade")
            for i, model in enumerate(models)
        )
        return list(await asyncio.gather(*calls))
