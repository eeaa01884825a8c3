"""Test doubles and a pipeline builder shared by the aggregator tests.

Aggregators are run through `Pipeline` with `FixedRouter`, as production does, so the
trace (roles, call order, timings) is checked alongside the aggregate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from signoria.agents.backends.scripted import ScriptedBehaviour, ScriptedExpert
from signoria.agents.types import (
    Completion,
    Expert,
    ExpertError,
    GenerationParams,
    Message,
    ModelCard,
)
from signoria.orchestrator.aggregators.protocol import Aggregator
from signoria.orchestrator.aggregators.registry import AGGREGATORS
from signoria.orchestrator.limits import Limits
from signoria.orchestrator.pipeline import Pipeline
from signoria.routers.fixed import FixedRouter, FixedRouterParams
from signoria.routers.protocol import RoutingDecision


def card(name: str, context_length: int = 4096, price: float = 0.0) -> ModelCard:
    return ModelCard(
        name=name,
        backend="scripted",
        context_length=context_length,
        input_price=price,
        output_price=price,
    )


class Recorder(ScriptedExpert):
    """A scripted expert that keeps every prompt it was sent."""

    def __init__(
        self, name: str, context_length: int = 4096, price: float = 0.0, **behaviour: Any
    ) -> None:
        behaviour_ = ScriptedBehaviour.model_validate(behaviour)
        super().__init__(card(name, context_length, price), behaviour_)
        self.seen: list[list[Message]] = []

    async def generate(self, messages: list[Message], *, params: GenerationParams) -> Completion:
        self.seen.append(list(messages))
        return await super().generate(messages, params=params)

    def prompt(self, call: int = -1) -> str:
        return "\n".join(m.content for m in self.seen[call])


class Sequenced(Recorder):
    """Answers the i-th call with `answers[i]` (the last one once they run out)."""

    def __init__(self, name: str, answers: Sequence[str], **behaviour: Any) -> None:
        super().__init__(name, **behaviour)
        self.answers = list(answers)

    async def generate(self, messages: list[Message], *, params: GenerationParams) -> Completion:
        completion = await super().generate(messages, params=params)
        answer = self.answers[min(self.calls, len(self.answers)) - 1]
        return completion.model_copy(update={"text": answer})


class ContextBound(Recorder):
    """Refuses a prompt that, with max_tokens, overflows its card's context, as a real
    server does (non-retryable 400)."""

    async def generate(self, messages: list[Message], *, params: GenerationParams) -> Completion:
        needed = await self.count_tokens(messages) + params.max_tokens
        if needed > self.card.context_length:
            self.seen.append(list(messages))
            raise ExpertError(
                f"{self.card.name}: 400 context overflow ({needed} > {self.card.context_length})",
                retryable=False,
            )
        return await super().generate(messages, params=params)


class ScoredRouter(FixedRouter):
    """The fixed router plus per-expert scores, as a learned router would report them."""

    def __init__(self, experts: Sequence[str], scores: Mapping[str, float]) -> None:
        super().__init__(FixedRouterParams(experts=tuple(experts)))
        self.scores = dict(scores)

    async def route(
        self, query: str, pool: Mapping[str, Expert], *, budget_usd: float | None
    ) -> RoutingDecision:
        decision = await super().route(query, pool, budget_usd=budget_usd)
        return decision.model_copy(update={"scores": self.scores})


def build(name: str, **params: Any) -> Aggregator:
    """An aggregator as a config would build it: through the registry, by name."""
    return AGGREGATORS.build(name, AGGREGATORS.params_model(name).model_validate(params))


def pool(*experts: Expert) -> dict[str, Expert]:
    return {e.card.name: e for e in experts}


def pipeline(
    experts: Sequence[str],
    aggregator: Aggregator,
    *,
    samples: int = 1,
    router: FixedRouter | None = None,
    **limits: Any,
) -> Pipeline:
    return Pipeline(
        name="t",
        router=router or FixedRouter(FixedRouterParams(experts=tuple(experts), samples=samples)),
        aggregator=aggregator,
        limits=Limits.model_validate({"retry_backoff_s": 0.0, "retries": 0, **limits}),
    )
