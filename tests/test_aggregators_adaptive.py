"""adaptive-vote: samples the same expert until its answers agree, never more than asked,
through the request's own call runner (seeds, budget, trace), and a real local model gives
the same answer and the same calls run to run."""

from __future__ import annotations

from typing import Any

import pytest

from signoria.agents.backends.llamacpp import LlamaCppRuntime
from signoria.errors import ConfigError
from signoria.orchestrator.config import parse_config
from signoria.orchestrator.result import AskResult
from tests.aggregation_helpers import Sequenced, build, pipeline, pool
from tests.conftest import scripted
from tests.test_llamacpp import expert as local_expert


async def sampled(answers: list[str], **params: Any) -> AskResult:
    expert = Sequenced("m", answers)
    line = pipeline(["m"], build("adaptive-vote", answer="number", **params))
    return await line.run("6 + 6?", pool(expert))


async def test_two_agreeing_answers_end_the_sampling() -> None:
    result = await sampled(["It is 12", "12", "99", "99"])
    assert result.answer == "It is 12"  # the first answer of the winning side
    assert len(result.calls) == 2 and result.aggregation is not None
    assert result.aggregation.rounds == 2 and result.aggregation.votes == {"12": 2}


async def test_a_majority_of_samples_overrides_the_first_answer() -> None:
    result = await sampled(["5", "7", "7", "7"])
    assert result.answer == "7" and len(result.calls) == 3
    assert result.aggregation is not None and result.aggregation.chosen == (1, 2)


async def test_disagreement_stops_at_max_samples_and_ties_go_to_the_first() -> None:
    result = await sampled(["5", "7", "9", "11", "13"], max_samples=4)
    assert result.answer == "5" and len(result.calls) == 4
    assert result.aggregation is not None and result.aggregation.rounds == 4


async def test_agree_three_needs_three_votes() -> None:
    result = await sampled(["12", "12", "5", "12", "5"], agree=3, max_samples=5)
    assert len(result.calls) == 4 and result.answer == "12"


async def test_extra_samples_are_recorded_expert_calls_with_their_own_seeds() -> None:
    result = await sampled(["5", "7", "9", "11"], seed=40, temperature=0.9)
    assert [c.role for c in result.calls] == ["expert"] * 4
    assert [c.slot for c in result.calls] == [0, 1, 2, 3]
    assert [c.seed for c in result.calls] == [0, 40, 41, 42]


async def test_the_router_answers_of_several_experts_count_too() -> None:
    """Voters the router asked are ballots; the samples come from the first that answered."""
    experts = [
        scripted("a", behaviour="error", retryable=False),
        scripted("b", answer="8"),
        scripted("c", answer="7"),
    ]
    line = pipeline(["a", "b", "c"], build("adaptive-vote", answer="number"))
    result = await line.run("?", pool(*experts))
    assert result.answer == "8" and [c.expert for c in result.calls] == ["a", "b", "c", "b"]


async def test_a_budget_that_refuses_a_sample_ends_the_sampling_and_says_so() -> None:
    expert = Sequenced("m", ["5", "7", "9", "11"], price=1000.0)
    line = pipeline(["m"], build("adaptive-vote", answer="number"), budget_usd=0.27)
    result = await line.run("6 + 6?", pool(expert))
    assert result.answer == "5"  # what exists is voted on: 5, 7, 9 tie to the first
    # $0.004 a call, $0.259 reserved for each: the third extra sample no longer fits.
    assert [c.error is not None for c in result.calls] == [False, False, False, True]
    assert result.cost is not None and result.cost <= 0.27
    agg = result.aggregation
    assert agg is not None and "sampling stopped at extra sample 3: budget" in (agg.error or "")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"agree": 5, "max_samples": 4}, r"pipelines.p.aggregator.*agree \(5\) cannot exceed"),
        ({"expert": "zz"}, r"pipelines.p.aggregator.expert: unknown model 'zz'"),
        ({"agree": 1}, r"pipelines.p.aggregator.agree"),
        ({"temperature": 0}, r"pipelines.p.aggregator.temperature"),
        ({"samples": 3}, r"pipelines.p.aggregator.samples"),
    ],
)
def test_configs_are_checked_at_the_bad_key(params: dict[str, Any], message: str) -> None:
    config: dict[str, Any] = {
        "default_pipeline": "p",
        "models": {"a": {"backend": "scripted"}},
        "pipelines": {
            "p": {
                "router": {"name": "fixed", "experts": ["a"]},
                "aggregator": {"name": "adaptive-vote", **params},
            }
        },
    }
    with pytest.raises(ConfigError, match=message):
        parse_config(config)


async def test_a_real_local_model_samples_reproducibly(runtime: LlamaCppRuntime) -> None:
    """SmolLM2 through the llama.cpp backend: the seeded samples give the same texts, the
    same number of calls and the same answer on a second run."""
    smollm2 = local_expert("smollm2-135m", runtime)
    line = pipeline(
        [smollm2.card.name],
        build("adaptive-vote", answer="number", max_samples=3, temperature=1.0),
        max_tokens=16,
    )
    first = await line.run("What is 3 + 4? Answer with a number.", pool(smollm2))
    second = await line.run("What is 3 + 4? Answer with a number.", pool(smollm2))
    assert [c.text for c in first.calls] == [c.text for c in second.calls]
    assert first.answer == second.answer and 2 <= len(first.calls) <= 3
    assert [c.seed for c in first.calls][1:] == [1, 2][: len(first.calls) - 1]
