"""Take the first answer that came back: the aggregator of single-expert pipelines."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from signoria.agents.types import Completion
from signoria.orchestrator.aggregators.protocol import (
    AggregationContext,
    answered,
    nothing_to_aggregate,
)
from signoria.orchestrator.result import Aggregate


class FirstParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FirstAnswer:
    # The answer is an expert's text as it is: with one routed expert, that expert's call
    # is the final answer and streams (orchestrator/pipeline.py), and the client's tools
    # and response format are given to the experts' calls.
    passes_through = True

    def __init__(self, params: FirstParams) -> None:
        self.params = params

    async def aggregate(
        self, query: str, completions: Sequence[Completion], ctx: AggregationContext
    ) -> Aggregate:
        ok = answered(completions)
        if not ok:
            return nothing_to_aggregate("first", completions)
        return Aggregate(
            aggregator="first",
            text=completions[ok[0]].text,
            chosen=(ok[0],),
            discarded=tuple(i for i in range(len(completions)) if i != ok[0]),
            finish_reason=completions[ok[0]].finish_reason,
            tool_calls=completions[ok[0]].tool_calls,
        )
