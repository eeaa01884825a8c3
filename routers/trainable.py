"""What a trainable router is, and the trade-off it is trained for.

Every trainable router predicts a utility per (query, model); the decision is the argmax.
Utility is `alpha * predicted quality - beta * normalised cost` (GraphRouter's reward),
so one router trained for one scenario can be compared with every baseline on the same
reward, and "performance-first" (alpha=1, beta=0) is simply predicted quality.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from signoria.agents.types import ModelCard
from signoria.routers.data import RoutingTable
from signoria.routers.embedding import Embedder

SCENARIOS: dict[str, tuple[float, float]] = {
    "performance": (1.0, 0.0),
    "balanced": (0.5, 0.5),
    "cost": (0.2, 0.8),
}


class TradeOff(BaseModel):
    model_config = ConfigDict(frozen=True)

    alpha: float = Field(default=0.5, ge=0.0)
    beta: float = Field(default=0.5, ge=0.0)

    @classmethod
    def scenario(cls, name: str) -> TradeOff:
        if name not in SCENARIOS:
            raise ValueError(f"unknown scenario {name!r} (known: {', '.join(SCENARIOS)})")
        alpha, beta = SCENARIOS[name]
        return cls(alpha=alpha, beta=beta)


@dataclass
class RouterContext:
    """Shared by training and routing: the models, their expected costs, the embedder."""

    models: tuple[str, ...]
    info: dict[str, ModelCard]
    trade_off: TradeOff
    # Mean training cost per model, USD per query; the scale normalises it to [0, 1].
    expected_cost: np.ndarray
    cost_scale: float
    embedder: Embedder = field(default_factory=Embedder)
    seed: int = 0

    @classmethod
    def from_table(
        cls,
        table: RoutingTable,
        trade_off: TradeOff,
        seed: int = 0,
        embedder: Embedder | None = None,
    ) -> RouterContext:
        expected = np.nan_to_num(np.nanmean(table.costs, axis=0), nan=0.0)
        scale = float(expected.max()) if expected.size and expected.max() > 0 else 1.0
        return cls(
            models=table.models,
            info=table.info,
            trade_off=trade_off,
            expected_cost=expected,
            cost_scale=scale,
            embedder=embedder or Embedder(),
            seed=seed,
        )

    def normalised_cost(self) -> np.ndarray:
        return self.expected_cost / self.cost_scale

    def utility(self, quality: np.ndarray) -> np.ndarray:
        """[n, m] predicted quality -> [n, m] utility under this trade-off."""
        t = self.trade_off
        utility: np.ndarray = t.alpha * quality - t.beta * self.normalised_cost()[None, :]
        return utility

    def reward(self, table: RoutingTable) -> np.ndarray:
        """The realised reward of each (row, model) of a table, with its recorded costs."""
        costs = np.nan_to_num(table.costs, nan=0.0) / self.cost_scale
        reward: np.ndarray = self.trade_off.alpha * table.scores - self.trade_off.beta * costs
        return reward

    def best_single(self, table: RoutingTable) -> int:
        """The model with the best mean reward over `table`: the best-single baseline."""
        return int(np.argmax(self.reward(table).mean(axis=0)))

    def features(self, queries: Sequence[str]) -> np.ndarray:
        return self.embedder.embed(queries)


class TrainableRouter(Protocol):
    name: ClassVar[str]

    def fit(self, table: RoutingTable, ctx: RouterContext) -> None: ...

    def utilities(self, queries: Sequence[str], ctx: RouterContext) -> np.ndarray:
        """[n, len(ctx.models)]: higher is better; the router picks the argmax."""
        ...

    def save(self, directory: Path) -> None: ...

    def load(self, directory: Path, ctx: RouterContext) -> None: ...


def choose(utilities: np.ndarray) -> np.ndarray:
    """Index of the chosen model per row; ties to the lower index (models are sorted)."""
    chosen: np.ndarray = np.argmax(utilities, axis=1)
    return chosen
