"""Router-R1 in service: the policy's think / route / answer loop through a real pipeline.

The policy and the experts are scripted (fault injection: a policy that writes exactly the
turns a test needs); everything else is the product path: config parsing, the `none`
router, the call runner (budget, trace), the episode and its tags.
"""

from __future__ import annotations

from typing import Any

import pytest

from signoria.errors import ConfigError
from signoria.orchestrator.config import parse_config
from signoria.orchestrator.pipeline import PipelineFailed
from signoria.orchestrator.result import AskResult
from signoria.orchestrator.sdk import Orchestrator

QUESTION = "Which gas do plants take in? A) oxygen B) carbon dioxide"


def config(
    turns: list[str], *, pipeline: dict[str, Any] | None = None, **experts: dict[str, Any]
) -> dict[str, Any]:
    pool: dict[str, Any] = {
        "cheap": {"backend": "scripted", "answer": "A", "input_price": 1.0, "output_price": 1.0},
        "strong": {"backend": "scripted", "answer": "B", "input_price": 9.0, "output_price": 9.0},
    }
    for name, settings in experts.items():
        pool[name] = {**pool.get(name, {"backend": "scripted"}), **settings}
    pool["policy"] = {
        "backend": "scripted",
        "sequence": turns,
        "input_price": 0.0,
        "output_price": 0.0,
    }
    aggregator = {"name": "router-r1", "policy": "policy", "experts": ["cheap", "strong"]}
    aggregator.update(pipeline or {})
    return {
        "default_pipeline": "r1",
        "models": pool,
        "pipelines": {"r1": {"router": {"name": "none"}, "aggregator": aggregator}},
    }


async def ask(raw: dict[str, Any], **limits: Any) -> AskResult:
    if limits:
        raw["pipelines"]["r1"]["limits"] = limits
    async with Orchestrator(parse_config(raw)) as orchestrator:
        return await orchestrator.aask(QUESTION)


def route(expert: str, question: str = QUESTION, think: str = "I should ask.") -> str:
    # Providers drop the stop sequence: the policy's turn arrives without "</search>".
    return f"<think> {think} </think>\n<search> {expert}: {question}"


def answer(text: str, think: str = "I know now.") -> str:
    return f"<think> {think} </think>\n<answer> {text} </answer>"


async def test_think_route_route_answer() -> None:
    result = await ask(config([route("cheap"), route("strong"), answer("B")]))
    assert result.answer == "B"
    assert [(c.expert, c.role, c.slot) for c in result.calls] == [
        ("policy", "aggregator", None),
        ("cheap", "expert", 0),
        ("policy", "aggregator", None),
        ("strong", "expert", 1),
        ("policy", "aggregator", None),
    ]
    agg = result.aggregation
    assert agg is not None and agg.error is None and agg.rounds == 3
    assert [t.action for t in agg.turns] == ["route", "route", "answer"]
    first = agg.turns[0]
    assert (first.expert, first.query, first.slot) == ("cheap", QUESTION, 0)
    assert first.think == "I should ask." and first.reply == "<information> A </information>"
    assert agg.chosen == (0, 1)
    # The cost is what the routed calls cost (the policy is priced at 0, like a local model).
    assert result.cost is not None and result.cost > 0


async def test_the_policy_reads_the_descriptors_and_every_reply() -> None:
    raw = config([route("strong"), answer("B")])
    raw["models"]["strong"]["description"] = "Strong and dear."
    async with Orchestrator(parse_config(raw)) as orchestrator:
        await orchestrator.aask(QUESTION)
        policy = orchestrator.pool["policy"]
        strong = orchestrator.pool["strong"]
    assert policy.calls == 2 and strong.calls == 1  # type: ignore[attr-defined]


async def test_a_malformed_turn_gets_a_reminder_then_counts_against_the_format() -> None:
    result = await ask(config(["I think it is B.", answer("B")]))
    agg = result.aggregation
    assert agg is not None and result.answer == "B" and agg.error is None
    assert [t.action for t in agg.turns] == ["malformed", "answer"]
    assert agg.turns[0].note == "the turn must start with <think> ... </think>"
    assert agg.turns[0].reply == "I think it is B."


async def test_malformed_twice_answers_with_the_last_reply_read() -> None:
    turns = [route("strong"), "<think> hm </think> <answer> B </answer> more", "garbage"]
    result = await ask(config(turns))
    agg = result.aggregation
    assert agg is not None and result.answer == "B"  # strong's reply
    assert [t.action for t in agg.turns] == ["route", "malformed", "malformed"]
    assert agg.turns[1].note == "text after </answer>"
    assert agg.error is not None and "answered with strong's reply" in agg.error
    assert agg.chosen == (0,)


async def test_malformed_with_nothing_read_fails_the_request_with_its_trace() -> None:
    with pytest.raises(PipelineFailed) as failed:
        await ask(config(["no tags at all"], pipeline={"format_retries": 0}))
    agg = failed.value.result.aggregation
    assert agg is not None and "no expert reply to answer with" in (agg.error or "")
    assert len(failed.value.result.calls) == 1


