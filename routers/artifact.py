"""Train a router (and the baselines beside it) and save a self-contained artifact.

An artifact directory holds `config.json` (router, models with descriptions and prices,
trade-off, expected costs, seed, training data), `embeddings.npz` (the embedding cache,
keyed by text hash) and one folder of weights per router: the trained router and every
baseline, all fitted on the same rows so that `route eval` compares like with like.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from signoria.agents.types import ModelCard
from signoria.errors import SignoriaError, UsageError
from signoria.registry import validation_problem
from signoria.routers.data import RoutingTable
from signoria.routers.embedding import LIVE_CACHE, Embedder
from signoria.routers.registry import TRAINABLE, needs_features
from signoria.routers.trainable import RouterContext, TradeOff, TrainableRouter

BASELINES = ("random", "best-single", "cheapest", "knn", "mlp", "svm", "mf")
FORMAT = 1
MANIFEST = "config.json"


class Manifest(BaseModel):
    """`config.json` of an artifact: what was trained, on what, for which trade-off."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal[1] = 1
    router: str
    baselines: tuple[str, ...]
    models: tuple[str, ...]
    # Each model's card as the models file described it (no backend: a table's model).
    info: dict[str, ModelCard]
    trade_off: TradeOff
    # Mean training cost per model (USD per query) and the scale that normalises it.
    expected_cost: tuple[float, ...]
    cost_scale: float
    cost_estimated: bool
    seed: int
    trained_on: dict[str, Any] = Field(default_factory=dict)
    fit_seconds: dict[str, float] = Field(default_factory=dict)
    # The router's --option values as given (its weights folder holds the full config).
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("info", mode="before")
    @classmethod
    def _named_cards(cls, raw: Any) -> Any:
        # Stored without the name, which is already the key.
        if isinstance(raw, dict):
            return {
                m: ModelCard.from_entry(m, v) if isinstance(v, dict) else v for m, v in raw.items()
            }
        return raw


class ArtifactError(SignoriaError):
    pass


class OptionError(ArtifactError, UsageError):
    """A `--option` the router does not have, or a value its params model rejects:
    a usage error (exit 2), named by its key."""


def installed_baselines() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(baselines whose packages are installed, those that are not): a core install fits
    the ones that learn nothing and says which it skipped."""
    ready = tuple(b for b in BASELINES if TRAINABLE[b].installed())
    return ready, tuple(b for b in BASELINES if b not in ready)


def build(name: str, options: Mapping[str, Any] | None = None) -> TrainableRouter:
    """A fresh router; `options` set fields of its config model (e.g. the GraphRouter's
    `epochs` or `anchor_margin`), validated, so a wrong key or value is a clear error."""
    router: TrainableRouter = TRAINABLE.load(name)()
    if not options:
        return router
    config = getattr(router, "config", None)
    if not isinstance(config, BaseModel):
        raise OptionError(f"router {name!r} takes no options")
    fields = type(config).model_fields
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise OptionError(
            f"router {name!r} has no option {', '.join(unknown)} (known: {', '.join(fields)})"
        )
    try:
        router.config = type(config).model_validate({**config.model_dump(), **options})  # type: ignore[attr-defined]
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise OptionError(f"router {name!r} option {where}: {problem['msg']}") from None
    return router


def train_artifact(
    name: str,
    table: RoutingTable,
    trade_off: TradeOff,
    out: Path,
    *,
    seed: int = 0,
    source: dict[str, Any] | None = None,
    baselines: tuple[str, ...] = BASELINES,
    options: Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """Fit `name` and the baselines on `table`; returns the seconds each fit took."""
    ctx = RouterContext.from_table(table, trade_off, seed=seed)
    fitted = list(dict.fromkeys((name, *baselines)))
    if any(needs_features(r) for r in fitted):
        ctx.features(table.queries)  # embed once, shared by every router below
    timings: dict[str, float] = {}
    out.mkdir(parents=True, exist_ok=True)
    for router_name in fitted:
        router = build(router_name, options if router_name == name else None)
        t0 = time.perf_counter()
        np.random.seed(seed)
        router.fit(table, ctx)
        timings[router_name] = time.perf_counter() - t0
        folder = out / "routers" / router_name
        folder.mkdir(parents=True, exist_ok=True)
        router.save(folder)
    ctx.embedder.save(out / "embeddings.npz")
    manifest = Manifest(
        router=name,
        baselines=tuple(b for b in baselines if b != name),
        models=table.models,
        info={m: table.info[m] for m in table.models},
        trade_off=trade_off,
        expected_cost=tuple(ctx.expected_cost.tolist()),
        cost_scale=ctx.cost_scale,
        cost_estimated=table.cost_estimated,
        seed=seed,
        trained_on={**(source or {}), "rows": len(table)},
        fit_seconds=timings,
        options=dict(options or {}),
    )
    (out / MANIFEST).write_text(
        manifest.model_dump_json(indent=2, exclude={"info": {"__all__": {"name"}}})
    )
    return timings


def read_manifest(directory: Path) -> Manifest:
    try:
        raw = json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{directory} is not a router artifact (no {MANIFEST})") from None
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{directory / MANIFEST}: not valid JSON ({exc.msg})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        found = raw.get("format") if isinstance(raw, dict) else None
        raise ArtifactError(f"{directory}: artifact format {found} not supported")
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        where, message = validation_problem(exc)
        raise ArtifactError(f"{directory / MANIFEST}: {where}: {message}") from None


def load_context(directory: Path, *, live: bool = False) -> RouterContext:
    """The context every router of an artifact shares, with its embedding cache (`live`:
    serving traffic, so the queries it embeds are kept only up to `LIVE_CACHE`)."""
    manifest = read_manifest(directory)
    return RouterContext(
        models=manifest.models,
        info=dict(manifest.info),
        trade_off=manifest.trade_off,
        expected_cost=np.asarray(manifest.expected_cost, dtype=float),
        cost_scale=manifest.cost_scale,
        embedder=Embedder.load(directory / "embeddings.npz", keep_new=LIVE_CACHE if live else None),
        seed=manifest.seed,
    )


def load_router(directory: Path, name: str, ctx: RouterContext) -> TrainableRouter:
    folder = directory / "routers" / name
    if not folder.is_dir():
        raise ArtifactError(f"{directory} holds no router {name!r}")
    router = build(name)
    router.load(folder, ctx)
    return router


def load_artifact(
    directory: Path, name: str | None = None, *, live: bool = False
) -> tuple[TrainableRouter, RouterContext]:
    """The artifact's router (or one of its baselines, by name) and its context."""
    ctx = load_context(directory, live=live)
    return load_router(directory, name or read_manifest(directory).router, ctx), ctx
