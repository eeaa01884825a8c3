"""An LLM reads every answer and writes one: the aggregator of MoA and Self-MoA."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from agents.types import Completion, GenerationParams
from orchestrator.aggregators.protocol import AggregationContext, answered, nothing_to_aggregate
from orchestrator.prompts import synthesis_messages
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
        params = GenerationParams(
            max_tokens=self.params.max_tokens or ctx.max_tokens,
            temperature=self.params.temperature,
        )
        messages = synthesis_messages(query, [completions[i].text for i in ok])
        result = await ctx.call(self.params.model, messages, params)
        discarded = tuple(i for i in range(len(completions)) if i not in ok)
        if not result.ok or not result.text:
            # The aggregator failed: fall back to the first answer rather than nothing.
            return Aggregate(
                aggregator="synthesize",
                text=completions[ok[0]].text,
                chosen=(ok[0],),
                discarded=discarded,
                error=f"aggregator failed ({result.error or 'empty'}); used first answer",
            )
        return Aggregate(
            aggregator="synthesize", text=result.text, chosen=tuple(ok), discarded=discarded
        )
