"""`signoria route ...`: train, evaluate, list and retrain routers; answer-aware cascades.

Imports typer and nothing of the product at module level (see cli.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from signoria.orchestrator.cli_common import (
    DbOption,
    JsonOption,
    LimitOption,
    QuietOption,
    group,
)

route_app = group("Learned routers: train, evaluate, list.")
# Static, so `--help` imports no registry; tests/test_routers.py checks it names them all.
TRAINABLE_HELP = (
    "Trainable router: graph, skills, cluster, threshold, pareto, cascade, router-r1 (an LLM "
    "policy, GRPO), or a baseline: random, best-single, cheapest, knn, mlp, svm, mf "
    "(`signoria route list`)."
)


@route_app.command("train")
def route_train(
    router: Annotated[str, typer.Option(help=TRAINABLE_HELP)],
    train: Annotated[Path, typer.Option(help="Routing-outcome table (JSONL).")],
    models: Annotated[Path, typer.Option(help="Models file (JSON): descriptions, prices.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Artifact directory to write.")],
    scenario: Annotated[
        str | None, typer.Option(help="Trade-off: performance, balanced or cost.")
    ] = None,
    alpha: Annotated[float | None, typer.Option(help="Weight of quality (with --beta).")] = None,
    beta: Annotated[float | None, typer.Option(help="Weight of normalised cost.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the fit (and of random).")] = 0,
    limit: LimitOption = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            help="KEY=VALUE for the router's params, e.g. share=0.3 (threshold), "
            "budget_usd=0.001 (pareto), threshold=0.6 (cascade), anchor_margin=0.2 (graph)."
        ),
    ] = None,
    quiet: QuietOption = False,
) -> None:
    """Train a router and the baselines on an outcome table; save a self-contained artifact.

    `--router router-r1` trains an LLM policy with GRPO instead (extra `rl`): its settings
    are options, e.g. `--option policy=smollm2-135m --option steps=40 --option
    cost_weight=0.2` (docs/routers.md lists them)."""
    if router == "router-r1":
        from signoria.orchestrator.router_r1.commands import train_command as train_r1
        from signoria.routers.commands import parse_options

        train_r1(
            train=train,
            models=models,
            out_dir=out_dir,
            seed=seed,
            limit=limit,
            options=parse_options(option or []),
            trade_off_given=scenario is not None or alpha is not None or beta is not None,
            quiet=quiet,
        )
        return
    from signoria.routers.commands import train_command

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
        quiet=quiet,
    )


@route_app.command("eval")
def route_eval(
    artifact: Annotated[Path, typer.Option(help="Artifact directory from route train.")],
    test: Annotated[Path, typer.Option(help="Held-out outcome table (JSONL).")],
    models: Annotated[Path | None, typer.Option(help="Models file (for unseen models).")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Cost-quality plot (PNG).")] = None,
    limit: LimitOption = None,
    router: Annotated[
        str | None, typer.Option(help="Which router of the artifact to report (default: its own).")
    ] = None,
    sweep: Annotated[
        bool, typer.Option("--sweep", help="Whole cost-quality curves of every router with a knob.")
    ] = False,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Router and every baseline on the same held-out rows: quality, cost, call share."""
    from signoria.routers.commands import eval_command

    eval_command(
        artifact=artifact,
        test=test,
        models=models,
        as_json=as_json,
        plot_path=plot,
        limit=limit,
        router=router,
        with_sweep=sweep,
        quiet=quiet,
    )


@route_app.command("list")
def route_list(as_json: JsonOption = False) -> None:
    """Every router: live ones a pipeline names, trainable ones `route train` fits (with
    the knob `route eval --sweep` moves)."""
    from signoria.routers.commands import listing

    routers: dict[str, dict[str, dict[str, Any]]] = listing()
    # Trained by `route cascade train` (it reads answers, so it is not a query router).
    routers["answer-aware"] = {
        "answer-cascade": {"extra": None, "sweep": "value_usd", "installed": True}
    }
    # Trained by `route train --router router-r1`: an LLM policy, served as an aggregator.
    routers["policy"] = {
        "router-r1": {"extra": "rl", "sweep": "cost_weight", "installed": _rl_installed()}
    }
    if as_json:
        print(json.dumps(routers))
        return
    for kind, names in routers.items():
        for name, entry in names.items():
            needs = f"  (needs signoria[{entry['extra']}])" if entry["extra"] else ""
            knob = ""
            if kind != "live":
                knob = f"  sweep: {entry['sweep'] or '-'}" if entry["installed"] else ""
            print(f"{kind:<12} {name:<14}{knob}{needs}")


