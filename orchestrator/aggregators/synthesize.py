"""An LLM reads every answer and writes one: the aggregator of MoA and Self-MoA."""

from __future__ import annotations

from collections.abc import Sequence

from signoria.agents.types import Completion
from signoria.orchestrator.aggregators._shared import (
    OneModelParams,
    generation,
    routed_model,
    synthesize_texts,
    synthesized,
)
from signoria.orchestrator.aggregators.protocol import (
    AggregationContext,
    answered,
    nothing_to_aggregate,
)
from signoria.orchestrator.result import Aggregate


class SynthesizeParams(OneModelParams):
    """The aggregator model and its sampling: nothing else to configure."""


class Synthesize:
    def __init__(self, params: SynthesizeParams) -> None:
        self.params = params

    async def aggregate(
        self, query: str, completions: Sequence[Completion], ctx: AggregationContext
    ) -> Aggregate:
        ok = answered(completions)
        if not ok:
            return nothing_to_aggregate("synthesize", completions)
        params = generation(ctx, self.params.max_tokens, self.params.temperature)
        texts = [completions[i].text for i in ok]
        model = routed_model(ctx, self.params.model, self.params.routed)
        result = await synthesize_texts(ctx, model, query, texts, params)
        # The aggregator failed: fall back to the first answer rather than nothing.
        return synthesized("synthesize", result, completions, ok, (ok[0], texts[0]))
