"""Router-R1's turn format, reward and cost scale, against hand-computed values; and the
replay of a routed question that is written anew."""

from __future__ import annotations

import math

import pytest

from signoria.agents.backends.replay import OutcomeTable, asked_question, coverage
from signoria.orchestrator.router_r1.episode import Episode
from signoria.orchestrator.router_r1.reward import CostScale, exact_match, reward
from signoria.orchestrator.router_r1.tags import Answer, Malformed, Route, close_action, parse_turn

EXPERTS = ("zero-one-ai/Yi-34B-Chat", "gpt-4-1106-preview")


def test_a_route_names_an_expert_by_its_short_name() -> None:
    action = parse_turn(
        "<think> Yi is cheap. </think>\n<search> yi-34b-chat: Is 7 prime? </search>", EXPERTS
    )
    assert action == Route("Yi is cheap.", "zero-one-ai/Yi-34B-Chat", "Is 7 prime?")


def test_an_answer() -> None:
    assert parse_turn("<think>done</think><answer> B </answer>\n", EXPERTS) == Answer("done", "B")


@pytest.mark.parametrize(
    ("turn", "reason"),
    [
        ("The answer is B.", "the turn must start with <think> ... </think>"),
        ("<answer> B </answer>", "the turn must start with <think> ... </think>"),
        ("<think> ... </think><answer>B</answer>", "the <think> block is empty"),
        ("<think> a </think>", "no action: end the turn with <search> or <answer>"),
        ("<think> a </think><answer>B</answer><answer>C</answer>", "one action per turn"),
        ("<think> a <answer>B</answer> </think><answer>B</answer>", "tags nested inside"),
        ("<think> a </think><answer>B</answer> because", "text after </answer>"),
        ("<think> a </think> so <answer>B</answer>", "text between </think> and the action"),
        ("<think> a </think><answer> </answer>", "the answer is empty"),
        ("<think> a </think><search> gpt-4-1106-preview </search>", "write <search> EXPERT"),
        ("<think> a </think><search> LLM-Name: Your-Query </search>", "replace the placeholders"),
        ("<think> a </think><search> gpt-5: hi </search>", "unknown expert 'gpt-5'"),
        ("<think> a </think><information>x</information>", "<information> is written by"),
        ("<think> a </think><answer> B", "unbalanced <answer> tags"),
    ],
)
def test_malformed_turns_say_which_rule_they_broke(turn: str, reason: str) -> None:
    action = parse_turn(turn, EXPERTS)
    assert isinstance(action, Malformed) and action.reason.startswith(reason)


def test_a_stop_sequence_dropped_by_the_provider_is_put_back() -> None:
    assert (
        close_action("<think>a</think><search> x: y") == "<think>a</think><search> x: y </search>"
    )
    assert (
        close_action("<think>a</think><answer>B</answer>") == "<think>a</think><answer>B</answer>"
    )
    assert close_action("<think>a</think>") == "<think>a</think>"


def test_an_episode_counts_rounds_and_keeps_the_format_verdict() -> None:
    episode = Episode("Q?", "system", EXPERTS, max_rounds=1)
    assert isinstance(episode.observe("<think>a</think><search> gpt-4-1106-preview: Q?"), Route)
    read = episode.inform("B")
    assert read.startswith("<information> B </information>") and "give your <answer> now" in read
    late = episode.observe("<think>b</think><search> gpt-4-1106-preview: Q?")
    assert isinstance(late, Malformed) and not episode.format_ok
    assert isinstance(episode.observe("<think>c</think><answer>B</answer>"), Answer)
    assert not episode.format_ok  # one malformed turn spoils the episode's format
    roles = [m.role for m in episode.messages]
    assert roles == ["system", "user", "assistant", "user", "assistant", "assistant"]


def test_information_is_cut_to_its_limit() -> None:
    episode = Episode("Q?", "system", EXPERTS, max_rounds=2, information_limit=100)
    episode.observe("<think>a</think><search> gpt-4-1106-preview: Q?")
    assert episode.inform("x" * 500) == "<information> " + "x" * 100 + " [...] </information>"


