"""What `signoria models list` shows: each model's size, price and local availability."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pydantic import BaseModel

from signoria.agents.pool import ModelSpec
from signoria.agents.types import Availability


class ModelInfo(BaseModel):
    name: str
    backend: str
    size_bytes: int | None
    input_price: float | None
    output_price: float | None
    available: bool
    detail: str


@runtime_checkable
class _KnowsAvailability(Protocol):
    def availability(self) -> Availability: ...


def describe(name: str, spec: ModelSpec) -> ModelInfo:
    """Each backend's options say how available their model is; no backend is special here."""
    options = spec.options
    state = (
        options.availability()
        if isinstance(options, _KnowsAvailability)
        else Availability(available=True, detail=spec.backend)
    )
    return ModelInfo(
        name=name,
        backend=spec.backend,
        size_bytes=state.size_bytes,
        input_price=spec.card.input_price,
        output_price=spec.card.output_price,
        available=state.available,
        detail=state.detail,
    )


def human_size(size: int | None) -> str:
    if size is None:
        return "-"
    return f"{size / 1e6:.0f} MB" if size < 1e9 else f"{size / 1e9:.2f} GB"
