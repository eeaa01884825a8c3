"""What an aggregator is: many completions in, one answer out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from signoria.agents.streaming import final_call
from signoria.agents.types import Completion, Expert, GenerationParams, Message, ModelCard
from signoria.orchestrator.result import Aggregate
from signoria.routers.protocol import RoutingDecision

CallExpert = Callable[[str, list[Message], GenerationParams], Awaitable[Completion]]
# An expert call of the request itself (role "expert", its own slot): how a cascade asks
# its next stage, so that those answers are recorded exactly like the first stage's.
AskExpert = Callable[[str, list[Message], GenerationParams, int], Awaitable[Completion]]


@dataclass(frozen=True)
class AggregationContext:
    """What an aggregator may use besides the completions.

    `call` goes through the request's call runner, so an LLM aggregator's own calls obey
    the same budget, deadline and retries and show up in the trace.
    """

    call: CallExpert
    max_tokens: int
    pool: Mapping[str, Expert] = field(default_factory=dict)
    # The decision that produced the completions: completion i answers assignment i, so
    # `routing.assignments[i].expert` and `routing.scores` are there for weighted votes.
    routing: RoutingDecision | None = None
    messages: tuple[Message, ...] = ()
    ask: AskExpert | None = None

    async def call_final(
        self, name: str, messages: list[Message], params: GenerationParams
    ) -> Completion:
        """The call whose text is the final answer: it streams to a client that asked for
        a stream (agents/streaming.py); every other call generates in one piece."""
        with final_call():
            return await self.call(name, messages, params)

    def card(self, name: str) -> ModelCard:
        """A model's card (context length, prices), e.g. to fit a prompt to its context."""
        return self.pool[name].card

    async def count_tokens(self, name: str, messages: list[Message]) -> int:
        return await self.pool[name].count_tokens(messages)

    async def ask_expert(
        self, name: str, params: GenerationParams, slot: int, *, who: str
    ) -> Completion:
        """One more expert call of the request on its own messages, in slot `slot` (how a
        cascade asks its next stage and adaptive-vote its next sample)."""
        if self.ask is None:
            raise RuntimeError(f"{who} needs a pipeline that lets it ask experts")
        return await self.ask(name, list(self.messages), params, slot)


class Aggregator(Protocol):
    async def aggregate(
        self, query: str, completions: Sequence[Completion], ctx: AggregationContext
    ) -> Aggregate: ...


def passes_through(aggregator: Aggregator) -> bool:
    """Whether the answer is one expert's call as it is (`first`): then that call may
    stream, and the client's tools and response format are given to it."""
    return bool(getattr(aggregator, "passes_through", False))


def answered(completions: Sequence[Completion]) -> list[int]:
    """Indices of the completions that produced an answer (text, or calls of the client's
    tools): the only ones worth aggregating."""
    return [i for i, c in enumerate(completions) if c.ok and (c.text.strip() or c.tool_calls)]


def nothing_to_aggregate(name: str, completions: Sequence[Completion]) -> Aggregate:
    errors = "; ".join(sorted({c.error for c in completions if c.error})) or "empty answers"
    return Aggregate(
        aggregator=name,
        text="",
        discarded=tuple(range(len(completions))),
        error=f"no expert answered ({errors})",
    )
