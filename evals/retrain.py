"""`signoria route retrain`: train a router on recorded traffic with feedback, and swap it
in only if it beats the deployed one on traffic neither of them was trained on.

Order matters, so it is fixed here: (1) export every serve run's requests that have
feedback (`evals/traffic.py`); (2) carve the held-out side by a hash of (seed, query)
*before anything else looks at the rows*, so no choice is made on it and a request (and
every repeat of its query) lands on the same side at every retrain; (3) fit the new
router (and the usual baselines) on the rest, for the deployed artifact's own trade-off;
(4) score the new and the deployed router on the held-out rows with one reward (the
deployed artifact's trade-off and cost scale: the objective the operator deployed); (5)
copy the new artifact over the deployed directory, the old one kept as `<dir>.previous`,
only when its held-out reward is strictly higher, and never with `dry_run`.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from signoria.agents.types import ModelCard
from signoria.errors import SignoriaError
from signoria.evals.export import collect_rows
from signoria.orchestrator.storage import Store
from signoria.routers.artifact import (
    installed_baselines,
    load_context,
    load_router,
    read_manifest,
    train_artifact,
)
from signoria.routers.data import (
    RoutingDataError,
    RoutingTable,
    Row,
    build_table,
    in_test_split,
    load_models,
)
from signoria.routers.evaluate import aligned_utilities, extended_context
from signoria.routers.metrics import summarise

# Below these, a held-out comparison says nothing and a fit learns noise.
MIN_TRAIN_ROWS = 10
MIN_TEST_ROWS = 5


class TooLittleTraffic(SignoriaError):
    pass


def _complete(rows: Sequence[Row], models: tuple[str, ...]) -> tuple[Row, ...]:
    """Rows with an outcome for every model: what dense routing tables are made of."""
    return tuple(r for r in rows if all(m in r.outcomes for m in models))


def traffic_tables(
    rows: Sequence[dict[str, Any]],
    info: Mapping[str, ModelCard],
    *,
    test_fraction: float,
    seed: int,
) -> tuple[RoutingTable, RoutingTable]:
    """(train, held-out) tables over the models the training side's traffic called."""
    parsed = [Row.model_validate(r) for r in rows]
    # `RoutingTable.split`'s rule, applied to the raw rows before any table is built, and
    # keyed by the query rather than the request id: a query asked twice (traffic repeats
    # itself) lands on one side only, so the held-out side never tests on a training
    # query, and the split does not change with the random ids the requests happened to get.
    test_rows = [r for r in parsed if in_test_split(r.query, test_fraction, seed)]
    train_rows = [r for r in parsed if not in_test_split(r.query, test_fraction, seed)]
    models = tuple(sorted({m for r in train_rows for m in r.outcomes}))
    missing = [m for m in models if m not in info]
    if missing:
        raise RoutingDataError(
            f"no description or prices for {', '.join(missing)}, which the traffic called; "
            "pass --models with an entry for each"
        )
    train, test = _complete(train_rows, models), _complete(test_rows, models)
    if len(train) < MIN_TRAIN_ROWS or len(test) < MIN_TEST_ROWS:
        raise TooLittleTraffic(
            f"too little labelled traffic: {len(train)} training and {len(test)} held-out "
            f"requests with an outcome for every model ({', '.join(models) or 'none'}); "
            f"need {MIN_TRAIN_ROWS} and {MIN_TEST_ROWS}: give feedback on more requests"
        )
    return build_table(train, models, dict(info)), build_table(test, models, dict(info))


def held_out_report(artifact: Path, test: RoutingTable, reward: np.ndarray) -> dict[str, Any]:
    """Quality, cost, reward and call share of an artifact's router on `test`."""
    manifest = read_manifest(artifact)
    ctx = load_context(artifact)
    router = load_router(artifact, manifest.router, ctx)
    utilities = aligned_utilities(router, ctx, test, dict(test.info))
    if not np.isfinite(utilities).any(axis=1).all():
        raise SignoriaError(
            f"{artifact}: its router knows none of the traffic's models "
            f"({', '.join(test.models)}); it cannot be compared on this traffic"
        )
    return {"router": manifest.router, **summarise(test, np.argmax(utilities, axis=1), reward)}


