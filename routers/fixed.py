"""The router that does not choose: a configured list of experts, each sampled k times.

It is what `single`, `vote` and `self-moa` stand on, and the baseline learned routers
are measured against.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from signoria.agents.types import Expert
from signoria.routers.protocol import Assignment, RoutingDecision


class FixedRouterParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    experts: tuple[str, ...] = Field(min_length=1)
    samples: int = Field(default=1, ge=1, description="calls per expert, with distinct seeds")
    temperature: float | None = Field(
        default=None, ge=0.0, le=2.0, description="sampling temperature; None keeps greedy"
    )
    seed: int = 0

    def model_refs(self) -> dict[str, str]:
        return {f"experts[{i}]": name for i, name in enumerate(self.experts)}


class FixedRouter:
    def __init__(self, params: FixedRouterParams) -> None:
        self.params = params

    async def route(
        self, query: str, pool: Mapping[str, Expert], *, budget_usd: float | None
    ) -> RoutingDecision:
        p = self.params
        # A distinct seed per call, stable across runs: samples differ, runs reproduce.
        names = [name for name in p.experts for _ in range(p.samples)]
        assignments = tuple(
            Assignment(expert=name, seed=p.seed + i, temperature=p.temperature)
            for i, name in enumerate(names)
        )
        return RoutingDecision(
            router="fixed",
            assignments=assignments,
            reason=f"configured: {', '.join(p.experts)} x{p.samples}",
        )