def _rl_installed() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("trl", "transformers"))


@route_app.command("retrain")
def route_retrain(
    router: Annotated[str, typer.Option(help="Trainable router to fit on the traffic.")],
    deployed: Annotated[Path, typer.Option(help="The artifact in service (compared, replaced).")],
    out: Annotated[Path, typer.Option(help="Where to write the new artifact.")],
    db: DbOption = None,
    test_fraction: Annotated[
        float, typer.Option(min=0.05, max=0.9, help="Share of requests held out (by id hash).")
    ] = 0.3,
    seed: Annotated[int, typer.Option(help="Seed of the split and the fit.")] = 0,
    models: Annotated[
        Path | None, typer.Option(help="Models file (default: the deployed artifact's).")
    ] = None,
    option: Annotated[list[str] | None, typer.Option(help="KEY=VALUE for the router.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Compare only; never swap.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Train on recorded traffic with feedback; swap in only if better on held-out traffic."""
    from signoria.evals.retrain import print_report, retrain
    from signoria.routers.commands import parse_options

    report = retrain(
        db=db,
        router=router,
        deployed=deployed,
        out=out,
        test_fraction=test_fraction,
        seed=seed,
        models=models,
        options=parse_options(option or []),
        dry_run=dry_run,
    )
    print_report(report, as_json=as_json)


cascade_app = group("Answer-aware cascades: cheap experts first, escalate on doubt.")
route_app.add_typer(cascade_app, name="cascade")


@cascade_app.command("train")
def cascade_train(
    train: Annotated[Path, typer.Option(help="Outcome table with recorded responses (JSONL).")],
    models: Annotated[Path, typer.Option(help="Models file (JSON): descriptions, prices.")],
    out: Annotated[Path, typer.Option(help="Cascade file (JSON) to write.")],
    chain: Annotated[
        str | None, typer.Option(help="Stages 'a,b;c' (default: searched on validation).")
    ] = None,
    value_usd: Annotated[
        float | None, typer.Option(min=0.0, help="Worth of one more right answer (the knob).")
    ] = None,
    cost_ratio: Annotated[
        float | None,
        typer.Option(help="Search: best quality within this share of best-single cost."),
    ] = None,
    quality_ratio: Annotated[
        float | None,
        typer.Option(help="Search: cheapest point reaching this share of its quality."),
    ] = None,
    validation: Annotated[
        float, typer.Option(min=0.05, max=0.9, help="Share of the table held out for the search.")
    ] = 0.3,
    seed: Annotated[int, typer.Option(help="Seed of the validation split.")] = 0,
    option: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE: final=vote, regularisation=0.5, prior=2.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Fit a cascade; what is not given is chosen on a validation split of --train."""
    from signoria.orchestrator.cascade.commands import train_command
    from signoria.routers.commands import parse_options

    report = train_command(
        train=train,
        models=models,
        out=out,
        chain=chain,
        value_usd=value_usd,
        cost_ratio=cost_ratio,
        quality_ratio=quality_ratio,
        validation=validation,
        seed=seed,
        options=parse_options(option or []),
    )
    print(json.dumps(report) if as_json else json.dumps(report, indent=1))


@cascade_app.command("eval")
def cascade_eval(
    cascade: Annotated[Path, typer.Option(help="Cascade file from `route cascade train`.")],
    test: Annotated[Path, typer.Option(help="Held-out outcome table (JSONL).")],
    models: Annotated[Path, typer.Option(help="Models file (JSON).")],
    sweep: Annotated[bool, typer.Option("--sweep", help="The whole cost-quality curve.")] = False,
    plot: Annotated[Path | None, typer.Option(help="Curve and baselines (PNG).")] = None,
    budget_usd: Annotated[
        float | None,
        typer.Option(help="Hold this mean USD per query (paced; above 0)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The cascade beside every single model and the oracle on held-out rows."""
    from signoria.orchestrator.cascade.commands import eval_command

    result = eval_command(
        cascade=cascade,
        test=test,
        models=models,
        with_sweep=sweep,
        plot=plot,
        budget_usd=budget_usd,
    )
    if as_json:
        print(json.dumps(result))
        return
    cost = "null" if result["cost"] is None else f"{result['cost']:.4f}"
    print(f"{result['router']} on {result['n']} rows: quality {result['quality']:.4f}, cost {cost}")
    for name, point in result["baselines"].items():
        cost = "null" if point["cost"] is None else f"{point['cost']:.4f}"
        print(f"  {name:<40} quality {point['quality']:.4f}  cost {cost}")


# The eval commands import `evals` lazily: the one import against the layer direction.
