"""`signoria`: the command line over the SDK.

`--json` prints exactly one JSON object on stdout; tables, traces and errors go where a
person reads them. Every failure is one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from agents.errors import SignoriaError
from agents.inventory import describe, human_size
from agents.pricing import format_usd
from orchestrator.config import ConfigError, load_config
from orchestrator.pipeline import PipelineFailed
from orchestrator.result import AskResult
from orchestrator.server.command import serve

app = typer.Typer(
    name="signoria",
    help="Route queries to local and API LLM experts and aggregate their answers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
models_app = typer.Typer(help="The expert pool.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.command()(serve)
route_app = typer.Typer(help="Learned routers: train and evaluate.", no_args_is_help=True)
app.add_typer(route_app, name="route")
eval_app = typer.Typer(help="Benchmark runs: run, report, compare, export.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Config YAML (default: $SIGNORIA_CONFIG or embedded)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: $SIGNORIA_DB or SQLite in SIGNORIA_HOME)."),
]


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"error: {message}", markup=False)
    raise typer.Exit(code)


def render_trace(result: AskResult) -> Table:
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
    pipeline: Annotated[str | None, typer.Option("--pipeline", "-p")] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Answer QUESTION with a pipeline and show the trace of every expert call."""
    from orchestrator.sdk import Orchestrator

    with Orchestrator.from_config(config) as orchestrator:
        try:
            result = orchestrator.ask(question, pipeline=pipeline)
        except PipelineFailed as exc:
            if not as_json:
                err.print(render_trace(exc.result))
            fail(str(exc))
    if as_json:
        print(json.dumps(result.summary()))
        return
    out.print(result.answer, markup=False)
    err.print(render_trace(result))


