"""The typed result of one request: the answer and the trace of every call behind it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from signoria.agents.types import ToolCall
from signoria.routers.protocol import RoutingDecision

CallRole = Literal["expert", "fallback", "aggregator"]
# An answer's end as OpenAI names it: "length" when it was cut at max_tokens,
# "tool_calls" when the answer is a request to call the client's tools.
FinishReason = Literal["stop", "length", "tool_calls"]


class ExpertCall(BaseModel):
    """One attempt at one expert; retries and refused calls appear as their own rows."""

    model_config = ConfigDict(frozen=True)

    expert: str
    role: CallRole = "expert"
    tokens_in: int = 0
    tokens_out: int = 0
    latency_s: float = 0.0
    cost: float | None = None
    error: str | None = None
    attempt: int = 1
    # Which routed assignment this call answers (expert or fallback); None for aggregator
    # calls. Aggregate.chosen/discarded index these slots.
    slot: int | None = None
    seed: int | None = None
    started_at: float = 0.0
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    # The backend's reason the call ended: "length" when it stopped at max_tokens.
    finish_reason: str | None = None
    # Where the row differs from what the backend said (orchestrator/metering.py):
    # "over_reported", "budget_exceeded", "budget_refused". When the tokens or cost were
    # capped, `reported_*` keep the backend's own numbers for audit.
    flags: tuple[str, ...] = ()
    reported_tokens_out: int | None = None
    reported_cost: float | None = None


class CascadeStep(BaseModel):
    """One decision of a cascade, as the trace shows it."""

    model_config = ConfigDict(frozen=True)

    stage: int
    models: tuple[str, ...]
    score: float  # predicted chance that stopping here is right
    gain: float  # best predicted gain of a later stage
    extra_cost: float | None  # expected USD of the stages that gain needs
    accept: bool
    answer: str | None = None
    # Where it went on to (the next stage, or straight to the last); None once accepted.
    next_stage: int | None = None
    # The knob the decision was made at (a pacer moves it as queries come).
    value_usd: float | None = None


class PolicyTurn(BaseModel):
    """One turn of a routing policy that thinks and asks experts as it goes (Router-R1),
    as the trace shows it: what it thought, whom it asked what, and what it read back."""

    model_config = ConfigDict(frozen=True)

    turn: int
    action: Literal["route", "answer", "malformed", "failed"]
    think: str | None = None
    expert: str | None = None
    query: str | None = None
    # The routed call's slot (Aggregate.chosen and the trace's calls index slots).
    slot: int | None = None
    # What the policy read back (the information turn), or the text of a malformed turn.
    reply: str | None = None
    # Why a turn is malformed, or why its call failed.
    note: str | None = None


class Aggregate(BaseModel):
    """What an aggregator made of the completions."""

    model_config = ConfigDict(frozen=True)

    aggregator: str
    text: str
    chosen: tuple[int, ...] = ()
    discarded: tuple[int, ...] = ()
    # Ballots per answer; weighted votes make them fractional.
    votes: dict[str, float] = Field(default_factory=dict)
    flagged: tuple[int, ...] = ()
    rounds: int = 1
    error: str | None = None
    # An answer-aware cascade's decision after each stage it ran.
    steps: tuple[CascadeStep, ...] = ()
    # A routing policy's turns (Router-R1): its thoughts, routes and answer.
    turns: tuple[PolicyTurn, ...] = ()
    # The finish reason of the call whose text became `text` (the synthesis call of an
    # LLM aggregator, the chosen expert's call of a vote): "length" means it was cut.
    finish_reason: str | None = None
    # The client's tools the answering expert asked to call (`text` may then be empty).
    tool_calls: tuple[ToolCall, ...] = ()


class AskResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    answer: str
    pipeline: str
    calls: tuple[ExpertCall, ...]
    cost: float | None
    latency_s: float
    routing: RoutingDecision | None = None
    aggregation: Aggregate | None = None
    # The completion tokens each call was allowed, and what the caller asked for (None:
    # the pipeline's default): a request held to a lower cap shows both.
    max_tokens: int | None = None
    max_tokens_requested: int | None = None
    # Set when the answer was replayed from the server's response cache: the request that
    # computed it. A replay makes no calls and costs 0.
    cached_from: str | None = None

    @property
    def finish_reason(self) -> FinishReason:
        """Why the answer ended, as OpenAI says it: "length" when the call that wrote it
        stopped at max_tokens, else "stop"."""
        if self.tool_calls:
            return "tool_calls"
        reason = None if self.aggregation is None else self.aggregation.finish_reason
        return "length" if reason == "length" else "stop"

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        return () if self.aggregation is None else self.aggregation.tool_calls

    @property
    def truncated(self) -> bool:
        """The answer was cut at the token limit before the model finished it."""
        return self.finish_reason == "length"

    def summary(self) -> dict[str, Any]:
        """The stable JSON shape of `signoria ask --json`."""
        return {
            "answer": self.answer,
            "pipeline": self.pipeline,
            "calls": [
                {
                    "expert": c.expert,
                    "role": c.role,
                    "tokens_in": c.tokens_in,
                    "tokens_out": c.tokens_out,
                    "latency_s": round(c.latency_s, 4),
                    "cost": c.cost,
                    "error": c.error,
                    "flags": list(c.flags),
                }
                for c in self.calls
            ],
            "cost": self.cost,
            "latency_s": round(self.latency_s, 4),
            "finish_reason": self.finish_reason,
        }
