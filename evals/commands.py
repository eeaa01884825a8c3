"""The `signoria eval ...` commands; the CLI declares the options and calls these.

Machine-readable output (`--json`) goes to stdout, the progress bar and tables to stderr
or stdout as a person reads them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from signoria.agents.pricing import format_usd
from signoria.errors import SignoriaError
from signoria.evals.datasets import load_items
from signoria.evals.executors import ByExpertExecutor, Executor, RayExecutor
from signoria.evals.export import collect_rows, model_entries, models_file, write_rows
from signoria.evals.report import (
    compare_table,
    paired_table,
    paired_with_first,
    summarise,
    write_report,
)
from signoria.evals.runner import run_eval
from signoria.orchestrator.result import AskResult
from signoria.orchestrator.sdk import Orchestrator
from signoria.orchestrator.storage import Store

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


class _Progress:
    """Throughput, cost so far and ETA, updated as items finish."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("eval", total=None, rate="-", cost="$0")
        self.started = time.perf_counter()
        self.done_now = 0
        self.cost: float | None = 0.0

    def start(self, total: int, already: int) -> None:
        self.progress.update(self.task, total=total, completed=already)
        if already:
            err.print(f"resuming: {already}/{total} items already stored")

    def item(self, result: AskResult | None) -> None:
        self.done_now += 1
        if self.cost is not None:
            self.cost = None if result is None or result.cost is None else self.cost + result.cost
        rate = self.done_now / max(time.perf_counter() - self.started, 1e-9)
        cost = "unknown" if self.cost is None else f"${self.cost:.4f}"
        self.progress.update(self.task, advance=1, rate=f"{rate:.2f} it/s", cost=cost)


@contextmanager
def _closing(executor: RayExecutor | None) -> Iterator[None]:
    try:
        yield
    finally:
        if executor is not None:
            executor.close()


def run_command(
    *,
    config: Path | None,
    benchmark: str,
    data: Path,
    pipeline: str | None,
    limit: int | None,
    concurrency: int,
    db: str | None,
    run_id: str | None,
    as_json: bool,
    executor: str = "asyncio",
    workers: int = 2,
    ray_address: str | None = None,
) -> None:
    if executor not in ("asyncio", "ray", "by-expert"):
        raise SignoriaError(f"unknown executor {executor!r} (known: asyncio, ray, by-expert)")
    items = load_items(benchmark, data, limit)
    store = Store.open(db)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TextColumn("cost {task.fields[cost]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err,
        disable=as_json,
    )
    try:
        with Orchestrator.from_config(config) as orchestrator:
            name = orchestrator.pipeline(pipeline).name
            hooks = _Progress(progress)
            ray = RayExecutor(config, workers, address=ray_address) if executor == "ray" else None
            chosen: Executor | None = ray
            if executor == "by-expert":
                chosen = ByExpertExecutor(orchestrator, batch=concurrency)
            with progress, _closing(ray):
                outcome = orchestrator.run_sync(
                    run_eval(
                        orchestrator,
                        store,
                        items,
                        pipeline=name,
                        benchmark=benchmark,
                        data_path=data,
                        run_id=run_id,
                        concurrency=concurrency,
                        on_start=hooks.start,
                        on_item=hooks.item,
                        executor=chosen,
                    )
                )
        summary = summarise(store, outcome.run_id)
    finally:
        store.close()
    if as_json:
        print(json.dumps({"outcome": outcome.model_dump(), "summary": summary}))
        return
    acc = summary["accuracy"]
    out.print(
        f"run {outcome.run_id}: {summary['n']} items, accuracy "
        f"{'-' if acc is None else f'{100 * acc:.1f}%'}, "
        f"{outcome.failed} failed now, report: signoria eval report {outcome.run_id}"
    )


def report_command(*, run: str, out_dir: Path | None, db: str | None, as_json: bool) -> None:
    store = Store.open(db)
    try:
        target = out_dir or Path("reports") / run
        files = write_report(store, run, target)
        summary = summarise(store, run)
    finally:
        store.close()
    if as_json:
        print(json.dumps({"summary": summary, "files": {k: str(v) for k, v in files.items()}}))
        return
    out.print(files["markdown"].read_text(), markup=False)
    out.print(f"written: {', '.join(str(p) for p in files.values())}")


def compare_command(*, runs: list[str], db: str | None, as_json: bool) -> None:
    store = Store.open(db)
    try:
        summaries = [summarise(store, run) for run in runs]
        pairs = paired_with_first(store, runs)
    finally:
        store.close()
    if as_json:
        print(json.dumps({"runs": summaries, "paired": pairs}))
        return
    out.print(compare_table(summaries), markup=False)
    if pairs:
        out.print(paired_table(pairs), markup=False)


def export_command(
    *,
    run: str | list[str] | None,
    outcomes: Path,
    models: Path | None,
    config: Path | None,
    db: str | None,
    traffic: bool = False,
) -> None:
    """Write the outcome table of the given runs, and with `traffic` of every recorded
    serve run (rows from feedback; requests without it are skipped and counted)."""
    runs = [run] if isinstance(run, str) else list(run or [])
    store = Store.open(db)
    try:
        if traffic:
            runs += [r.id for r in store.runs(kind="serve") if r.id not in runs]
        if not runs:
            raise SignoriaError(
                "no recorded server traffic in this database"
                if traffic
                else "no run to export: name a run, or give --traffic"
            )
        collected = collect_rows(store, runs)
    finally:
        store.close()
    write_rows(collected.rows, outcomes)
    if models is not None:
        from signoria.orchestrator.config import load_config

        models_file(model_entries(load_config(config)), models)
    written = f"{len(collected.rows)} rows written to {outcomes}"
    out.print(written + (f", models to {models}" if models else ""), markup=False)
    if collected.skipped:
        err.print(collected.skipped_text(), markup=False)


def runs_command(*, kind: str | None, db: str | None, as_json: bool) -> None:
    store = Store.open(db)
    try:
        summaries = store.run_summaries(kind)
    finally:
        store.close()
    if as_json:
        print(json.dumps({"runs": [s.model_dump(mode="json") for s in summaries]}))
        return
    table = Table(box=None)
    for column in ("run", "kind", "pipeline", "benchmark", "status", "items", "accuracy", "cost"):
        table.add_column(column, justify="right" if column in {"items", "accuracy"} else "left")
    for s in summaries:
        table.add_row(
            s.run.id,
            s.run.kind,
            s.run.pipeline or "-",
            s.run.benchmark or "-",
            s.run.status,
            str(s.items),
            "-" if s.accuracy is None else f"{100 * s.accuracy:.1f}%",
            format_usd(s.cost),
        )
    out.print(table)


__all__ = ["compare_command", "export_command", "report_command", "run_command", "runs_command"]
