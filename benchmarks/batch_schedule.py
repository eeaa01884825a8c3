"""Batch inference grouped by expert (Symbolic-MoE), and the per-query loop it replaces,
as bare schedules for `benchmarks.batch_by_expert` (the product's schedule is
`signoria eval run --executor by-expert`, `signoria.evals.executors.ByExpertExecutor`).

Symbolic-MoE recruits k experts per query, then runs a batch expert by expert: every
query recruited for one model is answered while that model is loaded, so a machine that
holds one model at a time loads each recruited model once per batch instead of once per
switch. The per-query loop makes exactly the same calls with the same parameters, query
after query; the two schedules differ only in ORDER, so any gap in wall time or model
loads is the schedule's doing. Both go through one executor (`run_calls`) so they cannot
drift apart.

Calls run one at a time: a llama.cpp model serialises its calls anyway, and concurrency
across models would need several models in memory, which is what the memory cap forbids.
A failed call (`ExpertError`) becomes a `Completion` with `error` set, as everywhere in
the project, and the batch goes on. Recruiting samples with replacement, so a strong model
is often recruited twice for one query; at temperature 0 the second sample would repeat
the first, so it is not run again: the query gets the same completion twice (two votes),
in both schedules alike. There are no retries, timeouts or budgets here: this
is the batch schedule, not the request path of `signoria.orchestrator.calls`.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from signoria.agents.types import Completion, Expert, ExpertError, GenerationParams, Message
from signoria.orchestrator.aggregators.majority import MajorityParams, MajorityVote
from signoria.orchestrator.aggregators.protocol import AggregationContext
from signoria.orchestrator.answers import AnswerKind
from signoria.orchestrator.result import Aggregate

# (query index, expert name): one call of a batch.
Call = tuple[int, str]
# Expert -> indices of the queries recruited for it; an index listed twice is two samples
# (the shape `SkillsRouter.group_by_expert` returns).
Groups = Mapping[str, Sequence[int]]


@dataclass(frozen=True)
class BatchResult:
    """Per query, its completions in expert order (failed calls included, with `error`
    set), whichever schedule ran them; `calls` is the order they actually ran in."""

    completions: list[list[Completion]]
    calls: list[Call]
    seconds: float
    executed: int  # calls that reached a model: `calls` minus greedy repeats

    @property
    def errors(self) -> int:
        return sum(1 for row in self.completions for c in row if not c.ok)

    def calls_per_expert(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _, name in self.calls:
            counts[name] = counts.get(name, 0) + 1
        return counts


def expert_order(groups: Collection[str], order: Sequence[str] | None = None) -> list[str]:
    """The fixed expert order both schedules use: `order` when given (it must name every
    recruited expert), else the recruited experts by name."""
    if order is None:
        return sorted(groups)
    missing = [name for name in groups if name not in order]
    if missing:
        raise ValueError(f"expert order lacks recruited experts: {', '.join(missing)}")
    return [name for name in order if name in groups]


def grouped_calls(groups: Groups, order: Sequence[str] | None = None) -> list[Call]:
    """Expert by expert: all calls of one expert, in query order, before the next."""
    return [(i, name) for name in expert_order(groups, order) for i in groups[name]]


def per_query_calls(
    groups: Groups, n_queries: int, order: Sequence[str] | None = None
) -> list[Call]:
    """Query by query: each query's recruited experts in turn (same fixed expert order,
    a repeated expert repeated in place), so the call multiset equals `grouped_calls`."""
    names = expert_order(groups, order)
    samples = {name: _counts(groups[name]) for name in names}
    return [
        (i, name)
        for i in range(n_queries)
        for name in names
        for _ in range(samples[name].get(i, 0))
    ]


async def run_calls(
    queries: Sequence[list[Message]],
    calls: Sequence[Call],
    pool: Mapping[str, Expert],
    params: GenerationParams,
    order: Sequence[str] | None = None,
) -> BatchResult:
    """Run `calls` one after another in the given order; everything is checked first, so
    an unknown expert or index fails before any model is loaded. Each query's completions
    are laid out in expert `order` (default: by name), an expert's samples in run order,
    so two schedules of the same calls return them in the same positions."""
    unknown = sorted({name for _, name in calls if name not in pool})
    if unknown:
        raise ValueError(f"recruited experts missing from the pool: {', '.join(unknown)}")
    bad = sorted({i for i, _ in calls if not 0 <= i < len(queries)})
    if bad:
        raise ValueError(f"query indices out of range (n={len(queries)}): {bad}")
    rank = {name: r for r, name in enumerate(expert_order(_names(calls), order))}
    rows: list[list[tuple[int, Completion]]] = [[] for _ in queries]
    greedy: dict[Call, Completion] = {}
    executed = 0
    t0 = time.perf_counter()
    for i, name in calls:
        done = greedy.get((i, name))
        if done is None:
            done = await _call(pool[name], name, queries[i], params)
            executed += 1
            if params.temperature == 0:
                greedy[(i, name)] = done
        rows[i].append((rank[name], done))
    seconds = time.perf_counter() - t0
    completions = [[c for _, c in sorted(row, key=lambda rc: rc[0])] for row in rows]
    return BatchResult(completions, list(calls), seconds, executed)


async def run_by_expert(
    queries: Sequence[list[Message]],
    groups: Groups,
    pool: Mapping[str, Expert],
    params: GenerationParams,
    order: Sequence[str] | None = None,
) -> BatchResult:
    """The Symbolic-MoE batch: each expert's calls together, experts in a fixed order."""
    return await run_calls(queries, grouped_calls(groups, order), pool, params, order)


async def run_per_query(
    queries: Sequence[list[Message]],
    groups: Groups,
    pool: Mapping[str, Expert],
    params: GenerationParams,
    order: Sequence[str] | None = None,
) -> BatchResult:
    """The baseline: query after query, loading each recruited model on demand."""
    calls = per_query_calls(groups, len(queries), order)
    return await run_calls(queries, calls, pool, params, order)


async def majority(
    questions: Sequence[str], result: BatchResult, kind: AnswerKind = "auto"
) -> list[Aggregate]:
    """Per query, the project's majority vote over extracted answers (ties to the first
    in expert order). Symbolic-MoE aggregates with an LLM; a vote makes no model calls,
    so it cannot disturb the loads being measured."""
    vote = MajorityVote(MajorityParams(answer=kind))
    ctx = AggregationContext(call=_no_calls, max_tokens=1)
    return [
        await vote.aggregate(q, row, ctx)
        for q, row in zip(questions, result.completions, strict=True)
    ]


async def _call(
    expert: Expert, name: str, messages: list[Message], params: GenerationParams
) -> Completion:
    t0 = time.perf_counter()
    started = time.time()
    try:
        return await expert.generate(messages, params=params)
    except ExpertError as exc:
        return Completion(
            expert=name, error=str(exc), latency_s=time.perf_counter() - t0, started_at=started
        )


async def _no_calls(name: str, messages: list[Message], params: GenerationParams) -> Completion:
    raise RuntimeError("a majority vote makes no model calls")


def _counts(indices: Sequence[int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for i in indices:
        counts[i] = counts.get(i, 0) + 1
    return counts


def _names(calls: Sequence[Call]) -> list[str]:
    return list(dict.fromkeys(name for _, name in calls))
