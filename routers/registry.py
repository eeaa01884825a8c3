"""Routers by name. A new router is one module, one `register` line here and one test.

`ROUTERS` are live routers a pipeline config names; `TRAINABLE` are the learned routers
and baselines that `signoria route train` fits on outcome tables.
"""

from __future__ import annotations

from collections.abc import Callable

from agents.plugins import Registry, Strategy
from routers.baselines import (
    BestSingle,
    Cheapest,
    KNNRouter,
    MatrixFactorisation,
    MLPRouter,
    RandomRouter,
    SVMRouter,
)
from routers.cost_aware import CascadeRouter, ParetoRouter, ThresholdRouter
from routers.fixed import FixedRouter, FixedRouterParams
from routers.graph import GraphRouter
from routers.learned import TrainableRouter
from routers.live import LearnedRouter, LearnedRouterParams
from routers.protocol import Router
from routers.skills import SkillsLiveParams, SkillsLiveRouter, SkillsRouter

ROUTERS: Registry[Strategy[Router]] = Registry("router")
TRAINABLE: Registry[Callable[[], TrainableRouter]] = Registry("trainable router")

ROUTERS.register("fixed", Strategy(params=FixedRouterParams, build=FixedRouter))
ROUTERS.register("learned", Strategy(params=LearnedRouterParams, build=LearnedRouter))
ROUTERS.register("skills", Strategy(params=SkillsLiveParams, build=SkillsLiveRouter))

for _cls in (
    RandomRouter,
    BestSingle,
    Cheapest,
    KNNRouter,
    MLPRouter,
    SVMRouter,
    MatrixFactorisation,
):
    TRAINABLE.register(_cls.name, _cls)
TRAINABLE.register(SkillsRouter.name, SkillsRouter)
TRAINABLE.register(ThresholdRouter.name, ThresholdRouter)
TRAINABLE.register(ParetoRouter.name, ParetoRouter)
TRAINABLE.register(CascadeRouter.name, CascadeRouter)
TRAINABLE.register(GraphRouter.name, GraphRouter)
