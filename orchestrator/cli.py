"""`signoria`: the command line over the SDK.

`--json` prints exactly one JSON object on stdout, a failure included (`{"error": ...}`);
tables, traces and errors go where a person reads them. Every failure is one line on
stderr and a non-zero exit code (2 for a usage or config error, 1 otherwise).

This module imports typer and nothing of the product at module level: `signoria --help`,
`signoria <cmd> --help` and usage errors never pay for pydantic models, the pool or an ML
stack. Each command imports what it needs inside its body.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from signoria.errors import ConfigError, SignoriaError, UsageError
from signoria.orchestrator.cli_common import (
    Adversary,
    AnswerOption,
    Benchmark,
    CommandFailed,
    ConfigOption,
    DbOption,
    Executor,
    JsonOption,
    LimitOption,
    PipelineOption,
    RedteamBackend,
    Seats,
    console,
    fail,
    group,
)
from signoria.orchestrator.cli_keys import keys_app
from signoria.orchestrator.cli_route import route_app
from signoria.orchestrator.server.command import serve

if TYPE_CHECKING:
    from rich.table import Table

    from signoria.orchestrator.result import AskResult

app = group(
    "Route queries to local and API LLM experts and aggregate their answers.",
    name="signoria",
    pretty_exceptions_enable=False,
)
models_app = group("The expert pool.")
app.add_typer(models_app, name="models")
app.command()(serve)
app.add_typer(route_app, name="route")
app.add_typer(keys_app, name="keys")
eval_app = group("Benchmark runs: run, report, compare, export.")
app.add_typer(eval_app, name="eval")
runs_app = group("Runs recorded in the database.")
app.add_typer(runs_app, name="runs")
aggregator_app = group("Aggregators: fit the weights of learned ones.")
app.add_typer(aggregator_app, name="aggregator")


def render_trace(result: AskResult) -> Table:
    from rich.table import Table

    from signoria.agents.pricing import format_usd

    table = Table(title=f"pipeline {result.pipeline}", title_justify="left", box=None)
    for column in ("expert", "role", "seed", "in", "out", "latency", "cost", "error"):
        table.add_column(column, justify="right" if column in {"in", "out"} else "left")
    for call in result.calls:
        table.add_row(
            call.expert,
            call.role,
            "-" if call.seed is None else str(call.seed),
            str(call.tokens_in),
            str(call.tokens_out),
            f"{call.latency_s:.2f}s",
            format_usd(call.cost),
            call.error or "",
        )
    table.caption = f"total {result.latency_s:.2f}s, cost {format_usd(result.cost)}"
    table.caption_justify = "left"
    return table


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question to answer.")],
    pipeline: PipelineOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Answer QUESTION with a pipeline and show the trace of every expert call."""
    from signoria.orchestrator.pipeline import PipelineFailed
    from signoria.orchestrator.sdk import Orchestrator

    with Orchestrator.from_config(config) as orchestrator:
        try:
            result = orchestrator.ask(question, pipeline=pipeline)
        except PipelineFailed as exc:
            if exc.misconfigured:
                fail(exc.misconfigured, code=2, result=exc.result.summary())
            # The error line already names each failed call; the table adds what worked.
            if not as_json and any(call.error is None for call in exc.result.calls):
                console(stderr=True).print(render_trace(exc.result))
            fail(str(exc), result=exc.result.summary())
    if as_json:
        print(json.dumps(result.summary()))
        return
    console().print(result.answer, markup=False)
    console(stderr=True).print(render_trace(result))


