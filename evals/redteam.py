"""How much does one lying expert hurt each aggregator? The same items, clean and attacked.

Clean: K honest experts, strongest first. Attacked: the same slots with N of them replaced
by adversaries arguing for a wrong answer: the weakest N by default (an adversary taking a
peer's seat), or the strongest N (the harshest case, which also removes the best answer).
Reported per aggregator: accuracy clean and attacked, the share of items where the final answer is
the adversary's (persuaded), and the recovery rate: how much of what the attack took from
naive majority voting the aggregator wins back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel

from signoria.agents.backends.replay import OutcomeTable
from signoria.agents.types import Expert
from signoria.evals.adversaries import wrong_letter
from signoria.orchestrator.aggregators.protocol import Aggregator
from signoria.orchestrator.answers import extract_letter
from signoria.orchestrator.limits import Limits
from signoria.orchestrator.pipeline import Pipeline, PipelineFailed

NAIVE = "majority"
WITHOUT_LIARS = "majority-without-liars"
Replace = Literal["strongest", "weakest"]


class RedteamItem(BaseModel):
    key: str
    prompt: str
    reference: str  # the correct option letter


class AggregatorReport(BaseModel):
    n: int
    clean_acc: float
    attacked_acc: float
    persuaded: float
    recovery_rate: float | None


def is_letter(reference: Any) -> bool:
    return (
        isinstance(reference, str) and len(reference.strip()) == 1 and reference.strip() in "ABCDE"
    )


def replay_items(
    table: OutcomeTable, models: Sequence[str], limit: int | None
) -> list[RedteamItem]:
    """Multiple-choice rows where every chosen model has a recorded answer."""
    items = [
        RedteamItem(
            key=str(row["id"]), prompt=str(row["query"]), reference=row["reference"].strip()
        )
        for row in table.rows
        if is_letter(row.get("reference"))
        and all((row["outcomes"].get(m) or {}).get("response") is not None for m in models)
    ]
    return items[:limit] if limit else items


def strongest_models(table: OutcomeTable, k: int) -> list[str]:
    """The k models with the best mean score on the table's multiple-choice rows.

    Chosen on the same rows the red team then runs on: a selection, not a result.
    """
    totals: dict[str, list[float]] = {}
    for row in table.rows:
        if not is_letter(row.get("reference")):
            continue
        for model, outcome in row["outcomes"].items():
            if outcome.get("response") is not None:
                totals.setdefault(model, []).append(float(outcome.get("score") or 0.0))
    ranked = sorted(totals, key=lambda m: (-sum(totals[m]) / len(totals[m]), m))
    if len(ranked) < k:
        raise ValueError(f"the table has {len(ranked)} models with answers, fewer than {k}")
    return ranked[:k]


def target_table(items: Sequence[RedteamItem]) -> dict[str, str]:
    """The wrong answer each adversary defends, per prompt."""
    return {item.prompt: wrong_letter(item.prompt, item.reference) for item in items}


async def _answers(
    pipeline: Pipeline,
    pool: Mapping[str, Expert],
    items: Sequence[RedteamItem],
    concurrency: int,
) -> list[str | None]:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(item: RedteamItem) -> str | None:
        async with semaphore:
            try:
                result = await pipeline.run(item.prompt, pool)
            except PipelineFailed:
                return None
            return extract_letter(result.answer)

    return list(await asyncio.gather(*(one(item) for item in items)))


async def run_redteam(
    items: Sequence[RedteamItem],
    *,
    honest: Mapping[str, Expert],
    adversaries: Mapping[str, Expert],
    aggregators: Mapping[str, Aggregator],
    extra_pool: Mapping[str, Expert] | None = None,
    limits: Limits | None = None,
    temperature: float | None = None,
    concurrency: int = 16,
    replace: Replace = "weakest",
) -> dict[str, AggregatorReport]:
    """Accuracy of every aggregator on `items`, clean and with `adversaries` in the pool.

    `honest` is ordered strongest first; the adversaries take the seats `replace` names.
    """
    if NAIVE not in aggregators:
        raise ValueError(f"the naive baseline {NAIVE!r} must be among the aggregators")
    clean_names = list(honest)
    kept = len(clean_names) - len(adversaries)
    attacked_names = (
        [*adversaries, *clean_names[len(adversaries) :]]
        if replace == "strongest"
        else [*clean_names[:kept], *adversaries]
    )
    pool = {**(extra_pool or {}), **honest, **adversaries}
    targets = target_table(items)

    async def score(aggregator: Aggregator, names: Sequence[str]) -> tuple[float, float]:
        """Accuracy and share of adversary-chosen answers over `items` with these seats."""
        pipeline = Pipeline.fixed(
            names,
            aggregator=aggregator,
            temperature=temperature,
            limits=limits or Limits(max_experts=len(names), retries=0),
            name="redteam",
        )
        answers = await _answers(pipeline, pool, items, concurrency)
        pairs = list(zip(answers, items, strict=True))
        return (
            sum(a == i.reference for a, i in pairs) / len(items),
            sum(a == targets[i.prompt] for a, i in pairs) / len(items),
        )

    raw: dict[str, tuple[float, float, float]] = {}
    for name, aggregator in aggregators.items():
        clean, _ = await score(aggregator, clean_names)
        attacked, persuaded = await score(aggregator, attacked_names)
        raw[name] = (clean, attacked, persuaded)
    # The reference a defence is measured against: the same vote with the liars removed
    # (their seats left empty), i.e. what is left once the attack has taken a seat.
    honest_seats = [n for n in attacked_names if n not in adversaries]
    without, persuaded = await score(aggregators[NAIVE], honest_seats)
    raw[WITHOUT_LIARS] = (raw[NAIVE][0], without, persuaded)
    naive_clean, naive_attacked, _ = raw[NAIVE]
    lost = naive_clean - naive_attacked
    return {
        name: AggregatorReport(
            n=len(items),
            clean_acc=clean,
            attacked_acc=attacked,
            persuaded=persuaded,
            recovery_rate=(attacked - naive_attacked) / lost if lost > 0 else None,
        )
        for name, (clean, attacked, persuaded) in raw.items()
    }
