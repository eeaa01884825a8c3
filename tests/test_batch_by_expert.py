"""Batch by expert (Symbolic-MoE) vs the per-query loop: same calls, different order.

Scripted experts check the schedules, the result layout and failed calls; one real-model
test shows the point of the schedule: under a memory cap that holds one model, grouping
loads each expert once while the per-query loop reloads on every switch.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.batch_schedule import (
    grouped_calls,
    majority,
    per_query_calls,
    run_by_expert,
    run_calls,
    run_per_query,
)
from signoria.agents.backends.llamacpp import LlamaCppExpert, LlamaCppRuntime, LlamaCppSettings
from signoria.agents.sources import EmbeddedSource
from signoria.agents.types import Completion, Expert, GenerationParams, Message, ModelCard
from tests.conftest import scripted

PARAMS = GenerationParams(max_tokens=8)
# Query 0 is recruited twice by "a"; "b" and "c" interleave with "a" across queries.
GROUPS = {"a": [0, 0, 2], "b": [0, 1], "c": [1, 2]}


def queries(n: int) -> list[list[Message]]:
    return [[Message(role="user", content=f"q{i}")] for i in range(n)]


class Recording:
    """Wraps an expert and logs (expert, query text) for every call, in call order."""

    def __init__(self, inner: Expert, log: list[tuple[str, str]]) -> None:
        self.inner = inner
        self.log = log

    @property
    def card(self) -> ModelCard:
        return self.inner.card

    async def generate(self, messages: list[Message], *, params: GenerationParams) -> Completion:
        self.log.append((self.card.name, messages[-1].content))
        return await self.inner.generate(messages, params=params)

    async def count_tokens(self, messages: list[Message]) -> int:
        return await self.inner.count_tokens(messages)

    async def aclose(self) -> None:
        return None


def recorded_pool(**experts: Expert) -> tuple[dict[str, Expert], list[tuple[str, str]]]:
    log: list[tuple[str, str]] = []
    return {name: Recording(e, log) for name, e in experts.items()}, log


def test_the_two_schedules_make_the_same_calls_in_different_orders() -> None:
    grouped = grouped_calls(GROUPS)
    per_query = per_query_calls(GROUPS, 3)
    assert grouped == [(0, "a"), (0, "a"), (2, "a"), (0, "b"), (1, "b"), (1, "c"), (2, "c")]
    assert per_query == [(0, "a"), (0, "a"), (0, "b"), (1, "b"), (1, "c"), (2, "a"), (2, "c")]
    assert sorted(grouped) == sorted(per_query)
    # A given expert order is kept by both; it must name every recruited expert.
    assert [n for _, n in grouped_calls(GROUPS, ["c", "a", "b", "unused"])][:2] == ["c", "c"]
    assert per_query_calls(GROUPS, 3, ["c", "b", "a"])[:3] == [(0, "b"), (0, "a"), (0, "a")]
    with pytest.raises(ValueError, match="lacks recruited experts: b"):
        grouped_calls(GROUPS, ["a", "c"])


async def test_grouped_runs_expert_by_expert_and_both_return_the_same_layout() -> None:
    pool, log = recorded_pool(
        a=scripted("a", behaviour="echo"), b=scripted("b", answer="B"), c=scripted("c")
    )
    grouped = await run_by_expert(queries(3), GROUPS, pool, PARAMS)
    expert_runs = [name for i, (name, _) in enumerate(log) if i == 0 or log[i - 1][0] != name]
    assert expert_runs == ["a", "b", "c"]  # each expert called in one stretch
    log.clear()
    per_query = await run_per_query(queries(3), GROUPS, pool, PARAMS)
    # Greedy: a's second sample for q0 would repeat its first, so it is not run again.
    assert [q for _, q in log] == ["q0", "q0", "q1", "q1", "q2", "q2"]

    for result in (grouped, per_query):
        assert [[c.expert for c in row] for row in result.completions] == [
            ["a", "a", "b"],
            ["b", "c"],
            ["a", "c"],
        ]
        assert result.completions[2][0].text == "q2"  # echo: the answer belongs to query 2
        assert result.calls_per_expert() == {"a": 3, "b": 2, "c": 2}
        assert result.executed == 6 and result.errors == 0 and result.seconds >= 0
        assert result.completions[0][0] is result.completions[0][1]  # one answer, two votes
    assert [[c.text for c in row] for row in grouped.completions] == [
        [c.text for c in row] for row in per_query.completions
    ]


async def test_sampled_repeats_are_real_calls() -> None:
    pool, log = recorded_pool(a=scripted("a"), b=scripted("b"), c=scripted("c"))
    sampled = GenerationParams(max_tokens=8, temperature=0.7)
    result = await run_by_expert(queries(3), GROUPS, pool, sampled)
    assert result.executed == len(log) == 7
    assert log[:2] == [("a", "q0"), ("a", "q0")]


async def test_a_failed_call_is_recorded_and_the_batch_goes_on() -> None:
    pool: dict[str, Expert] = {
        "a": scripted("a", answer="7"),
        "b": scripted("b", behaviour="error", error_message="500 boom", retryable=False),
        "c": scripted("c", answer="7"),
    }
    result = await run_by_expert(queries(3), GROUPS, pool, PARAMS)
    assert result.errors == 2 and len(result.calls) == 7
    failed = [c for row in result.completions for c in row if not c.ok]
    assert [c.expert for c in failed] == ["b", "b"]
    assert all(c.error is not None and "500 boom" in c.error for c in failed)
    assert all(c.text == "7" for row in result.completions for c in row if c.ok)

    votes = await majority(["What is 3 + 4?"] * 3, result, kind="number")
    assert [v.text for v in votes] == ["7", "7", "7"]
    assert votes[1].discarded == (0,)  # b's failed call in query 1 has no ballot


async def test_unknown_experts_and_indices_fail_before_any_call() -> None:
    pool, log = recorded_pool(a=scripted("a"))
    with pytest.raises(ValueError, match="missing from the pool: b"):
        await run_calls(queries(2), [(0, "a"), (1, "b")], pool, PARAMS)
    with pytest.raises(ValueError, match=r"out of range \(n=2\): \[5\]"):
        await run_calls(queries(2), [(0, "a"), (5, "a")], pool, PARAMS)
    assert log == []


async def test_majority_votes_over_extracted_answers() -> None:
    pool: dict[str, Expert] = {
        "a": scripted("a", answer="The answer is (C)."),
        "b": scripted("b", answer="C"),
        "c": scripted("c", answer="B"),
    }
    result = await run_per_query(queries(3), GROUPS, pool, PARAMS)
    votes = await majority(["A. x\nB. y\nC. z\nD. w"] * 3, result, kind="letter")
    assert [v.votes for v in votes] == [{"C": 3.0}, {"C": 1.0, "B": 1.0}, {"C": 1.0, "B": 1.0}]
    assert votes[0].text == "The answer is (C)." and not votes[0].error


def smol_pair(runtime: LlamaCppRuntime) -> dict[str, Expert]:
    """One SmolLM2 file under two context lengths: the runtime keys a loaded model by
    (file, n_ctx), so these are two models, each estimated at 1.25 x 98 MB = 117 MiB."""

    def smol(name: str, ctx: int) -> Expert:
        card = ModelCard(name=name, backend="llamacpp", context_length=ctx, input_price=0.0)
        return LlamaCppExpert(card, EmbeddedSource(embedded="smollm2-135m"), runtime)

    return {"short": smol("short", 512), "long": smol("long", 1024)}


async def test_real_gguf_grouping_loads_each_expert_once(model_cache: Path) -> None:
    settings = LlamaCppSettings(n_threads=2, memory_cap_mb=160, cache_dir=model_cache)
    interleaved = {"long": [0, 1, 2, 3], "short": [0, 1, 2, 3]}  # every query asks both
    params = GenerationParams(max_tokens=2, temperature=0.0)
    asked = [[Message(role="user", content=f"What is {i} + {i}?")] for i in range(4)]
    grouped_rt, per_query_rt = LlamaCppRuntime(settings), LlamaCppRuntime(settings)  # cold
    try:
        grouped = await run_by_expert(asked, interleaved, smol_pair(grouped_rt), params)
        per_query = await run_per_query(asked, interleaved, smol_pair(per_query_rt), params)
    finally:
        grouped_rt.close()
        per_query_rt.close()
    assert grouped_rt.loads == 2  # == distinct experts: 160 MiB never holds both
    assert per_query_rt.loads == 8  # the per-query loop reloads on every switch
    assert grouped.errors == per_query.errors == 0
    texts = [[c.text for c in row] for row in grouped.completions]
    assert texts == [[c.text for c in row] for row in per_query.completions]
    assert all(t for row in texts for t in row)