@models_app.command("list")
def models_list(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Show every model of the pool: backend, size, price, local availability."""
    from rich.table import Table

    from signoria.agents.inventory import describe, human_size
    from signoria.orchestrator.config import load_config

    cfg = load_config(config)
    infos = [describe(name, spec) for name, spec in cfg.models.items()]
    if as_json:
        print(json.dumps({"models": [i.model_dump() for i in infos]}))
        return
    table = Table(box=None)
    for column in ("name", "backend", "size", "USD/1M in/out", "available", "source"):
        table.add_column(column, no_wrap=column != "source")
    for i in infos:
        price = " / ".join(
            "unknown" if p is None else f"{p:g}" for p in (i.input_price, i.output_price)
        )
        available = "yes" if i.available else "no"
        table.add_row(i.name, i.backend, human_size(i.size_bytes), price, available, i.detail)
    console().print(table)


@models_app.command("pull")
def models_pull(
    names: Annotated[list[str] | None, typer.Argument(help="Models (default: all local).")] = None,
    config: ConfigOption = None,
) -> None:
    """Assemble, download and verify the GGUF files of local models ahead of first use."""
    from signoria.orchestrator.sdk import Orchestrator

    with Orchestrator.from_config(config) as orchestrator:
        wanted = names or [n for n in orchestrator.pool if orchestrator.pool.backend(n).local]
        for name in wanted:
            expert: Any = orchestrator.pool[name]
            if not hasattr(expert, "model_path"):
                fail(f"model {name!r} has no local file to pull")
            console().print(f"{name}: {expert.model_path()}", markup=False)


@eval_app.command("run")
def eval_run(
    benchmark: Annotated[Benchmark, typer.Option(help="Kind of data set.")],
    data: Annotated[Path, typer.Option(help="JSONL file of the benchmark.")],
    pipeline: PipelineOption = None,
    limit: LimitOption = None,
    concurrency: Annotated[
        int, typer.Option(min=1, help="Items in flight (by-expert: items per batch).")
    ] = 1,
    db: DbOption = None,
    run_id: Annotated[str | None, typer.Option(help="Same id again resumes the run.")] = None,
    executor: Annotated[
        Executor,
        typer.Option(
            help="asyncio: this process; ray: Ray actors; by-expert: batches run expert by "
            "expert, each model loaded once per batch (Symbolic-MoE)."
        ),
    ] = Executor.asyncio,
    workers: Annotated[int, typer.Option(min=1, help="Ray actors (--executor ray).")] = 2,
    ray_address: Annotated[
        str | None, typer.Option(help="Existing Ray cluster, e.g. auto or ray://host:10001.")
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run a benchmark through a pipeline, storing every item as it finishes (resumable)."""
    from signoria.evals.commands import run_command

    run_command(
        config=config,
        benchmark=benchmark.value,
        data=data,
        pipeline=pipeline,
        limit=limit,
        concurrency=concurrency,
        db=db,
        run_id=run_id,
        as_json=as_json,
        executor=executor.value,
        workers=workers,
        ray_address=ray_address,
    )


@eval_app.command("report")
def eval_report(
    run: Annotated[str, typer.Argument(help="Run id.")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="Default: reports/RUN.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Accuracy with a 95% CI, cost, latency percentiles, call share; markdown, JSON, PNGs."""
    from signoria.evals.commands import report_command

    report_command(run=run, out_dir=out_dir, db=db, as_json=as_json)


@eval_app.command("compare")
def eval_compare(
    runs: Annotated[list[str], typer.Argument(help="Run ids.")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Put runs side by side."""
    from signoria.evals.commands import compare_command

    compare_command(runs=runs, db=db, as_json=as_json)


@eval_app.command("export")
def eval_export(
    outcomes: Annotated[Path, typer.Option(help="Routing-outcome table to write (JSONL).")],
    runs: Annotated[list[str] | None, typer.Argument(help="Run ids (eval or serve).")] = None,
    traffic: Annotated[
        bool, typer.Option("--traffic", help="Also every serve run: requests with feedback.")
    ] = False,
    models: Annotated[Path | None, typer.Option(help="Also write the models file.")] = None,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Write the per-item, per-model outcome table that routers train on.

    Served requests become rows through their feedback; those without are skipped."""
    from signoria.evals.commands import export_command

    export_command(
        run=runs, outcomes=outcomes, models=models, config=config, db=db, traffic=traffic
    )


@runs_app.command("list")
def runs_list(
    kind: Annotated[str | None, typer.Option(help="Only runs of this kind: eval or serve.")] = (
        None
    ),
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Runs in the database: status, items, accuracy, cost."""
    from signoria.evals.commands import runs_command

    runs_command(kind=kind, db=db, as_json=as_json)


@app.command()
def feedback(
    request_id: Annotated[str, typer.Argument(help="A served request's id (the response id).")],
    score: Annotated[float | None, typer.Option(help="How good its answer was, 0..1.")] = None,
    reference: Annotated[
        str | None, typer.Option(help="The right answer: scores every expert answer.")
    ] = None,
    comment: Annotated[str | None, typer.Option(help="Free text, kept with it.")] = None,
    task: Annotated[
        str | None, typer.Option(help="Task label for training (default: the pipeline).")
    ] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Score a recorded server request, or give its reference answer; latest wins."""
    from signoria.evals.feedback import feedback_command

    feedback_command(
        request_id=request_id,
        score=score,
        reference=reference,
        comment=comment,
        task=task,
        db=db,
        as_json=as_json,
    )


@app.command()
def redteam(
    data: Annotated[Path, typer.Option(help="Outcome table (replay) or MMLU/outcomes (live).")],
    pipeline: PipelineOption = None,
    backend: Annotated[RedteamBackend, typer.Option(help="Recorded answers or live models.")] = (
        RedteamBackend.replay
    ),
    experts: Annotated[int, typer.Option(min=2, help="Experts per item.")] = 5,
    adversaries: Annotated[int, typer.Option(min=1, help="How many of them lie.")] = 1,
    adversary: Annotated[Adversary, typer.Option(help="How the liars argue.")] = (
        Adversary.persuasive
    ),
    replace: Annotated[Seats, typer.Option(help="Seats the adversaries take.")] = Seats.weakest,
    aggregators: Annotated[
        list[str] | None,
        typer.Option("--aggregator", "-a", help="More aggregators (or pipelines) to test."),
    ] = None,
    limit: LimitOption = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Items in flight.")] = 16,
    test_fraction: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=0.99,
            help="Replay: choose experts (and fit learned weights) on the rest; run on this share.",
        ),
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the train/test split.")] = 0,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run the same items clean and with lying experts; compare naive and defended aggregators.

    `-a all` runs every registered aggregator (those it cannot run are listed with why)."""
    from signoria.evals.redteam_command import redteam_command

    redteam_command(
        config=config,
        pipeline=pipeline,
        data=data,
        backend=backend.value,
        experts=experts,
        adversaries=adversaries,
        adversary=adversary.value,
        aggregators=aggregators or [],
        limit=limit,
        concurrency=concurrency,
        replace=replace.value,
        test_fraction=test_fraction,
        seed=seed,
        as_json=as_json,
    )


@aggregator_app.command("fit")
def aggregator_fit(
    data: Annotated[Path, typer.Option(help="Outcome table (JSONL) with recorded responses.")],
    out: Annotated[Path, typer.Option(help="Where to write the vote-weights JSON.")],
    expert: Annotated[
        list[str] | None, typer.Option(help="Experts to weigh (default: the --top best).")
    ] = None,
    top: Annotated[int, typer.Option(min=1, help="How many of the best to weigh.")] = 5,
    test_fraction: Annotated[
        float, typer.Option(min=0.0, max=0.99, help="Share held out (never fitted on).")
    ] = 0.0,
    seed: Annotated[
        int, typer.Option(help="Seed of the split and the cross-validation folds.")
    ] = 0,
    answer: Annotated[AnswerOption, typer.Option(help="How answers are compared.")] = (
        AnswerOption.auto
    ),
    as_json: JsonOption = False,
) -> None:
    """Fit learned-vote weights (per expert and task) on the training side of a table."""
    from signoria.orchestrator.aggregators.vote_fit import fit_command

    fit_command(
        data=data,
        out=out,
        experts=expert or [],
        top=top,
        test_fraction=test_fraction,
        seed=seed,
        answer=answer.value,  # type: ignore[arg-type]
        as_json=as_json,
    )


def _report(
    message: str, kind: str, code: int, as_json: bool, detail: dict[str, Any] | None = None
) -> NoReturn:
    """The one way a failure leaves: a line on stderr, and under --json an object on stdout."""
    sys.stderr.write(f"error: {message}\n")
    if as_json:
        error = {"message": message, "type": kind, "exit_code": code}
        print(json.dumps({"error": error, **(detail or {})}))
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: known errors become one line and a non-zero exit."""
    args = sys.argv[1:] if argv is None else argv
    as_json = "--json" in args
    try:
        # Outside standalone mode click hands back an Exit's code instead of exiting.
        code = app(args=args, standalone_mode=False, prog_name="signoria")
    except typer.Exit as exc:
        code = exc.exit_code
    except CommandFailed as exc:
        _report(str(exc), "command_failed", exc.code, as_json, exc.detail)
    except (ConfigError, UsageError) as exc:
        _report(str(exc), type(exc).__name__, 2, as_json)
    except (SignoriaError, ValueError) as exc:
        _report(str(exc), type(exc).__name__, 1, as_json)
    except Exception as exc:
        # Usage errors come from the click that typer vendors; matched by shape, not class.
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            _report(exc.format_message(), "usage_error", int(exc.exit_code), as_json)
        if type(exc).__name__ == "Abort":
            sys.exit(130)
        raise
    sys.exit(code if isinstance(code, int) else 0)
