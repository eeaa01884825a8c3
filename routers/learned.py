"""The `learned` router: a trained artifact routing live queries across the pool.

It scores the query for every model the artifact knows that the pool also has, and sends
it to the best `k` by predicted utility, reporting the scores so that weighted votes and
traces can use them. Models of the artifact that the pool lacks are skipped, and said so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from functools import cached_property
from importlib import resources
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from signoria.agents.types import Expert
from signoria.errors import SignoriaError
from signoria.routers.artifact import load_artifact
from signoria.routers.protocol import Assignment, RoutingDecision
from signoria.routers.trainable import RouterContext, TrainableRouter


def resolve_artifact(path: Path) -> Path:
    """An absolute path as is; a relative one against the shipped `configs/` folder first
    (so a config's `artifacts/...` works from any directory), then the working directory."""
    path = path.expanduser()
    if path.is_absolute():
        return path
    shipped = Path(str(resources.files("signoria.configs"))) / path
    return shipped if shipped.exists() else path


class LearnedRouterParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    artifact: Path = Field(
        description="directory written by `signoria route train`; relative: under configs/"
    )
    router: str | None = Field(default=None, description="default: the artifact's router")
    k: int = Field(default=1, ge=1, description="how many of the best models to call")


class LearnedRouter:
    def __init__(self, params: LearnedRouterParams) -> None:
        self.params = params

    @cached_property
    def _trained(self) -> tuple[TrainableRouter, RouterContext]:
        # Loaded on first use, so a config naming an artifact costs nothing until routed.
        return load_artifact(resolve_artifact(self.params.artifact), self.params.router, live=True)

    async def route(
        self, query: str, pool: Mapping[str, Expert], *, budget_usd: float | None
    ) -> RoutingDecision:
        # Loading the artifact and embedding the query are CPU work: off the event loop.
        return await asyncio.to_thread(self._route, query, pool)

    def _route(self, query: str, pool: Mapping[str, Expert]) -> RoutingDecision:
        router, ctx = self._trained
        utilities = router.utilities([query], ctx)[0]
        usable = [j for j, m in enumerate(ctx.models) if m in pool and np.isfinite(utilities[j])]
        if not usable:
            raise SignoriaError(
                f"none of the artifact's models ({', '.join(ctx.models)}) is in the pool"
            )
        best = sorted(usable, key=lambda j: -utilities[j])[: self.params.k]
        skipped = [m for m in ctx.models if m not in pool]
        reason = f"{type(router).__name__} utility; best: {ctx.models[best[0]]}"
        if skipped:
            reason += f"; not in pool: {', '.join(skipped)}"
        return RoutingDecision(
            router="learned",
            assignments=tuple(Assignment(expert=ctx.models[j]) for j in best),
            scores={ctx.models[j]: float(utilities[j]) for j in usable},
            reason=reason,
        )
