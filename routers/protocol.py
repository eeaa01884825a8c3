"""What a router is: given a query and the pool, decide which experts answer it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from signoria.agents.types import Expert


class Assignment(BaseModel):
    """One expert call the router asks for. Several assignments of one expert with
    different seeds are how samples (Self-MoA, voting) are expressed."""

    model_config = ConfigDict(frozen=True)

    expert: str
    seed: int | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)


class RoutingDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    router: str
    assignments: tuple[Assignment, ...]
    scores: dict[str, float] = Field(default_factory=dict)
    predicted_quality: float | None = None
    predicted_cost: float | None = None
    reason: str = ""
    # The model this router would have aggregate the answers (Symbolic-MoE picks one per
    # query); LLM aggregators configured with `routed: true` call it instead of their own.
    aggregator: str | None = None


class Router(Protocol):
    async def route(
        self, query: str, pool: Mapping[str, Expert], *, budget_usd: float | None
    ) -> RoutingDecision: ...
