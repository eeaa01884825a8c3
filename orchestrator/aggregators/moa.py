"""Mixture-of-Agents (Wang et al. 2024): layers of proposers, then one aggregator.

The router's completions are layer 1. Each extra layer's proposers answer the same
conversation with the previous layer's answers quoted, numbered, in their system prompt
(MoA's "synthesize... critically evaluate, some may be biased or incorrect"); a layer's
proposers run concurrently, so a layer costs its slowest proposer, not their sum. The
final aggregator synthesizes the last layer the same way.

Self-MoA is the same shape with one model everywhere (the router samples it k times).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from signoria.agents.types import Completion
from signoria.orchestrator.aggregators._shared import (
    call_all,
    conversation,
    generation,
    routed_model,
    synthesized,
)
from signoria.orchestrator.aggregators.protocol import (
    AggregationContext,
    answered,
    nothing_to_aggregate,
)
from signoria.orchestrator.prompts import reference_messages
from signoria.orchestrator.result import Aggregate


class MoAParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    layers: list[Annotated[list[str], Field(min_length=1)]] = Field(
        default_factory=list,
        description="proposer models of each layer after the router's (layer 1)",
    )
    aggregator: str = Field(description="the model that writes the final answer")
    routed: bool = Field(
        default=False, description="the router's choice of aggregator when it makes one"
    )
    # The paper samples proposers at 0.7; the final aggregator is greedy here so the
    # answer of a given set of proposals is reproducible.
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    aggregator_temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=1, description="defaults to the limit")
    seed: int = 0

    def model_refs(self) -> dict[str, str]:
        refs = {
            f"layers[{i}][{j}]": model
            for i, layer in enumerate(self.layers)
            for j, model in enumerate(layer)
        }
        return {**refs, "aggregator": self.aggregator}


class MixtureOfAgents:
    def __init__(self, params: MoAParams) -> None:
        self.params = params

    async def aggregate(
        self, query: str, completions: Sequence[Completion], ctx: AggregationContext
    ) -> Aggregate:
        ok = answered(completions)
        if not ok:
            return nothing_to_aggregate("moa", completions)
        p = self.params
        chat = conversation(ctx, query)
        texts = [completions[i].text for i in ok]
        rounds, errors = 1, []
        for n, layer in enumerate(p.layers, start=2):
            messages = reference_messages(chat, texts)
            params = generation(ctx, p.max_tokens, p.temperature, seed=p.seed + 1000 * n)
            results = await call_all(ctx, [(model, messages) for model in layer], params)
            answers = [r.text for r in results if r.ok and r.text.strip()]
            if not answers:
                # A layer that produced nothing must not erase the one before it.
                errors.append(f"layer {n}: no proposer answered; kept layer {n - 1}")
                continue
            texts, rounds = answers, rounds + 1
        params = generation(ctx, p.max_tokens, p.aggregator_temperature, seed=p.seed)
        model = routed_model(ctx, p.aggregator, p.routed)
        final = await ctx.call_final(model, reference_messages(chat, texts), params)
        # Without a usable final call, the first answer of the last layer stands in.
        fallback = (ok[0] if rounds == 1 else None, texts[0])
        return synthesized("moa", final, completions, ok, fallback, rounds=rounds, errors=errors)