async def test_an_unknown_expert_is_malformed_and_named() -> None:
    result = await ask(config([route("nobody"), answer("A")]))
    agg = result.aggregation
    assert agg is not None and agg.turns[0].action == "malformed"
    assert agg.turns[0].note == "unknown expert 'nobody' (experts: cheap, strong)"
    assert [c.expert for c in result.calls] == ["policy", "policy"]


async def test_the_round_cap_stops_routing() -> None:
    turns = [route("cheap"), route("strong"), answer("A")]
    result = await ask(config(turns, pipeline={"max_rounds": 1}))
    agg = result.aggregation
    assert agg is not None
    assert [t.action for t in agg.turns] == ["route", "malformed", "answer"]
    assert "give your <answer> now" in (agg.turns[0].reply or "")
    assert agg.turns[1].note == "no more experts may be asked: give your <answer>"
    assert [c.expert for c in result.calls].count("strong") == 0


async def test_a_budget_hit_mid_loop_is_read_and_the_policy_answers() -> None:
    # Each scripted call counts one token a word; strong costs 9 USD per 1M tokens.
    turns = [route("cheap"), route("strong"), answer("A")]
    result = await ask(config(turns), budget_usd=0.0003)
    agg = result.aggregation
    assert agg is not None and result.answer == "A"
    refused = agg.turns[1]
    assert refused.expert == "strong" and refused.note is not None
    assert "could not answer" in (refused.reply or "")
    strong_calls = [c for c in result.calls if c.expert == "strong"]
    assert strong_calls and all(c.error for c in strong_calls)
    assert "budget_refused" in strong_calls[0].flags


async def test_a_failing_expert_is_read_as_no_answer() -> None:
    raw = config([route("cheap"), answer("B")], cheap={"behaviour": "error", "retryable": False})
    result = await ask(raw)
    agg = result.aggregation
    assert agg is not None and result.answer == "B"
    assert agg.turns[0].reply is not None and "cheap could not answer" in agg.turns[0].reply


async def test_a_refused_policy_call_answers_with_the_last_reply_read() -> None:
    # A dear policy: its second turn cannot be paid for after the first and a route.
    raw = config([route("strong"), answer("A")])
    raw["models"]["policy"].update({"input_price": 1000.0, "output_price": 1000.0})
    result = await ask(raw, budget_usd=0.5)
    agg = result.aggregation
    assert agg is not None and result.answer == "B"
    assert [t.action for t in agg.turns] == ["route", "failed"]
    assert agg.error is not None and agg.error.startswith("the policy's call failed")
    assert "answered with strong's reply" in agg.error


async def test_a_failing_first_policy_call_fails_the_request() -> None:
    raw = config([route("strong"), answer("B")])
    raw["models"]["policy"].update({"behaviour": "error", "retryable": False})
    with pytest.raises(PipelineFailed) as failed:
        await ask(raw)
    assert [c.expert for c in failed.value.result.calls] == ["policy"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"policy": "zz"}, r"pipelines.r1.aggregator.policy: unknown model 'zz'"),
        ({"experts": ["cheap", "zz"]}, r"pipelines.r1.aggregator.experts\[1\]: unknown model"),
        ({"experts": []}, r"pipelines.r1.aggregator.experts"),
        ({"max_rounds": -1}, r"pipelines.r1.aggregator.max_rounds"),
        ({"rounds": 2}, r"pipelines.r1.aggregator.rounds"),
    ],
)
def test_configs_are_checked_at_the_bad_key(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(config([answer("A")], pipeline=params))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "descriptors file not found"),
        ("{not json", "not valid JSON"),
        ('{"cheap": {"accuracy": 2}}', r"cheap.accuracy: Input should be less than or equal to 1"),
        ('{"cheap": 3}', "cheap: must be a mapping"),
    ],
)
def test_a_bad_descriptors_file_is_an_error_at_its_key(
    tmp_path: Any, content: str | None, message: str
) -> None:
    path = tmp_path / "descriptors.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=r"pipelines.r1.aggregator.descriptors: .*" + message):
        parse_config(config([answer("A")], pipeline={"descriptors": str(path)}))


def test_measured_descriptors_are_what_the_policy_reads() -> None:
    from signoria.agents.types import ModelCard
    from signoria.orchestrator.router_r1.prompt import (
        ExpertDescriptor,
        descriptors_for,
        system_prompt,
    )

    cards = {
        "cheap": ModelCard(name="cheap", description="Cheap.", input_price=1, output_price=2),
        "dear": ModelCard(name="dear", description="Dear."),
    }
    measured = {"cheap": ExpertDescriptor(name="cheap", description="Measured.", accuracy=0.9)}
    text = system_prompt(descriptors_for(["cheap", "dear"], cards, measured), max_rounds=3)
    assert "- cheap: Measured. Price unknown. Right on 90% of example questions." in text
    assert "- dear: Dear. Price unknown." in text  # no price is never a made-up $0
    assert "at most 3 times" in text
    card_only = system_prompt(descriptors_for(["cheap"], cards), max_rounds=1)
    assert "- cheap: Cheap. Price $1 in / $2 out per 1M tokens." in card_only
