"""Cost accounting, in one place, from a card's per-1M-token prices."""

from __future__ import annotations

from collections.abc import Iterable

from signoria.agents.types import ModelCard

_PER = 1_000_000


def call_cost(card: ModelCard, tokens_in: int, tokens_out: int) -> float | None:
    """USD for a call, or `None` when either price is unknown (never a guessed 0)."""
    if card.input_price is None or card.output_price is None:
        return None
    return (tokens_in * card.input_price + tokens_out * card.output_price) / _PER


def total_cost(costs: Iterable[float | None]) -> float | None:
    """Sum of call costs; unknown as soon as one of them is unknown."""
    total = 0.0
    for cost in costs:
        if cost is None:
            return None
        total += cost
    return total


def format_usd(value: float | None) -> str:
    """A cost for people to read; an unknown cost says so instead of showing $0."""
    return "unknown" if value is None else f"${value:.6f}"
