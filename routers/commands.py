"""`signoria route train|eval`: thin wrappers that load data, call the library, print."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from signoria.registry import install_hint
from signoria.routers.artifact import build, installed_baselines, read_manifest, train_artifact
from signoria.routers.data import load_models, load_table
from signoria.routers.embedding import set_quiet
from signoria.routers.evaluate import evaluate, plot
from signoria.routers.registry import ROUTERS, TRAINABLE
from signoria.routers.trainable import TradeOff

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def trade_off(scenario: str | None, alpha: float | None, beta: float | None) -> TradeOff:
    if scenario is not None and (alpha is not None or beta is not None):
        raise ValueError("give either --scenario or --alpha/--beta, not both")
    if alpha is not None or beta is not None:
        return TradeOff(alpha=1.0 if alpha is None else alpha, beta=0.0 if beta is None else beta)
    return TradeOff.scenario(scenario or "balanced")


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` pairs; a value is read as JSON when it parses (numbers, true, null),
    else kept as a string."""
    parsed: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--option wants KEY=VALUE, got {pair!r}")
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value
    return parsed


def train_command(
    *,
    router: str,
    train: Path,
    models: Path,
    out_dir: Path,
    scenario: str | None,
    alpha: float | None,
    beta: float | None,
    seed: int,
    limit: int | None,
    options: list[str] | None = None,
    quiet: bool = False,
) -> None:
    set_quiet(quiet)
    parsed = parse_options(options or [])
    build(router, parsed)  # a bad name, option or missing extra fails here, before any load
    baselines, missing = installed_baselines()
    if missing and not quiet:
        err.print(
            f"note: baselines {', '.join(missing)} skipped: they need "
            f"{install_hint(TRAINABLE[missing[0]].extra)}",
            markup=False,
        )
    table = load_table(train, load_models(models), limit=limit)
    t0 = time.perf_counter()
    timings = train_artifact(
        router,
        table,
        trade_off(scenario, alpha, beta),
        out_dir,
        seed=seed,
        source={"train": str(train), "models": str(models)},
        baselines=baselines,
        options=parsed,
    )
    if not quiet:
        err.print(
            f"trained {router} and {len(timings) - 1} baselines on {len(table)} rows in "
            f"{time.perf_counter() - t0:.1f}s ({router}: {timings[router]:.1f}s)"
        )
    out.print(str(out_dir))


def _money(value: float | None) -> str:
    return "null" if value is None else f"{value:.4f}"


def eval_command(
    *,
    artifact: Path,
    test: Path,
    models: Path | None,
    as_json: bool,
    plot_path: Path | None,
    limit: int | None,
    router: str | None = None,
    with_sweep: bool = False,
    quiet: bool = False,
) -> None:
    set_quiet(quiet)
    # Without --models, the artifact's own model descriptions and prices are used.
    info = load_models(models) if models else dict(read_manifest(artifact).info)
    table = load_table(test, info, limit=limit)
    if with_sweep:
        from signoria.routers.sweep import plot_curves, sweep_report

        swept = sweep_report(artifact, table, router)
        if plot_path is not None:
            plot_curves(swept, plot_path)
        if as_json:
            print(json.dumps(swept))
        else:
            _print_sweep(swept)
        return
    result = evaluate(artifact, table, router)
    if plot_path is not None:
        plot(result, plot_path)
    if as_json:
        print(json.dumps(result))
        return
    grid = Table(
        title=f"{result['router']} on {result['n']} rows "
        f"(alpha={result['trade_off']['alpha']}, beta={result['trade_off']['beta']})",
        box=None,
    )
    for column in ("router", "reward", "quality", "cost", "top call share"):
        grid.add_column(column)
    for name, r in {result["router"]: result, **result["baselines"]}.items():
        top = max(r["call_share"].items(), key=lambda kv: kv[1])
        grid.add_row(
            name,
            f"{r['reward']:.4f}",
            f"{r['quality']:.4f}",
            _money(r["cost"]),
            f"{top[0]} {100 * top[1]:.0f}%",
        )
    out.print(grid)
    if result["cost_estimated"]:
        out.print("costs are estimated from list prices and token estimates (none recorded)")
    if "two_model" in result:
        t = result["two_model"]
        out.print(
            f"two-model ({t['strong']} vs {t['weak']}): APGR {t['apgr']}, "
            f"CPT(50%) {t['cpt50']}, CPT(80%) {t['cpt80']}",
            markup=False,
        )


def _ratio(point: dict[str, Any] | None) -> str:
    if point is None:
        return "never"
    ratio = point.get("cost_ratio")
    share = "" if ratio is None else f" at {100 * ratio:.1f}% of its cost"
    return f"{point['quality']:.4f}{share} ({point['param']:.4g})"


def _print_sweep(result: dict[str, Any]) -> None:
    out.print(f"curves on {result['n']} rows; reference: {result['reference']}", markup=False)
    for name, entry in result["curves"].items():
        s = entry["summary"]
        auc = "null" if s.get("auc") is None else f"{s['auc']:.4f}"
        out.print(
            f"{name} ({entry['sweep_param']}, {len(entry['curve'])} points): reaches "
            f"{s['reference_quality']:.4f}: {_ratio(s.get('cheapest_reaching_reference'))}; "
            f"best <=25%: {_ratio(s.get('best_within_25pct'))}; "
            f"<=50%: {_ratio(s.get('best_within_50pct'))}; AUC {auc}",
            markup=False,
        )
    for name, why in result["not_swept"].items():
        out.print(f"{name}: no curve ({why})", markup=False)


def listing() -> dict[str, dict[str, dict[str, Any]]]:
    """Every router by kind, the extra it needs and (trainable) its sweep knob: what the
    class names in `sweep_param` (None: no knob), or why it is unknown here."""
    trainable: dict[str, dict[str, Any]] = {}
    for name in TRAINABLE:
        entry = TRAINABLE[name]
        knob: str | None = None
        if entry.installed():
            knob = getattr(TRAINABLE.load(name), "sweep_param", None)
        trainable[name] = {"extra": entry.extra, "sweep": knob, "installed": entry.installed()}
    live = {name: {"extra": ROUTERS[name].extra} for name in ROUTERS}
    return {"live": live, "trainable": trainable}