@pytest.mark.parametrize(
    ("format_ok", "correct", "cost_reward", "weight", "expected"),
    [
        (False, True, 1.0, 0.0, -1.0),  # the format term overrides a right answer
        (False, False, 0.0, 0.5, -1.0),
        (True, False, 1.0, 0.5, 0.0),  # wrong: no credit for being cheap
        (True, True, 0.2, 0.0, 1.0),  # w = 0: cost does not count
        (True, True, 0.2, 0.5, 0.6),  # 0.5 * 1 + 0.5 * 0.2
        (True, True, 1.0, 0.9, 1.0),  # the cheapest right answer: full reward
        (True, True, 0.0, 0.9, 0.1),  # the dearest right answer: 1 - w
    ],
)
def test_reward_against_hand_computed_values(
    format_ok: bool, correct: bool, cost_reward: float, weight: float, expected: float
) -> None:
    got = reward(format_ok=format_ok, correct=correct, cost_reward=cost_reward, cost_weight=weight)
    assert got == pytest.approx(expected)


def test_the_cost_scale_follows_the_square_root_between_percentiles() -> None:
    scale = CostScale(window=5, low_quantile=0.0, high_quantile=1.0)
    assert scale(0.0) == 0.5  # one cost: no spread yet
    assert scale(4.0) == 0.0  # sqrt 2 is the dearest seen
    assert scale(1.0) == pytest.approx(1.0 - 1.0 / 2.0)  # sqrt 1 = halfway between 0 and 2
    assert scale(None) == 0.5 and scale(math.nan) == 0.5  # unknown prices: no signal
    frozen = scale.freeze()
    assert frozen.frozen == (0.0, 2.0)
    assert frozen(9.0) == 0.0 and frozen(0.0) == 1.0 and frozen.frozen == (0.0, 2.0)


def test_the_default_scale_uses_the_5th_and_95th_percentiles() -> None:
    scale = CostScale()
    for cost in range(101):
        scale(float(cost) ** 2)  # square roots 0..100
    assert scale.bounds() == pytest.approx((5.0, 95.0), abs=0.6)


def test_a_seeded_scale_spans_every_expert_when_thinned() -> None:
    """Three experts' costs, question by question: 3000 costs thinned to a window of
    1000. A stride of 3 would keep the cheapest expert's only (the bug this guards)."""
    cheap, middle, dear = 0.0001, 0.0003, 0.004
    costs: list[float | None] = [c for _ in range(1000) for c in (cheap, middle, dear)]
    scale = CostScale.seeded([*costs, None, math.nan])
    low, high = scale.bounds()
    assert low == pytest.approx(math.sqrt(cheap)) and high == pytest.approx(math.sqrt(dear))
    frozen = scale.freeze()
    assert frozen(cheap) == 1.0 and frozen(dear) == 0.0
    assert 0.7 < frozen(middle) < 0.9  # Yi-like: cheap but not cheapest
    assert CostScale.seeded([cheap, dear]).bounds() == pytest.approx(
        (
            math.sqrt(cheap) + 0.05 * (math.sqrt(dear) - math.sqrt(cheap)),
            math.sqrt(cheap) + 0.95 * (math.sqrt(dear) - math.sqrt(cheap)),
        )
    )


@pytest.mark.parametrize(
    ("answer", "reference", "right"),
    [
        ("B", "B", True),
        ("It is a tie", "A", False),  # a lower-case "a" names no option
        ("B) carbon dioxide", "B", True),
        ("The answer is 42.0", "42", True),
        ("The Eiffel Tower!", "eiffel tower", True),
        ("Paris", "London", False),
        (None, "B", False),
    ],
)
def test_exact_match(answer: str | None, reference: str, right: bool) -> None:
    assert exact_match(answer, reference) is right


ARC = (
    "Which gas do plants take in?\nA) oxygen\nB) carbon dioxide\nAnswer:\nB\n\n"
    "Which geologic process most likely caused the formation of the Mount St. Helens "
    "Volcano?\nA) diverging boundaries\nB) rift zones\nC) converging boundaries\n"
    "D) transform faults\nAnswer:"
)


def test_a_routed_question_written_anew_finds_its_recorded_row() -> None:
    assert asked_question(ARC).startswith("Which geologic process")
    rows = [
        {"id": "1", "query": ARC, "outcomes": {"m": {"score": 1, "response": "C"}}},
        {"id": "2", "query": "What is 2 + 2?", "outcomes": {"m": {"score": 1, "response": "4"}}},
    ]
    table = OutcomeTable(rows)
    written = (
        "Which geologic process caused the formation of the Mount St. Helens Volcano? "
        "A) diverging boundaries B) rift zones C) converging boundaries D) transform faults"
    )
    assert coverage(written, ARC) > 0.8  # "most likely" left out
    assert table.find(written) is None  # exact matching only, unless asked
    assert table.find(written, "question") is rows[0]
    assert table.find("Which volcano?", "question") is None  # too few of its words
