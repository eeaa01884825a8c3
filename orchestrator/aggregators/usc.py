"""Universal self-consistency (Chen et al. 2023, arXiv 2311.17311): an LLM reads the
sampled answers and names the one most consistent with the others; that answer is
returned word for word.

Majority voting needs an answer it can extract (a number, a letter); synthesis rewrites
and may introduce errors of its own. USC sits between: it works on free-form answers and
never writes new text, so the result is always one of the experts' own answers. A reply
that names no valid id falls back to the first answer, and says so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from signoria.agents.types import Completion
from signoria.orchestrator.aggregators._shared import (
    OneModelParams,
    generation,
    others,
    routed_model,
    usable,
)
from signoria.orchestrator.aggregators.protocol import (
    AggregationContext,
    answered,
    nothing_to_aggregate,
)
from signoria.orchestrator.prompts import consistency_messages
from signoria.orchestrator.result import Aggregate

_ID = re.compile(r"\d+")


class USCParams(OneModelParams):
    """The model that picks, and its sampling (greedy by default)."""


def parse_choice(text: str, n: int) -> int | None:
    """The 0-based index named by the reply's first number, if it is one of 1..n."""
    found = _ID.search(text)
    if found is None:
        return None
    choice = int(found.group()) - 1
    return choice if 0 <= choice < n else None


class UniversalSelfConsistency:
    def __init__(self, params: USCParams) -> None:
        self.params = params

    async def aggregate(
        self, query: str, completions: Sequence[Completion], ctx: AggregationContext
    ) -> Aggregate:
        ok = answered(completions)
        if not ok:
            return nothing_to_aggregate("usc", completions)
        texts = [completions[i].text for i in ok]
        if len(ok) == 1:
            return _pick(completions, ok[0], None)
        params = generation(ctx, self.params.max_tokens or 8, self.params.temperature)
        model = routed_model(ctx, self.params.model, self.params.routed)
        reply = await ctx.call(model, consistency_messages(query, texts), params)
        choice = parse_choice(reply.text, len(ok)) if usable(reply) else None
        if choice is None:
            why = reply.error or f"no response id in {reply.text.strip()[:40]!r}"
            return _pick(completions, ok[0], f"selection failed ({why}); used the first answer")
        return _pick(completions, ok[choice], None)


def _pick(completions: Sequence[Completion], index: int, error: str | None) -> Aggregate:
    return Aggregate(
        aggregator="usc",
        text=completions[index].text,
        chosen=(index,),
        discarded=others(len(completions), (index,)),
        error=error,
        finish_reason=completions[index].finish_reason,
    )
