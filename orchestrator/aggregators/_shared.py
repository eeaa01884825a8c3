"""Helpers shared by the LLM aggregators (synthesize, MoA, Self-MoA-Seq, SMoA, Cluster &
Inform): their sampling params, concurrent calls and the fallback when the aggregator
model fails. Each lives here once so every LLM aggregator fails the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from signoria.agents.types import Completion, GenerationParams, Message
from signoria.orchestrator.aggregators.protocol import AggregationContext
from signoria.orchestrator.prompts import synthesis_messages
from signoria.orchestrator.result import Aggregate


class OneModelParams(BaseModel):
    """Params of an aggregator that hands the answers to one model to write the result."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(description="the aggregator model")
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=1, description="defaults to the limit")
    routed: bool = Field(
        default=False,
        description="use the router's choice of aggregator (e.g. skills'), `model` without one",
    )

    def model_refs(self) -> dict[str, str]:
        return {"model": self.model}


def routed_model(ctx: AggregationContext, model: str, routed: bool) -> str:
    """This request's aggregator model: with `routed`, the router's per-query choice
    (`routing.aggregator`, Symbolic-MoE's aggregator) when it names an expert of the pool;
    otherwise the configured `model`, which stays the fallback and is checked at load."""
    choice = ctx.routing.aggregator if routed and ctx.routing is not None else None
    return choice if choice is not None and choice in ctx.pool else model


def usable(completion: Completion) -> bool:
    return completion.ok and bool(completion.text.strip())


def generation(
    ctx: AggregationContext, max_tokens: int | None, temperature: float, seed: int | None = None
) -> GenerationParams:
    """An aggregator's own sampling params; `max_tokens` defaults to the pipeline limit."""
    return GenerationParams(
        max_tokens=max_tokens or ctx.max_tokens, temperature=temperature, seed=seed
    )


def conversation(ctx: AggregationContext, query: str) -> list[Message]:
    """The conversation the experts answered; just the query when the context has none."""
    return list(ctx.messages) or [Message(role="user", content=query)]


async def call_all(
    ctx: AggregationContext,
    calls: Sequence[tuple[str, list[Message]]],
    params: GenerationParams,
) -> list[Completion]:
    """One layer of proposers, concurrently; proposer j samples with seed `params.seed + j`
    so repeated models in a layer give different samples."""
    base = params.seed or 0
    return list(
        await asyncio.gather(
            *(
                ctx.call(model, messages, params.model_copy(update={"seed": base + j}))
                for j, (model, messages) in enumerate(calls)
            )
        )
    )


async def synthesize_texts(
    ctx: AggregationContext,
    model: str,
    query: str,
    texts: Sequence[str],
    params: GenerationParams,
    *,
    notes: Mapping[int, str] | None = None,
    guidance: str = "",
) -> Completion:
    return await ctx.call_final(
        model, synthesis_messages(query, texts, notes=notes, guidance=guidance), params
    )


def others(n: int, keep: Sequence[int]) -> tuple[int, ...]:
    return tuple(i for i in range(n) if i not in keep)


def synthesized(
    name: str,
    result: Completion,
    completions: Sequence[Completion],
    chosen: Sequence[int],
    fallback: tuple[int | None, str],
    *,
    flagged: Sequence[int] = (),
    rounds: int = 1,
    errors: Sequence[str] = (),
) -> Aggregate:
    """The aggregate of an LLM aggregation call.

    When the call failed, the answer is `fallback` (the index of the completion it came
    from, if it is one, and its text): an answer we already have rather than nothing,
    with the reason in `error`.
    """
    problems = list(errors)
    text, chosen, finish = result.text, tuple(chosen), result.finish_reason
    if not usable(result):
        index, text = fallback
        chosen = chosen if index is None else (index,)
        # A later layer's proposal has no completion here: its finish reason is unknown.
        finish = None if index is None else completions[index].finish_reason
        problems.append(f"aggregator failed ({result.error or 'empty'}); used a proposal")
    return Aggregate(
        aggregator=name,
        text=text,
        chosen=chosen,
        discarded=others(len(completions), chosen),
        flagged=tuple(flagged),
        rounds=rounds,
        error="; ".join(problems) or None,
        finish_reason=finish,
    )
