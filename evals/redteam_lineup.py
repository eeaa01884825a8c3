"""Which aggregators a red team runs, and where each one's parameters come from.

`-a all` means every registered aggregator, so a comparison is never silently partial:
each is either built or listed as skipped with the reason. Parameters come, in order,
from a pipeline of the config with that name (any aggregator, as configured); for
`learned-vote`, from weights fitted on the red team's training rows (never its test
rows); otherwise from the params model's defaults, with the MCQ answer kind and, for a
param that names a model, the live pipeline's first expert. In replay, an aggregator
that calls a model is skipped: replay experts answer only the queries they recorded, so
its synthesis prompt would fail and the fallback answer would be measured instead.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from signoria.agents.backends.replay import OutcomeTable
from signoria.errors import SignoriaError
from signoria.evals.redteam import NAIVE, is_letter
from signoria.orchestrator.aggregators.majority import MajorityParams, MajorityVote
from signoria.orchestrator.aggregators.protocol import Aggregator
from signoria.orchestrator.aggregators.registry import AGGREGATORS
from signoria.orchestrator.sdk import Orchestrator
from signoria.registry import StrategySpec, model_refs

ALL = "all"
LEARNED = "learned-vote"


@dataclass
class Lineup:
    aggregators: dict[str, Aggregator] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # name -> why
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Sources:
    """What defaults may draw on: the live aggregator model, the training rows."""

    backend: str
    model: str  # the first honest expert: what a default LLM aggregator would call
    train: OutcomeTable | None  # replay: rows the red team does not run on
    experts: tuple[str, ...]  # the honest seats, strongest first
    workdir: Path
    in_sample: bool  # no split: the training rows are the evaluated rows
    seed: int = 0  # of the split; also seeds the fit's cross-validation folds


def expand(names: list[str]) -> list[str]:
    """`all` -> every registered aggregator, in registry order; other names kept."""
    out: list[str] = []
    for name in names:
        for n in list(AGGREGATORS) if name == ALL else [name]:
            if n not in out:
                out.append(n)
    return out


def lineup(orchestrator: Orchestrator, pipeline: str, names: list[str], sources: Sources) -> Lineup:
    found = Lineup(aggregators={NAIVE: MajorityVote(MajorityParams(answer="letter"))})
    spec = orchestrator.config.pipelines[pipeline].aggregator
    if spec.name != NAIVE:
        found.aggregators[spec.name] = orchestrator.pipelines[pipeline].aggregator
    for name in expand(names):
        if name in found.aggregators:
            continue
        if name in orchestrator.config.pipelines:
            # A pipeline's configured aggregator, keyed by the pipeline's name: how an
            # aggregator with parameters of one's own (an LLM, a guard) joins a run.
            found.aggregators[name] = orchestrator.pipelines[name].aggregator
        elif name == LEARNED:
            _learned(found, sources)
        else:
            _default(found, name, sources)
    return found


def _learned(found: Lineup, sources: Sources) -> None:
    from signoria.orchestrator.aggregators.vote_fit import fit_weights
    from signoria.orchestrator.aggregators.vote_weights import VoteWeightsError

    if sources.train is None:
        found.skipped[LEARNED] = (
            "needs fitted weights: fit them (signoria aggregator fit) and name a pipeline "
            "of the config that uses them"
        )
        return
    rows = [r for r in sources.train.rows if is_letter(r.get("reference"))]
    try:
        weights = fit_weights(rows, sources.experts, answer="letter", seed=sources.seed)
    except VoteWeightsError as exc:
        found.skipped[LEARNED] = f"cannot fit weights on the training rows ({exc})"
        return
    path = sources.workdir / "learned-vote.json"
    weights.save(path)
    params = AGGREGATORS.params_model(LEARNED).model_validate({"weights": str(path)})
    found.aggregators[LEARNED] = AGGREGATORS.build(LEARNED, params)
    where = (
        "the evaluated rows (no --test-fraction: in-sample)"
        if sources.in_sample
        else ("the training rows")
    )
    found.notes.append(f"{LEARNED}: weights fitted on {weights.fitted_on['rows']} of {where}")


def _default(found: Lineup, name: str, sources: Sources) -> None:
    model_type = AGGREGATORS.params_model(name)
    try:
        params = model_type.model_validate(_defaults(model_type, sources.model))
    except ValidationError:
        found.skipped[name] = (
            "needs parameters: put it in a pipeline of the config and pass that pipeline "
            "with --aggregator"
        )
        return
    refs = model_refs(params)
    if refs and sources.backend == "replay":
        found.skipped[name] = (
            f"calls a model ({', '.join(refs)}); replay experts answer only their recorded "
            "queries: use --backend live, or a pipeline of the config"
        )
        return
    try:
        found.aggregators[name] = AGGREGATORS.build(name, params)
    except SignoriaError as exc:
        found.skipped[name] = f"cannot be built from defaults ({exc})"
        return
    if refs:
        found.notes.append(f"{name}: model {sources.model}")


def _defaults(model_type: type[BaseModel], model: str) -> dict[str, Any]:
    """Values for the params a red team can fill: the MCQ answer kind, and a required
    param naming one model (or a list of them) filled with `model`; a guard wraps a
    majority vote."""
    values: dict[str, Any] = {}
    for key, info in model_type.model_fields.items():
        if key == "answer":
            values[key] = "letter"
        if not info.is_required():
            continue
        if info.annotation is StrategySpec:
            values[key] = {"name": NAIVE, "answer": "letter"}
        elif info.annotation is str:
            values[key] = model
        elif typing.get_origin(info.annotation) is list:
            values[key] = [model]
    return values
