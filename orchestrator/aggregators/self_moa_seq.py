"""Self-MoA-Seq (Li et al. 2025): synthesize many samples in a sliding window.

One `synthesize` call over k samples overflows the aggregator's context once k is large
(6 samples of 1k tokens do not fit a 4k model). Seq aggregates a window at a time: each
step synthesizes the next new samples together with the running synthesis, which holds
`keep` of the `window` slots (the most recent syntheses), so every sample is read once
and the prompt stays bounded.

The window is shrunk until the prompt plus `max_tokens` fits the model's context
(measured with the model's own token count). If even one new sample beside the latest
synthesis does not fit, the longest text is truncated and `error` says so.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field, model_validator

from signoria.agents.types import Completion, Message
from signoria.orchestrator.aggregators._shared import (
    OneModelParams,
    generation,
    routed_model,
    synthesized,
    usable,
)
from signoria.orchestrator.aggregators.protocol import (
    AggregationContext,
    answered,
    nothing_to_aggregate,
)
from signoria.orchestrator.prompts import SEQ_GUIDANCE, synthesis_messages
from signoria.orchestrator.result import Aggregate

_CUT_MARK = " [...truncated]"


class SelfMoASeqParams(OneModelParams):
    window: int = Field(default=6, ge=2, description="responses per aggregation step")
    keep: int = Field(default=3, ge=1, description="window slots for the running synthesis")

    @model_validator(mode="after")
    def _room_for_new_samples(self) -> SelfMoASeqParams:
        if self.keep >= self.window:
            raise ValueError("keep must be smaller than window, or no new sample fits")
        return self


def step_messages(query: str, held: Sequence[str], new: Sequence[str]) -> list[Message]:
    """One step's prompt: earlier syntheses first (marked), then the new samples."""
    notes = dict.fromkeys(range(len(held)), "synthesis")
    guidance = SEQ_GUIDANCE if held else ""
    return synthesis_messages(query, [*held, *new], notes=notes, guidance=guidance)


class SelfMoASeq:
    def __init__(self, params: SelfMoASeqParams) -> None:
        self.params = params

    async def aggregate(
        self, query: str, completions: Sequence[Completion], ctx: AggregationContext
    ) -> Aggregate:
        ok = answered(completions)
        if not ok:
            return nothing_to_aggregate("self-moa-seq", completions)
        p = self.params
        params = generation(ctx, p.max_tokens, p.temperature)
        model = routed_model(ctx, p.model, p.routed)
        budget = ctx.card(model).context_length - params.max_tokens
        samples = [completions[i].text for i in ok]
        syntheses: list[str] = []
        errors: list[str] = []
        last: Completion | None = None
        kept: Completion | None = None  # the call that wrote syntheses[-1]
        start, steps = 0, 0
        while start < len(samples):
            held = syntheses[-p.keep :]
            messages, taken, cut = await self._fit(ctx, model, query, held, samples[start:], budget)
            if cut:
                errors.append(f"step {steps + 1}: {cut}")
            last = await ctx.call(model, messages, params)
            steps, start = steps + 1, start + taken
            if usable(last):
                syntheses.append(last.text)
                kept = last
            else:
                errors.append(f"step {steps}: aggregator failed ({last.error or 'empty'})")
        assert last is not None  # at least one sample, so at least one step
        if not usable(last) and kept is not None:
            # A failed last step still leaves the synthesis of the steps before it.
            last = kept
        return synthesized(
            "self-moa-seq",
            last,
            completions,
            ok,
            (ok[0], samples[0]),
            rounds=steps,
            errors=errors,
        )

    async def _fit(
        self,
        ctx: AggregationContext,
        model: str,
        query: str,
        held: list[str],
        pending: Sequence[str],
        budget: int,
    ) -> tuple[list[Message], int, str]:
        """The largest step that fits: (messages, new samples taken, truncation note)."""
        take = min(self.params.window - len(held), len(pending))
        while take >= 1:
            messages = step_messages(query, held, pending[:take])
            if await ctx.count_tokens(model, messages) <= budget:
                return messages, take, ""
            take -= 1
        # Not even one new sample fits beside the running syntheses: keep only the latest
        # synthesis, then cut the longest text until the prompt fits.
        latest = held[-1:]
        texts, cut = await self._truncate(
            ctx, model, query, [*latest, pending[0]], len(latest), budget
        )
        n_held = len(latest)
        messages = step_messages(query, texts[:n_held], texts[n_held:])
        note = f"truncated a response to fit {model}'s context" if cut else ""
        return messages, 1, note

    async def _truncate(
        self,
        ctx: AggregationContext,
        model: str,
        query: str,
        texts: list[str],
        n_held: int,
        budget: int,
    ) -> tuple[list[str], bool]:
        texts, cut = list(texts), False
        while True:
            messages = step_messages(query, texts[:n_held], texts[n_held:])
            used = await ctx.count_tokens(model, messages)
            longest = max(range(len(texts)), key=lambda i: len(texts[i]))
            if used <= budget or len(texts[longest]) <= len(_CUT_MARK) * 2:
                # Fits, or nothing left to cut (the question alone is too long): send it
                # and let the model's own error, if any, land in the trace.
                return texts, cut
            # Cut in proportion to the overflow, at least a quarter, to converge fast.
            keep = max(0.1, min(0.75, budget / used))
            body = texts[longest].removesuffix(_CUT_MARK)
            texts[longest], cut = body[: int(len(body) * keep)] + _CUT_MARK, True
