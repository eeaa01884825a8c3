"""Sparse Mixture-of-Agents (SMoA, Li et al. 2024): a judge passes on only the k best.

Dense MoA sends every answer to every next-layer proposer, so prompts and cost grow with
the pool. SMoA sparsifies it: each round a judge reads all proposals and picks the k best
(`{"chosen": [ids], "end_debate": bool}`); only those reach the next round's proposers,
who get distinct role descriptions so they do not collapse into one voice; the judge
ends the debate early when the chosen answers already agree. The router's completions
are round 1's proposals.

A judge reply that is not that JSON (unparsable, ids out of range, repeated, the wrong
count) must not stall the request: the first k proposals are kept, in order, and
`error` says which round's judge failed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

from signoria.agents.types import Completion, Message
from signoria.orchestrator.aggregators._shared import (
    call_all,
    conversation,
    generation,
    synthesize_texts,
    synthesized,
    usable,
)
from signoria.orchestrator.aggregators.protocol import (
    AggregationContext,
    answered,
    nothing_to_aggregate,
)
from signoria.orchestrator.prompts import MOA_SYSTEM, judge_messages, reference_messages
from signoria.orchestrator.result import Aggregate


class SMoAParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    judge: str = Field(description="the model that selects the k best proposals each round")
    proposers: list[str] = Field(min_length=1, description="models of rounds 2..max_rounds")
    roles: list[str] | None = Field(
        default=None, description="one role description per proposer, as its system prompt"
    )
    k: int = Field(default=2, ge=1, description="proposals passed on per round")
    max_rounds: int = Field(default=2, ge=1)
    aggregator: str | None = Field(
        default=None, description="writes the final answer; None: the judge's top choice"
    )
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    judge_temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=1, description="defaults to the limit")
    seed: int = 0

    @model_validator(mode="after")
    def _one_role_per_proposer(self) -> SMoAParams:
        if self.roles is not None and len(self.roles) != len(self.proposers):
            raise ValueError(f"roles: {len(self.roles)} given for {len(self.proposers)} proposers")
        return self

    def model_refs(self) -> dict[str, str]:
        refs = {f"proposers[{i}]": m for i, m in enumerate(self.proposers)}
        refs["judge"] = self.judge
        if self.aggregator is not None:
            refs["aggregator"] = self.aggregator
        return refs


class JudgeReply(BaseModel):
    model_config = ConfigDict(extra="ignore")

    chosen: list[StrictInt]
    end_debate: StrictBool = False


def parse_judge(text: str, n: int, k: int) -> tuple[list[int], bool]:
    """The judge's choice as 0-based positions, in its order of preference, and whether
    to end the debate. Raises ValueError saying what is wrong with the reply."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise ValueError("no JSON object")
    try:
        reply = JudgeReply.model_validate(json.loads(text[start : end + 1]))
    except (json.JSONDecodeError, ValueError) as exc:
        raise ValueError(f"not the expected JSON: {str(exc).splitlines()[0]}") from None
    want = min(k, n)
    if len(reply.chosen) != want or len(set(reply.chosen)) != want:
        raise ValueError(f"chose {reply.chosen}, expected {want} distinct ids")
    if any(not 1 <= i <= n for i in reply.chosen):
        raise ValueError(f"ids {reply.chosen} out of range 1..{n}")
    return [i - 1 for i in reply.chosen], reply.end_debate


class SparseMoA:
    def __init__(self, params: SMoAParams) -> None:
        self.params = params

    async def aggregate(
        self, query: str, completions: Sequence[Completion], ctx: AggregationContext
    ) -> Aggregate:
        ok = answered(completions)
        if not ok:
            return nothing_to_aggregate("smoa", completions)
        p = self.params
        chat = conversation(ctx, query)
        proposals = [completions[i].text for i in ok]
        # Each proposal's finish reason: the answer of a judge-only SMoA is a proposal.
        reasons = [completions[i].finish_reason for i in ok]
        errors: list[str] = []
        first_choice: list[int] = []
        rounds = 0
        while True:
            rounds += 1
            picked, end = await self._judge(ctx, query, proposals, rounds, errors)
            selected = [proposals[j] for j in picked]
            if rounds == 1:
                first_choice = [ok[j] for j in picked]
            if end or rounds == p.max_rounds:
                break
            new = await self._propose(ctx, chat, selected, rounds)
            if not new:
                errors.append(f"round {rounds + 1}: no proposer answered; kept round {rounds}")
                break
            proposals = [c.text for c in new]
            reasons = [c.finish_reason for c in new]
        # Round 1's picks are router completions; later picks are new proposals.
        top = (first_choice[0] if rounds == 1 else None, selected[0])
        if p.aggregator is None:
            done = Completion(expert=p.judge, text=selected[0], finish_reason=reasons[picked[0]])
        else:
            params = generation(ctx, p.max_tokens, 0.0)
            done = await synthesize_texts(ctx, p.aggregator, query, selected, params)
        return synthesized(
            "smoa", done, completions, first_choice, top, rounds=rounds, errors=errors
        )

    async def _judge(
        self,
        ctx: AggregationContext,
        query: str,
        proposals: list[str],
        round_: int,
        errors: list[str],
    ) -> tuple[list[int], bool]:
        p = self.params
        params = generation(ctx, p.max_tokens, p.judge_temperature, seed=p.seed + round_)
        reply = await ctx.call(p.judge, judge_messages(query, proposals, p.k), params)
        try:
            if not usable(reply):
                raise ValueError(f"judge failed: {reply.error or 'empty'}")
            return parse_judge(reply.text, len(proposals), p.k)
        except ValueError as exc:
            # Deterministic fallback: the first k proposals, in routing order.
            keep = min(p.k, len(proposals))
            errors.append(f"round {round_}: invalid judge reply ({exc}); kept the first {keep}")
            return list(range(keep)), False

    async def _propose(
        self, ctx: AggregationContext, chat: list[Message], selected: list[str], round_: int
    ) -> list[Completion]:
        """The next round: every proposer, in its role, answers with the chosen responses
        as references; concurrently. Only the usable answers are returned."""
        p = self.params
        roles = p.roles or [""] * len(p.proposers)
        calls = [
            (model, reference_messages(chat, selected, f"{role}\n\n{MOA_SYSTEM}".strip()))
            for model, role in zip(p.proposers, roles, strict=True)
        ]
        params = generation(ctx, p.max_tokens, p.temperature, seed=p.seed + 1000 * (round_ + 1))
        return [r for r in await call_all(ctx, calls, params) if usable(r)]
