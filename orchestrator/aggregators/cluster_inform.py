"""Cluster & Inform: cluster the answers as Cluster & Filter does, drop nothing, and tell
the LLM aggregator which responses are in the minority cluster.

Filtering throws away a minority that happens to be right; informing keeps it and lets
the aggregator weigh it, marked `note="minority"` on its quote (a mark the experts
cannot forge: their own delimiters are escaped). The minority is `flagged`.
"""

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
from signoria.orchestrator.aggregators._voting import Verdict, injected, merge_flags
from signoria.orchestrator.aggregators.cluster_filter import split
from signoria.orchestrator.aggregators.protocol import (
    AggregationContext,
    answered,
    nothing_to_aggregate,
)
from signoria.orchestrator.answers import AnswerKind
from signoria.orchestrator.prompts import DISPUTED_GUIDANCE
from signoria.orchestrator.result import Aggregate


class ClusterInformParams(OneModelParams):
    answer: AnswerKind = "auto"


class ClusterInform:
    def __init__(self, params: ClusterInformParams) -> None:
        self.params = params

    async def aggregate(
        self, query: str, completions: Sequence[Completion], ctx: AggregationContext
    ) -> Aggregate:
        ok = answered(completions)
        if not ok:
            return nothing_to_aggregate("cluster-inform", completions)
        parts = split(query, completions, self.params.answer)
        notes = {pos: "minority" for pos, i in enumerate(ok) if i in parts.dropped}
        params = generation(ctx, self.params.max_tokens, self.params.temperature)
        texts = [completions[i].text for i in ok]
        result = await synthesize_texts(
            ctx,
            routed_model(ctx, self.params.model, self.params.routed),
            query,
            texts,
            params,
            notes=notes,
            guidance=DISPUTED_GUIDANCE if notes else "",
        )
        # Without the aggregator, the majority cluster's answer stands in.
        majority = Verdict(kept=parts.kept, representative=parts.representative)
        index = majority.answer_index(completions)
        fallback = (index, completions[ok[0] if index is None else index].text)
        flagged = merge_flags(parts.dropped, injected(completions))
        return synthesized("cluster-inform", result, completions, ok, fallback, flagged=flagged)
