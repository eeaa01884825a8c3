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
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError

from agents.errors import SignoriaError
from routers.data import ModelEntry, RoutingTable
from routers.embedding import Embedder
from routers.learned import RouterContext, TradeOff, TrainableRouter
from routers.registry import TRAINABLE

BASELINES = ("random", "best-single", "cheapest", "knn", "mlp", "svm", "mf")
FORMAT = 1


class ArtifactError(SignoriaError):
    pass


def build(name: str, options: Mapping[str, Any] | None = None) -> TrainableRouter:
    """A fresh router; `options` set fields of its config model (e.g. the GraphRouter's
    `epochs` or `anchor_margin`), validated, so a wrong key or value is a clear error."""
    router: TrainableRouter = TRAINABLE[name]()
    if not options:
        return router
    config = getattr(router, "config", None)
    if not isinstance(config, BaseModel):
        raise ArtifactError(f"router {name!r} takes no options")
    fields = type(config).model_fields
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise ArtifactError(
            f"router {name!r} has no option {', '.join(unknown)} (known: {', '.join(fields)})"
        )
    try:
        router.config = type(config).model_validate({**config.model_dump(), **options})  # type: ignore[attr-defined]
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise ArtifactError(f"router {name!r} option {where}: {problem['msg']}") from None
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
    ctx.features(table.queries)  # embed once, shared by every router below
    timings: dict[str, float] = {}
    out.mkdir(parents=True, exist_ok=True)
    for router_name in dict.fromkeys((name, *baselines)):
        router = build(router_name, options if router_name == name else None)
        t0 = time.perf_counter()
        np.random.seed(seed)
        router.fit(table, ctx)
        timings[router_name] = time.perf_counter() - t0
        folder = out / "routers" / router_name
        folder.mkdir(parents=True, exist_ok=True)
        router.save(folder)
    ctx.embedder.save(out / "embeddings.npz")
    config = {
        "format": FORMAT,
        "router": name,
        "baselines": [b for b in baselines if b != name],
        "models": list(table.models),
        "info": {m: table.info[m].model_dump() for m in table.models},
        "trade_off": trade_off.model_dump(),
        "expected_cost": ctx.expected_cost.tolist(),
        "cost_scale": ctx.cost_scale,
        "cost_estimated": table.cost_estimated,
        "seed": seed,
        "trained_on": {**(source or {}), "rows": len(table)},
        "fit_seconds": timings,
    }
    (out / "config.json").write_text(json.dumps(config, indent=2))
    return timings


def read_config(directory: Path) -> dict[str, Any]:
    try:
        config: dict[str, Any] = json.loads((directory / "config.json").read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{directory} is not a router artifact (no config.json)") from None
    if config.get("format") != FORMAT:
        raise ArtifactError(f"{directory}: artifact format {config.get('format')} not supported")
    return config


def load_context(directory: Path) -> RouterContext:
    """The context every router of an artifact shares, with its embedding cache."""
    config = read_config(directory)
    return RouterContext(
        models=tuple(config["models"]),
        info={m: ModelEntry.model_validate(v) for m, v in config["info"].items()},
        trade_off=TradeOff.model_validate(config["trade_off"]),
        expected_cost=np.asarray(config["expected_cost"], dtype=float),
        cost_scale=float(config["cost_scale"]),
        embedder=Embedder.load(directory / "embeddings.npz"),
        seed=int(config["seed"]),
    )


def load_router(directory: Path, name: str, ctx: RouterContext) -> TrainableRouter:
    folder = directory / "routers" / name
    if not folder.is_dir():
        raise ArtifactError(f"{directory} holds no router {name!r}")
    router = build(name)
    router.load(folder, ctx)
    return router


def load_artifact(
    directory: Path, name: str | None = None
) -> tuple[TrainableRouter, RouterContext]:
    """The artifact's router (or one of its baselines, by name) and its context."""
    ctx = load_context(directory)
    return load_router(directory, name or read_config(directory)["router"], ctx), ctx
