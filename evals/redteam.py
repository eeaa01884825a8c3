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
from signoria.orchestrator.aggregators.vote_weights import strongest_experts
from signoria.orchestrator.answers import extract_letter
from signoria.orchestrator.limits import Limits
from signoria.orchestrator.pipeline import Pipeline, PipelineFailed
from signoria.routers.data import in_test_split

NAIVE = "majority"
WITHOUT_LIARS = "majority-without-liars"
Replace = Literal["strongest", "weakest"]
Seat = Replace | int


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

    Pass the training side of a split (`split_table`) to choose on rows the red team does
    not then run on; on the whole table it is a selection on the evaluated rows.
    """
    return strongest_experts([r for r in table.rows if is_letter(r.get("reference"))], k)


def split_table(
    table: OutcomeTable, test_fraction: float, seed: int
) -> tuple[OutcomeTable, OutcomeTable]:
    """Train and test sides by a hash of (seed, id), as `RoutingTable.split` carves them."""
    test = [r for r in table.rows if in_test_split(str(r["id"]), test_fraction, seed)]
    train = [r for r in table.rows if not in_test_split(str(r["id"]), test_fraction, seed)]
    return OutcomeTable(train), OutcomeTable(test)


def attacked_seats(clean: Sequence[str], adversaries: Sequence[str], replace: Seat) -> list[str]:
    """The seats of the attacked run: the adversaries take the strongest, the weakest or,
    given an index, seat `replace` (0 = strongest; one adversary)."""
    kept = len(clean) - len(adversaries)
    if replace == "strongest":
        return [*adversaries, *clean[len(adversaries) :]]
    if replace == "weakest":
        return [*clean[:kept], *adversaries]
    if len(adversaries) != 1 or not 0 <= replace < len(clean):
        raise ValueError(f"seat {replace}: one adversary, a seat of 0..{len(clean) - 1}")
    return [*clean[:replace], *adversaries, *clean[replace + 1 :]]


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
    replace: Seat = "weakest",
) -> dict[str, AggregatorReport]:
    """Accuracy of every aggregator on `items`, clean and with `adversaries` in the pool.

    `honest` is ordered strongest first; the adversaries take the seats `replace` names.
    An adversary's pool key may differ from its card's name: one whose card bears the
    name of the expert it replaced is an impersonator (a compromised endpoint), which
    aggregators that trust names must catch by its behaviour.
    """
    if NAIVE not in aggregators:
        raise ValueError(f"the naive baseline {NAIVE!r} must be among the aggregators")
    clean_names = list(honest)
    attacked_names = attacked_seats(clean_names, list(adversaries), replace)
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
