"""What `signoria models list` shows: each model's size, price and local availability."""

from __future__ import annotations

import os

from pydantic import BaseModel

from agents.embedded import EMBEDDED, is_installed
from agents.pool import ModelSpec
from agents.sources import EmbeddedSource, HubSource, PathSource


class ModelInfo(BaseModel):
    name: str
    backend: str
    size_bytes: int | None
    input_price: float | None
    output_price: float | None
    available: bool
    detail: str


def _local_file(options: object) -> tuple[int | None, bool, str]:
    source = getattr(options, "source", None)
    if isinstance(source, EmbeddedSource):
        model = EMBEDDED.get(source.embedded)
        if model is None:
            return None, False, f"unknown embedded model {source.embedded!r}"
        ok = is_installed(model)
        how = "embedded" if ok else f"missing package {model.distributions[0]}"
        return model.size, ok, how
    if isinstance(source, PathSource):
        path = source.path.expanduser()
        return (
            (path.stat().st_size, True, str(path))
            if path.is_file()
            else (None, False, f"not found: {path}")
        )
    if isinstance(source, HubSource):
        return None, False, f"hub {source.repo}/{source.file} (`signoria models pull`)"
    return None, False, "no local file"


def describe(name: str, spec: ModelSpec) -> ModelInfo:
    if spec.backend == "llamacpp":
        size, available, detail = _local_file(spec.options)
    elif spec.backend == "litellm":
        env = getattr(spec.options, "api_key_env", None)
        available = env is None or bool(os.environ.get(env))
        size = None
        detail = getattr(spec.options, "model", "") + ("" if available else f" (${env} not set)")
    else:
        size, available, detail = None, True, spec.backend
    return ModelInfo(
        name=name,
        backend=spec.backend,
        size_bytes=size,
        input_price=spec.input_price,
        output_price=spec.output_price,
        available=available,
        detail=detail,
    )


def human_size(size: int | None) -> str:
    if size is None:
        return "-"
    return f"{size / 1e6:.0f} MB" if size < 1e9 else f"{size / 1e9:.2f} GB"


__all__ = ["ModelInfo", "describe", "human_size"]
