"""The router that asks no expert up front: for pipelines whose aggregator decides whom to
ask as it goes (`router-r1`, whose policy routes sub-questions turn by turn)."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict

from signoria.agents.types import Expert
from signoria.routers.protocol import RoutingDecision


class NoRouterParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NoRouter:
    def __init__(self, params: NoRouterParams) -> None:
        self.params = params

    async def route(
        self, query: str, pool: Mapping[str, Expert], *, budget_usd: float | None
    ) -> RoutingDecision:
        return RoutingDecision(
            router="none", assignments=(), reason="no expert up front: the aggregator routes"
        )