def _swap_in(new: Path, deployed: Path) -> Path:
    """Copy `new` over `deployed`, keeping the old one as `<deployed>.previous`; the copy
    is staged beside it first, so `deployed` is never a half-written directory."""
    previous = deployed.with_name(deployed.name + ".previous")
    staging = deployed.with_name(deployed.name + ".incoming")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(new, staging)
    shutil.rmtree(previous, ignore_errors=True)
    deployed.rename(previous)
    staging.rename(deployed)
    return previous


def retrain(
    *,
    db: str | None,
    router: str,
    deployed: Path,
    out: Path,
    test_fraction: float = 0.3,
    seed: int = 0,
    models: Path | None = None,
    options: Mapping[str, Any] | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Export, split, train, compare and maybe swap; returns everything it measured."""
    if out.resolve() == deployed.resolve():
        raise SignoriaError("--out must differ from --deployed: the old artifact is compared")
    if out.exists() and any(out.iterdir()):
        # Fitting into an old artifact would leave its other routers' weights beside the new.
        raise SignoriaError(f"--out {out} exists and is not empty; give a new directory")
    manifest = read_manifest(deployed)
    info = load_models(models) if models else dict(manifest.info)
    store = Store.open(db)
    try:
        runs = [r.id for r in store.runs(kind="serve")]
        collected = collect_rows(store, runs)
    finally:
        store.close()
    train, test = traffic_tables(collected.rows, info, test_fraction=test_fraction, seed=seed)
    baselines, _ = installed_baselines()
    train_artifact(
        router,
        train,
        manifest.trade_off,
        out,
        seed=seed,
        source={"traffic": runs, "test_fraction": test_fraction, "split_seed": seed},
        baselines=baselines,
        options=options,
    )
    deployed_ctx = load_context(deployed)
    reward = extended_context(deployed_ctx, test.models, dict(test.info)).reward(test)
    new_report = held_out_report(out, test, reward)
    old_report = held_out_report(deployed, test, reward)
    better = new_report["reward"] > old_report["reward"]
    previous = _swap_in(out, deployed) if better and not dry_run else None
    return {
        "rows": {
            "labelled": len(collected.rows),
            "skipped": dict(collected.skipped),
            "train": len(train),
            "held_out": len(test),
        },
        "models": list(test.models),
        "trade_off": manifest.trade_off.model_dump(),
        "cost_estimated": test.cost_estimated,
        "new": new_report,
        "deployed": old_report,
        "oracle": summarise(test, np.argmax(reward, axis=1), reward),
        "better": better,
        "swapped": previous is not None,
        "artifact": str(out),
        "deployed_path": str(deployed),
        "previous": None if previous is None else str(previous),
    }


def print_report(report: dict[str, Any], *, as_json: bool) -> None:
    """One JSON object, or a few lines a person reads."""
    if as_json:
        print(json.dumps(report))
        return
    rows = report["rows"]
    print(
        f"traffic: {rows['labelled']} labelled requests, {rows['train']} to train on, "
        f"{rows['held_out']} held out; models {', '.join(report['models'])}"
    )
    for name in ("new", "deployed", "oracle"):
        r = report[name]
        cost = "null" if r["cost"] is None else f"{r['cost']:.4f}"
        label = f"{name} ({r['router']})" if "router" in r else name
        print(f"  {label:<24} reward {r['reward']:.4f}  quality {r['quality']:.4f}  cost {cost}")
    if report["swapped"]:
        print(f"swapped in: {report['deployed_path']} (old kept at {report['previous']})")
    elif report["better"]:
        print(f"better on held-out reward; --dry-run, so {report['deployed_path']} is unchanged")
    else:
        print(f"not better on held-out reward: {report['deployed_path']} is unchanged")
