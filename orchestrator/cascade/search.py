"""Choosing a cascade's chain and knob on a validation split of the training rows only.

Candidates: the strongest model of the training rows last, and before it one to three
of the most accurate *cheap* models (mean cost at most a quarter of the strong one's),
asked one after the other, cheapest first, or the first two together. Each candidate is
fitted on the training part, swept on the validation part, and the (chain, value) that
meets the target best is refitted on all training rows. The test rows are never seen.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from signoria.orchestrator.cascade.policy import AnswerCascade, CascadeSettings
from signoria.routers.data import RoutingTable
from signoria.routers.embedding import Embedder
from signoria.routers.policy import CurvePoint, best_single, single_point, sweep

Chain = tuple[tuple[str, ...], ...]


class Target(BaseModel):
    """What the search optimises on validation, relative to the best single model there:
    the best quality within `cost_ratio` of its cost, or the cheapest point reaching
    `quality_ratio` of its quality."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cost_ratio: float | None = Field(default=None, gt=0.0)
    quality_ratio: float | None = Field(default=None, gt=0.0)

    @model_validator(mode="after")
    def _exactly_one(self) -> Target:
        if (self.cost_ratio is None) == (self.quality_ratio is None):
            raise ValueError("give exactly one of cost_ratio and quality_ratio")
        return self


@dataclass(frozen=True)
class Choice:
    chain: Chain
    value_usd: float
    validation: CurvePoint
    reference: CurvePoint  # the best single model on the validation rows
    tried: int


def candidate_chains(table: RoutingTable, cheap: int = 4) -> list[Chain]:
    strong = best_single(table)
    cost = np.nan_to_num(table.costs, nan=np.inf).mean(axis=0)
    accuracy = table.scores.mean(axis=0)
    affordable = [
        j for j in range(len(table.models)) if j != strong and cost[j] <= cost[strong] / 4
    ]
    ranked = sorted(affordable, key=lambda j: -accuracy[j])[:cheap]
    chains: list[Chain] = []
    for size in (1, 2, 3):
        for subset in itertools.combinations(ranked, size):
            ordered = [table.models[j] for j in sorted(subset, key=lambda j: cost[j])]
            chains.append((*((m,) for m in ordered), (table.models[strong],)))
            if size >= 2:  # the first two asked together
                chains.append(
                    (
                        (ordered[0], ordered[1]),
                        *((m,) for m in ordered[2:]),
                        (table.models[strong],),
                    )
                )
    return chains


def pick(points: Sequence[CurvePoint], reference: CurvePoint, target: Target) -> CurvePoint | None:
    priced = [p for p in points if p.cost is not None]
    ref_cost = reference.cost or 0.0
    if target.cost_ratio is not None:
        inside = [p for p in priced if (p.cost or 0.0) <= target.cost_ratio * ref_cost + 1e-12]
        return max(inside, key=lambda p: (p.quality, -(p.cost or 0.0)), default=None)
    goal = (target.quality_ratio or 1.0) * reference.quality
    reaching = [p for p in priced if p.quality >= goal - 1e-12]
    return min(reaching, key=lambda p: (p.cost or 0.0, -p.quality), default=None)


def choose(
    train: RoutingTable,
    validation: RoutingTable,
    target: Target,
    chains: Sequence[Chain] | None = None,
    base: CascadeSettings | None = None,
) -> Choice:
    """The chain and value that best meet `target` on `validation`, fitted on `train`."""
    return choose_many(train, validation, [target], chains, base)[0]


def choose_many(
    train: RoutingTable,
    validation: RoutingTable,
    targets: Sequence[Target],
    chains: Sequence[Chain] | None = None,
    base: CascadeSettings | None = None,
    embedder: Embedder | None = None,
) -> list[Choice]:
    """One choice per target from one sweep of every candidate chain.

    When no candidate meets a quality target, the one that comes closest (highest
    quality, then cheapest) is returned: the caller reports what it reaches.
    """
    reference = single_point(validation, best_single(train))
    candidates = list(chains or candidate_chains(train))
    curves: list[tuple[Chain, list[CurvePoint]]] = []
    for chain in candidates:
        settings = (base or CascadeSettings(chain=chain)).model_copy(update={"chain": chain})
        cascade = AnswerCascade.fit(train, settings, embedder)
        curves.append((chain, sweep(cascade, validation)))
    return [_best(curves, reference, target) for target in targets]


def _best(
    curves: Sequence[tuple[Chain, list[CurvePoint]]], reference: CurvePoint, target: Target
) -> Choice:
    best: tuple[tuple[float, ...], Chain, CurvePoint] | None = None
    for chain, points in curves:
        priced = [p for p in points if p.cost is not None]
        point = pick(points, reference, target) or max(
            priced, key=lambda p: (p.quality, -(p.cost or 0.0))
        )
        meets = pick([point], reference, target) is not None
        cost = -(point.cost or 0.0)
        quality_first = target.cost_ratio is not None or not meets
        key = (float(meets), *((point.quality, cost) if quality_first else (cost, point.quality)))
        if best is None or key > best[0]:
            best = (key, chain, point)
    assert best is not None, "at least one candidate chain"
    _, chain, point = best
    return Choice(
        chain=chain,
        value_usd=point.param,
        validation=point,
        reference=reference,
        tried=len(curves),
    )
