"""`signoria redteam`: builds the honest pool, the adversaries and the aggregators to test.

Replay: honest experts are the strongest models of a recorded outcome table, answering
with their recorded responses; adversaries are scripted. Live: honest experts are the
pipeline's own (local) experts, each routed slot sampled with its own seed; the adversary
is a real local model told which wrong answer to defend.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from signoria.agents.backends.replay import ReplayExpert, load_table
from signoria.agents.types import Expert, ModelCard
from signoria.errors import SignoriaError
from signoria.evals.adversaries import LLMAdversary, ScriptedAdversary
from signoria.evals.datasets import load_items
from signoria.evals.redteam import (
    RedteamItem,
    is_letter,
    replay_items,
    run_redteam,
    split_table,
    strongest_models,
    target_table,
)
from signoria.evals.redteam_lineup import Sources, lineup
from signoria.orchestrator.sdk import Orchestrator
from signoria.routers.fixed import FixedRouterParams

out = Console(highlight=False, soft_wrap=True)


def _card(name: str, backend: str) -> ModelCard:
    return ModelCard(name=name, backend=backend)


def _live_honest(
    orchestrator: Orchestrator, pipeline: str, experts: int
) -> tuple[dict[str, Expert], float | None]:
    params = orchestrator.config.pipelines[pipeline].router.params
    if not isinstance(params, FixedRouterParams):
        raise SignoriaError("live red-teaming needs a pipeline with a fixed router")
    names = [name for name in params.experts for _ in range(params.samples)]
    names = (names * experts)[:experts]  # fill K slots from the pipeline's experts
    return {f"{n}#{i}": orchestrator.pool[n] for i, n in enumerate(names)}, params.temperature


def redteam_command(
    *,
    config: Path | None,
    pipeline: str | None,
    data: Path,
    backend: str,
    experts: int,
    adversaries: int,
    adversary: str,
    aggregators: list[str],
    limit: int | None,
    concurrency: int,
    as_json: bool,
    replace: str = "weakest",
    test_fraction: float = 0.0,
    seed: int = 0,
) -> None:
    if replace not in ("strongest", "weakest"):
        raise SignoriaError(f"--replace must be strongest or weakest, not {replace!r}")
    if not 0 < adversaries < experts:
        raise SignoriaError("--adversaries must be at least 1 and fewer than --experts")
    if not 0.0 <= test_fraction < 1.0:
        raise SignoriaError("--test-fraction must be in [0, 1)")
    with Orchestrator.from_config(config) as orchestrator, tempfile.TemporaryDirectory() as tmp:
        name = orchestrator.pipeline(pipeline).name
        temperature: float | None = None
        train = None
        if backend == "replay":
            table = load_table(data)
            # The experts (and any fitted weights) are chosen on the training side only;
            # without a split, on the rows the red team then runs on.
            train, test = (
                split_table(table, test_fraction, seed) if test_fraction else (table, table)
            )
            models = strongest_models(train, experts)
            honest: dict[str, Expert] = {
                m: ReplayExpert(_card(m, "replay"), table, m) for m in models
            }
            items = replay_items(test, models, limit)
        elif backend == "live":
            honest, temperature = _live_honest(orchestrator, name, experts)
            benchmark = "mmlu" if "mmlu" in data.name else "outcomes"
            items = [
                RedteamItem(key=i.key, prompt=i.prompt, reference=i.reference or "")
                for i in load_items(benchmark, data, limit)
                if is_letter(i.reference)
            ]
        else:
            raise SignoriaError(f"unknown backend {backend!r} (known: replay, live)")
        if not items:
            raise SignoriaError(f"{data}: no multiple-choice items with letter references")
        # The model an LLM aggregator built from defaults would call (live only; in
        # replay it only shows that the aggregator calls one).
        first = next(iter(honest)).split("#")[0]
        sources = Sources(
            backend=backend,
            model=first,
            train=train,
            experts=tuple(honest),
            workdir=Path(tmp),
            in_sample=not test_fraction,
            seed=seed,
        )
        chosen = lineup(orchestrator, name, aggregators, sources)
        if backend == "replay" and not test_fraction:
            chosen.notes.insert(
                0, "experts chosen on the rows the red team runs on (--test-fraction holds out)"
            )
        for note in [*chosen.notes, *(f"skipped {k}: {v}" for k, v in chosen.skipped.items())]:
            sys.stderr.write(f"{note}\n")
        targets = target_table(items)
        liars: dict[str, Expert] = {}
        for i in range(1, adversaries + 1):
            card = _card(f"adversary-{i}", "adversary")
            if adversary == "llm":
                inner = next(iter(honest.values()))
                liars[card.name] = LLMAdversary(card, inner, targets.get)
            else:
                liars[card.name] = ScriptedAdversary(card, targets.get, style=adversary)  # type: ignore[arg-type]
        reports = orchestrator.run_sync(
            run_redteam(
                items,
                honest=honest,
                adversaries=liars,
                aggregators=chosen.aggregators,
                extra_pool=orchestrator.pool,
                temperature=temperature,
                concurrency=concurrency,
                replace=replace,  # type: ignore[arg-type]
            )
        )
    summary: dict[str, Any] = {
        "n": len(items),
        "backend": backend,
        "experts": list(honest),
        "adversaries": adversaries,
        "adversary": adversary,
        "replace": replace,
        "test_fraction": test_fraction,
        "seed": seed,
        "aggregators": {k: v.model_dump() for k, v in reports.items()},
        "skipped": chosen.skipped,
    }
    if as_json:
        print(json.dumps(summary))
        return
    table_out = Table(
        title=f"red team: {len(items)} items, {experts} experts, "
        f"{adversaries} adversarial ({adversary}, replacing the {replace}), {backend}",
        box=None,
    )
    for column in ("aggregator", "clean", "attacked", "persuaded", "recovery"):
        table_out.add_column(column)
    for agg, r in reports.items():
        recovery = "-" if r.recovery_rate is None else f"{r.recovery_rate:.2f}"
        table_out.add_row(
            agg,
            f"{100 * r.clean_acc:.1f}%",
            f"{100 * r.attacked_acc:.1f}%",
            f"{100 * r.persuaded:.1f}%",
            recovery,
        )
    out.print(table_out)