@models_app.command("list")
def models_list(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Show every model of the pool: backend, size, price, local availability."""
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
        table.add_row(
            i.name,
            i.backend,
            human_size(i.size_bytes),
            price,
            "yes" if i.available else "no",
            i.detail,
        )
    out.print(table)


@models_app.command("pull")
def models_pull(
    names: Annotated[list[str] | None, typer.Argument(help="Models (default: all local).")] = None,
    config: ConfigOption = None,
) -> None:
    """Assemble, download and verify the GGUF files of local models ahead of first use."""
    from orchestrator.sdk import Orchestrator

    with Orchestrator.from_config(config) as orchestrator:
        wanted = names or [n for n in orchestrator.pool if orchestrator.pool.backend(n).local]
        for name in wanted:
            expert: Any = orchestrator.pool[name]
            if not hasattr(expert, "model_path"):
                fail(f"model {name!r} has no local file to pull")
            out.print(f"{name}: {expert.model_path()}", markup=False)


@route_app.command("train")
def route_train(
    router: Annotated[str, typer.Option(help="graph, skills, knn, mlp, svm, mf, ...")],
    train: Annotated[Path, typer.Option(help="Routing-outcome table (JSONL)")],
    models: Annotated[Path, typer.Option(help="Models file (JSON)")],
    out_dir: Annotated[Path, typer.Option("--out", help="Artifact directory")],
    scenario: Annotated[str | None, typer.Option(help="performance, balanced or cost")] = None,
    alpha: Annotated[float | None, typer.Option(help="Weight of quality")] = None,
    beta: Annotated[float | None, typer.Option(help="Weight of normalised cost")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    limit: Annotated[int | None, typer.Option(min=1, help="First N rows only")] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(help="KEY=VALUE for the router's config, e.g. anchor_margin=0.2 (graph)"),
    ] = None,
) -> None:
    """Train a router and the baselines on an outcome table; save a self-contained artifact."""
    from routers.commands import train_command

    train_command(
        router=router,
        train=train,
        models=models,
        out_dir=out_dir,
        scenario=scenario,
        alpha=alpha,
        beta=beta,
        seed=seed,
        limit=limit,
        options=option,
    )


@route_app.command("eval")
def route_eval(
    artifact: Annotated[Path, typer.Option(help="Artifact directory from route train")],
    test: Annotated[Path, typer.Option(help="Held-out outcome table (JSONL)")],
    models: Annotated[Path | None, typer.Option(help="Models file (for unseen models)")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Cost-quality plot (PNG)")] = None,
    limit: Annotated[int | None, typer.Option(min=1)] = None,
    as_json: JsonOption = False,
) -> None:
    """Router and every baseline on the same held-out rows: quality, cost, call share."""
    from routers.commands import eval_command

    eval_command(
        artifact=artifact, test=test, models=models, as_json=as_json, plot_path=plot, limit=limit
    )


# The eval commands import `evals` lazily: the one import against the layer direction.


@eval_app.command("run")
def eval_run(
    benchmark: Annotated[str, typer.Option(help="gsm8k, mmlu or outcomes")],
    data: Annotated[Path, typer.Option(help="JSONL file of the benchmark")],
    pipeline: Annotated[str | None, typer.Option("--pipeline", "-p")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="First N items only")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Items in flight")] = 1,
    db: DbOption = None,
    run_id: Annotated[str | None, typer.Option(help="Same id again resumes the run")] = None,
    executor: Annotated[str, typer.Option(help="asyncio (this process) or ray")] = "asyncio",
    workers: Annotated[int, typer.Option(min=1, help="Ray actors (--executor ray)")] = 2,
    ray_address: Annotated[
        str | None, typer.Option(help="Existing Ray cluster, e.g. auto or ray://host:10001")
    ] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run a benchmark through a pipeline, storing every item as it finishes (resumable)."""
    from evals.commands import run_command

    run_command(
        config=config,
        benchmark=benchmark,
        data=data,
        pipeline=pipeline,
        limit=limit,
        concurrency=concurrency,
        db=db,
        run_id=run_id,
        as_json=as_json,
        executor=executor,
        workers=workers,
        ray_address=ray_address,
    )


@eval_app.command("report")
def eval_report(
    run: Annotated[str, typer.Argument(help="Run id")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="Default: reports/RUN")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Accuracy with a 95% CI, cost, latency percentiles, call share; markdown, JSON, PNGs."""
    from evals.commands import report_command

    report_command(run=run, out_dir=out_dir, db=db, as_json=as_json)


@eval_app.command("compare")
def eval_compare(
    runs: Annotated[list[str], typer.Argument(help="Run ids")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Put runs side by side."""
    from evals.commands import compare_command

    compare_command(runs=runs, db=db, as_json=as_json)


@eval_app.command("export")
def eval_export(
    run: Annotated[str, typer.Argument(help="Run id")],
    outcomes: Annotated[Path, typer.Option(help="Routing-outcome table to write (JSONL)")],
    models: Annotated[Path | None, typer.Option(help="Also write the models file")] = None,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Write the per-item, per-model outcome table that routers train on."""
    from evals.commands import export_command

    export_command(run=run, outcomes=outcomes, models=models, config=config, db=db)


@app.command()
def redteam(
    data: Annotated[Path, typer.Option(help="Outcome table (replay) or MMLU/outcomes (live)")],
    pipeline: Annotated[str | None, typer.Option("--pipeline", "-p")] = None,
    backend: Annotated[str, typer.Option(help="replay or live")] = "replay",
    experts: Annotated[int, typer.Option(min=2, help="Experts per item")] = 5,
    adversaries: Annotated[int, typer.Option(min=1, help="How many of them lie")] = 1,
    adversary: Annotated[str, typer.Option(help="persuasive, subtle or llm")] = "persuasive",
    replace: Annotated[
        str, typer.Option(help="Seats the adversaries take: weakest or strongest")
    ] = "weakest",
    aggregators: Annotated[
        list[str] | None, typer.Option("--aggregator", "-a", help="More aggregators to test")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1)] = None,
    concurrency: Annotated[int, typer.Option(min=1)] = 16,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run the same items clean and with lying experts; compare naive and defended aggregators."""
    from evals.redteam_command import redteam_command

    redteam_command(
        config=config,
        pipeline=pipeline,
        data=data,
        backend=backend,
        experts=experts,
        adversaries=adversaries,
        adversary=adversary,
        aggregators=aggregators or [],
        limit=limit,
        concurrency=concurrency,
        replace=replace,
        as_json=as_json,
    )


def main(argv: list[str] | None = None) -> None:
    """Console entry point: known errors become one line and a non-zero exit."""
    try:
        # Outside standalone mode click hands back an Exit's code instead of exiting.
        code = app(args=argv, standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
    except ConfigError as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(2)
    except (SignoriaError, ValueError) as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(1)
    except Exception as exc:
        # Usage errors come from the click that typer vendors; matched by shape, not class.
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            err.print(f"error: {exc.format_message()}", markup=False)
            sys.exit(exc.exit_code)
        if type(exc).__name__ == "Abort":
            sys.exit(130)
        raise
    sys.exit(code if isinstance(code, int) else 0)
