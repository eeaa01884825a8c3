"""`signoria route train --router router-r1`: the command's checks, then `train_policy`."""

from __future__ import annotations

import sys
from contextlib import ExitStack, redirect_stdout
from pathlib import Path
from typing import Any

from rich.console import Console

from signoria.errors import UsageError
from signoria.orchestrator.config import home
from signoria.orchestrator.router_r1.settings import TrainSettings
from signoria.orchestrator.router_r1.task import RoutingTask
from signoria.routers.data import load_models, load_table

err = Console(stderr=True, highlight=False, soft_wrap=True)


def train_command(
    *,
    train: Path,
    models: Path,
    out_dir: Path,
    seed: int,
    limit: int | None,
    options: dict[str, Any],
    trade_off_given: bool,
    quiet: bool,
) -> None:
    if trade_off_given:
        raise UsageError(
            "router-r1 trades quality against cost in its reward: give "
            "--option cost_weight=W (0..1) instead of --scenario/--alpha/--beta"
        )
    settings = TrainSettings.parse(options)
    from signoria.orchestrator.router_r1.training import check_installed, routing_task

    check_installed(settings)  # a missing extra fails here, before the table loads
    cards = load_models(models)
    table = load_table(train, cards, limit=limit)
    with ExitStack() as stack:
        live = None
        if settings.live_config is not None:
            from signoria.orchestrator.router_r1.live import live_experts

            live, close = live_experts(settings.live_config, settings.experts or table.models)
            stack.callback(close)
        task = routing_task(table, cards, settings, live)
        _train(task, settings, train, models, out_dir, seed, quiet)


def _train(
    task: RoutingTask,
    settings: TrainSettings,
    train: Path,
    models: Path,
    out_dir: Path,
    seed: int,
    quiet: bool,
) -> None:
    from signoria.orchestrator.router_r1.training import train_policy

    if not quiet:
        err.print(
            f"training router-r1 from {settings.policy} on {len(task.rows)} rows: "
            f"{settings.warmup_steps} warm-up and {settings.steps} GRPO steps",
            markup=False,
        )
    # The trainers print their step logs; stdout carries only the artifact's path, so a
    # script can take it (the same figures are in the artifact's train_log.jsonl).
    with redirect_stdout(sys.stderr):
        manifest = train_policy(
            task,
            settings,
            out_dir,
            seed=seed,
            cache_dir=home() / "models",
            source={"train": str(train), "models": str(models)},
        )
    if not quiet:
        err.print(f"trained in {manifest.seconds:.0f}s; serve it with {out_dir / 'pipeline.yaml'}")
    print(str(out_dir))
