"""An LLM reads every answer and writes one: the aggregator of MoA and Self-MoA."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from agents.types import Completion
from orchestrator.aggregators._shared import generation, synthesize_texts, synthesized
from orchestrator.aggregators.protocol import AggregationContext, answered, nothing_to_aggregate
from orchestrator.result import Aggregate


class SynthesizeParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(description="the aggregator model")
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=1, description="defaults to the limit")

    def model_refs(self) -> dict[str, str]:
        return {"model": self.model}


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
        result = await synthesize_texts(ctx, self.params.model, query, texts, params)
        # The aggregator failed: fall back to the first answer rather than nothing.
        return synthesized("synthesize", result, completions, ok, (ok[0], texts[0]))
