"""The live "skills" router: recruit k experts of the pool for a query from a trained
skills artifact (`signoria route train skills ...`).

The params name no model (`model_refs()` is empty): which experts exist is only known at
route time, so artifact models absent from the pool are skipped and said so in the
reason, instead of failing config validation for a pool that may legitimately be partial.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from signoria.agents.types import Expert
from signoria.errors import SignoriaError
from signoria.routers.artifact import load_artifact
from signoria.routers.learned import resolve_artifact
from signoria.routers.protocol import Assignment, RoutingDecision
from signoria.routers.skills.router import SkillsRouter
from signoria.routers.trainable import RouterContext


class SkillsRoutingError(SignoriaError):
    pass


class SkillsLiveParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    artifact: str = Field(description="directory of an artifact trained with router 'skills'")
    k: int = Field(default=3, ge=1, description="experts recruited per query, with replacement")
    temperature_softmax: float = Field(default=0.5, gt=0.0, description="recruiting softmax")
    sample_temperature: float | None = Field(
        default=None, ge=0.0, le=2.0, description="temperature of each expert call"
    )
    seed: int = 0

    def model_refs(self) -> dict[str, str]:
        return {}


class SkillsLiveRouter:
    def __init__(self, params: SkillsLiveParams) -> None:
        self.params = params
        self._loaded: tuple[SkillsRouter, RouterContext] | None = None

    def _load(self) -> tuple[SkillsRouter, RouterContext]:
        if self._loaded is None:
            artifact = resolve_artifact(Path(self.params.artifact))
            router, ctx = load_artifact(artifact, name="skills", live=True)
            if not isinstance(router, SkillsRouter):
                raise SkillsRoutingError(f"{self.params.artifact}: not a skills router")
            self._loaded = (router, ctx)
        return self._loaded

    async def route(
        self, query: str, pool: Mapping[str, Expert], *, budget_usd: float | None
    ) -> RoutingDecision:
        # Embedding is CPU work: keep it off the event loop.
        return await asyncio.to_thread(self._route, query, pool, budget_usd)

    def _route(
        self, query: str, pool: Mapping[str, Expert], budget_usd: float | None
    ) -> RoutingDecision:
        p = self.params
        router, ctx = self._load()
        cost = dict(zip(ctx.models, ctx.expected_cost.tolist(), strict=True))
        present = [m for m in router.models if m in pool]
        skipped = [m for m in router.models if m not in pool]
        if not present:
            raise SkillsRoutingError(
                f"no expert of the pool ({', '.join(sorted(pool))}) is profiled in "
                f"{p.artifact} (profiled: {', '.join(router.models)})"
            )
        notes = []
        if skipped:
            notes.append(f"not in pool, skipped: {', '.join(skipped)}")
        candidates = present
        if budget_usd is not None:
            # Each of the k calls must fit an equal share of the budget, on expected cost.
            affordable = [m for m in present if cost.get(m, 0.0) * p.k <= budget_usd]
            candidates = affordable or [min(present, key=lambda m: cost.get(m, 0.0))]
            if len(candidates) < len(present):
                notes.append(f"over budget, dropped: {len(present) - len(candidates)}")
        chosen = router.recruit(
            query, p.k, ctx, among=candidates, temperature=p.temperature_softmax, seed=p.seed
        )
        scores = dict(zip(router.models, router.scores([query], ctx)[0].tolist(), strict=True))
        keywords = ", ".join(f"{w} ({r:.2f})" for w, r in router.keywords(query, ctx))
        # The artifact's aggregator (best at the training set) when the pool has it and
        # the budget allows it; else the candidate strongest on this query's skills.
        aggregator = (
            router.aggregator
            if router.aggregator in candidates
            else max(candidates, key=lambda m: scores[m])
        )
        reason = "; ".join(
            [
                f"skills: {keywords or 'none'}",
                f"recruited: {', '.join(chosen)}",
                f"aggregator: {aggregator}",
                *notes,
            ]
        )
        return RoutingDecision(
            router="skills",
            assignments=tuple(
                Assignment(expert=name, seed=p.seed + i, temperature=p.sample_temperature)
                for i, name in enumerate(chosen)
            ),
            scores={m: scores[m] for m in candidates},
            predicted_quality=sum((scores[m] + 1.0) / 2.0 for m in chosen) / len(chosen),
            predicted_cost=sum(cost.get(m, 0.0) for m in chosen),
            reason=reason,
            aggregator=aggregator,
        )
