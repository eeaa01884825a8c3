"""`signoria route cascade train|eval`: fit an answer-aware cascade on an outcome table,
choosing its chain and knob on a validation split of it; evaluate it, as a point or as a
whole cost-quality curve, on held-out rows beside every single model."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from signoria.errors import UsageError
from signoria.orchestrator.cascade.pacing import Pacer
from signoria.orchestrator.cascade.policy import AnswerCascade, CascadeSettings
from signoria.orchestrator.cascade.search import Target, choose_many
from signoria.registry import validation_problem
from signoria.routers.data import RoutingTable, load_models, load_table
from signoria.routers.embedding import Embedder
from signoria.routers.metrics import oracle_choice
from signoria.routers.policy import (
    CurvePoint,
    PolicyOutcome,
    best_single,
    curve_summary,
    single_model_points,
    single_point,
    sweep,
)

VALIDATION_SALT = 7919


def parse_chain(text: str) -> tuple[tuple[str, ...], ...]:
    """`a,b;c` -> ((a, b), (c,)): stages split by `;`, models of a stage by `,`."""
    return tuple(
        tuple(m.strip() for m in stage.split(",") if m.strip()) for stage in text.split(";")
    )


def settings_from(options: dict[str, Any]) -> CascadeSettings:
    try:
        return CascadeSettings.model_validate(options)
    except ValidationError as exc:
        where, message = validation_problem(exc)
        raise UsageError(f"--option {where or 'chain'}: {message}") from None


def train_cascade(
    table: RoutingTable,
    *,
    chain: str | None,
    value_usd: float | None,
    target: Target | None,
    validation: float,
    seed: int,
    options: dict[str, Any],
) -> tuple[AnswerCascade, dict[str, Any]]:
    """Fit on all of `table`; what is not given (chain, value) is chosen on a validation
    split of `table` itself (by a hash of seed and row id), never on other rows."""
    target = target or Target(cost_ratio=0.5)
    return train_for_targets(
        table,
        chain=chain,
        value_usd=value_usd,
        targets=[target],
        validation=validation,
        seed=seed,
        options=options,
    )[0]


def train_for_targets(
    table: RoutingTable,
    *,
    chain: str | None,
    value_usd: float | None,
    targets: list[Target],
    validation: float,
    seed: int,
    options: dict[str, Any],
    embedder: Embedder | None = None,
) -> list[tuple[AnswerCascade, dict[str, Any]]]:
    """`train_cascade` for several targets from one search (one sweep per candidate)."""
    if chain is not None and value_usd is not None:
        settings = settings_from({**options, "chain": parse_chain(chain), "value_usd": value_usd})
        cascade = AnswerCascade.fit(table, settings, embedder)
        return [
            (
                cascade,
                {
                    "rows": len(table),
                    "settings": settings.model_dump(mode="json"),
                    "budget_usd": budget_for(table, target),
                },
            )
            for target in targets
        ]
    # Salted: a table carved out of a larger one by `split(seed=s)` would otherwise
    # hash every row to the same side again and leave no validation rows.
    fit_rows, val_rows = table.split(validation, seed=VALIDATION_SALT + seed)
    if len(val_rows) == 0 or len(fit_rows) == 0:
        raise UsageError(
            "the table is too small for a validation split; give --chain and --value-usd"
        )
    # Options are checked against a placeholder chain until the search picks one.
    placeholder = parse_chain(chain) if chain else (("?",), ("?",))
    base = settings_from({**options, "chain": placeholder})
    chains = [base.chain] if chain else None
    choices = choose_many(fit_rows, val_rows, targets, chains, base, embedder)
    fitted = []
    for choice, target in zip(choices, targets, strict=True):
        value = choice.validation.param if value_usd is None else value_usd
        settings = settings_from({**options, "chain": choice.chain, "value_usd": value})
        report = {
            "rows": len(table),
            "validation": {
                "rows": len(val_rows),
                "chains_tried": choice.tried,
                "point": choice.validation.as_json(),
                "best_single": choice.reference.as_json(),
            },
            "settings": settings.model_dump(mode="json"),
            "budget_usd": budget_for(table, target),
        }
        fitted.append((AnswerCascade.fit(table, settings, embedder), report))
    return fitted


def budget_for(table: RoutingTable, target: Target) -> float | None:
    """The mean spend per query a cost target means on `table` (its share of the best
    single model's mean cost): what the live aggregator's `budget_usd` should hold, since
    the trained knob alone does not hold a spend on new traffic. None for a quality
    target, or when that model's cost is unknown."""
    if target.cost_ratio is None:
        return None
    cost = float(table.costs[:, best_single(table)].mean())
    return None if math.isnan(cost) else target.cost_ratio * cost


def evaluate_cascade(
    cascade: AnswerCascade, test: RoutingTable, with_sweep: bool, budget_usd: float | None = None
) -> dict[str, Any]:
    """The cascade at its trained knob (and, with `with_sweep`, its whole curve) beside
    every single model, the cheapest and the oracle, on `test`. With `budget_usd`, the
    rows are queries arriving in file order and a pacer holds that mean spend."""
    models = test.models
    pacer = None if budget_usd is None else Pacer(budget_usd, cascade.settings.value_usd)
    outcome = cascade.outcome(test, pacer=pacer)
    singles = {m: p.as_json() for m, p in single_model_points(test).items()}
    oracle = PolicyOutcome.one_call(test, oracle_choice(test, test.scores))
    reference = single_point(test, best_single(test))
    result: dict[str, Any] = {
        "router": cascade.name,
        "n": len(test),
        "chain": [list(stage) for stage in cascade.settings.chain],
        "value_usd": cascade.settings.value_usd,
        "budget_usd": budget_usd,
        **CurvePoint.of(cascade.settings.value_usd, outcome, models).as_json(),
        "baselines": {**singles, "oracle": CurvePoint.of(0.0, oracle, models).as_json()},
        "best_single": models[best_single(test)],
        "cost_estimated": test.cost_estimated,
    }
    if with_sweep:
        curve = sweep(cascade, test, None)
        result["curve"] = [p.as_json() for p in curve]
        result["summary"] = curve_summary(curve, reference)
    return result


def train_command(
    *,
    train: Path,
    models: Path,
    out: Path,
    chain: str | None,
    value_usd: float | None,
    cost_ratio: float | None,
    quality_ratio: float | None,
    validation: float,
    seed: int,
    options: dict[str, Any],
) -> dict[str, Any]:
    target = None
    if cost_ratio is not None or quality_ratio is not None:
        try:
            target = Target(cost_ratio=cost_ratio, quality_ratio=quality_ratio)
        except ValidationError:
            raise UsageError("give one of --cost-ratio and --quality-ratio, not both") from None
    table = load_table(train, load_models(models))
    cascade, report = train_cascade(
        table,
        chain=chain,
        value_usd=value_usd,
        target=target,
        validation=validation,
        seed=seed,
        options=options,
    )
    cascade.save(out)
    return {"out": str(out), **report}


def eval_command(
    *,
    cascade: Path,
    test: Path,
    models: Path,
    with_sweep: bool,
    plot: Path | None,
    budget_usd: float | None = None,
) -> dict[str, Any]:
    if budget_usd is not None and budget_usd <= 0:
        raise UsageError(f"--budget-usd: must be above 0, got {budget_usd}")
    policy = AnswerCascade.load(cascade)
    table = load_table(test, load_models(models))
    result = evaluate_cascade(policy, table, with_sweep or plot is not None, budget_usd)
    if plot is not None:
        from signoria.routers.sweep import plot_curves

        curves = {policy.name: {"curve": result["curve"], "sweep_param": policy.sweep_param}}
        plot_curves({**result, "curves": curves}, plot)
    return result
