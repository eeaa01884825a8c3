"""learned-vote: weights fitted against hand-computed values, a strong expert followed or
overruled, a liar in the strongest seat losing its weight, the registry and config path,
and (when the shared data is present) the fit on the real RouterBench table."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from signoria.agents.types import Completion
from signoria.orchestrator.aggregators.learned_vote import LearnedVote, LearnedVoteParams
from signoria.orchestrator.aggregators.protocol import AggregationContext
from signoria.orchestrator.aggregators.registry import AGGREGATORS
from signoria.orchestrator.aggregators.vote_fit import fit_weights, signatures
from signoria.orchestrator.aggregators.vote_weights import (
    FLOOR,
    POOLED,
    TRUST_CAP,
    ExpertStats,
    TaskWeights,
    VoteWeights,
    VoteWeightsError,
    ballot_weight,
    examples,
    trust_evidence,
)

ROUTERBENCH = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "routerbench" / "train.jsonl"
)
ABCD = "\nA) one\nB) two\nC) three\nD) four"
STRONG, WEAK = "strong", ["w1", "w2", "w3", "w4"]


def ctx() -> AggregationContext:
    async def never(*_: Any) -> Completion:
        raise AssertionError("a vote calls no model")

    return AggregationContext(call=never, max_tokens=16)


def said(expert: str, letter: str) -> Completion:
    return Completion(expert=expert, text=f"The answer is ({letter}).")


def hand_weights(tmp_path: Path, sharpness: float = 1.0) -> Path:
    """One strong expert (accuracy 0.97) and four weak ones (0.7); honest agreement with
    the others' majority 0.9, which is right 0.9 of the time."""
    stats = {STRONG: ExpertStats(accuracy=0.97, n=100, agreement=0.9, others_accuracy=0.9)}
    stats |= {w: ExpertStats(accuracy=0.7, n=100, agreement=0.8, others_accuracy=0.9) for w in WEAK}
    weights = VoteWeights(
        answer="letter",
        experts=(STRONG, *WEAK),
        tasks={POOLED: TaskWeights(sharpness=sharpness, experts=stats)},
    )
    path = tmp_path / "weights.json"
    weights.save(path)
    return path


def test_ballot_weight_is_chance_corrected_log_odds() -> None:
    assert ballot_weight(0.9, 4, 1.0, 1.0) == pytest.approx(math.log(0.9 * 3 / 0.1))
    assert ballot_weight(0.9, 2, 1.0, 1.0) == pytest.approx(math.log(9))
    assert ballot_weight(0.9, 4, 2.0, 1.0) == pytest.approx(math.log(27) ** 2)
    # Trusted with 0.5, a 0.9 expert is right 0.45 of the time: below chance on 2 options.
    assert ballot_weight(0.9, 2, 1.0, 0.5) == FLOOR
    assert ballot_weight(0.25, 4, 1.0, 1.0) == FLOOR  # chance on 4 options
    # A disagreement counts against honesty, an agreement for it; b = (1 - 0.9) / 3.
    stats = ExpertStats(accuracy=0.9, n=10, agreement=0.9, others_accuracy=0.9)
    assert trust_evidence(stats, 4, True) == pytest.approx(math.log(0.9 / (0.1 / 3)))
    assert trust_evidence(stats, 4, False) == pytest.approx(math.log(0.1 / (1 - 0.1 / 3)))


def row(i: int, task: str, template: str, answers: dict[str, str]) -> dict[str, Any]:
    return {
        "id": f"{task}-{i}",
        "task": task,
        "query": f"Question {i} of {task}?{ABCD}\n{template}",
        "reference": "A",
        "outcomes": {
            m: {"score": float(a == "A"), "cost": 0.0, "response": a} for m, a in answers.items()
        },
    }


def test_fit_counts_accuracy_per_task_and_recognises_tasks() -> None:
    rows = []
    for i in range(40):  # task x: m1 right 36/40, m2 right 30/40
        rows.append(
            row(
                i,
                "x",
                "Answer with X.",
                {"m1": "A" if i >= 4 else "B", "m2": "A" if i >= 10 else "C"},
            )
        )
    for i in range(40):  # task y: m1 right 20/40, m2 right 40/40
        rows.append(row(i, "y", "Answer with Y.", {"m1": "A" if i % 2 else "D", "m2": "A"}))
    weights = fit_weights(rows, ["m1", "m2"], answer="letter")
    assert set(weights.tasks) == {POOLED, "x", "y"}
    assert weights.tasks["x"].experts["m1"].accuracy == pytest.approx(37 / 42)  # Laplace
    assert weights.tasks["x"].experts["m2"].accuracy == pytest.approx(31 / 42)
    assert weights.tasks["y"].experts["m2"].accuracy == pytest.approx(41 / 42)
    assert weights.tasks[POOLED].experts["m1"].accuracy == pytest.approx(57 / 82)
    # Agreement of m1 with the only other expert, m2, on x: they differ on rows 0..9
    # except none agree wrong (B vs C): 30 of 40 agree, Laplace (30 + 1) / (40 + 2).
    assert weights.tasks["x"].experts["m1"].agreement == pytest.approx(31 / 42)
    assert weights.tasks["x"].signature == ("Answer with X.",)
    assert weights.task_of(f"New one?{ABCD}\nAnswer with Y.") == "y"
    assert weights.task_of("Unseen template?") == POOLED
    assert weights.fitted_on["rows"] == 80


def test_signature_lines_must_be_exclusive_to_their_task() -> None:
    shared = "Print only a single letter, please."
    rows = [
        row(i, t, f"{shared}\nTask {t} template line", {"m": "A"}) for t in "pq" for i in range(5)
    ]
    found = signatures(examples(rows, ["m"], "letter"))
    assert found == {"p": ("Task p template line",), "q": ("Task q template line",)}


def test_too_few_rows_is_an_error() -> None:
    with pytest.raises(VoteWeightsError, match="need at least"):
        fit_weights([row(0, "x", "t", {"m": "A"})], ["m"], answer="letter")


async def test_strong_expert_followed_against_two_but_overruled_by_all(tmp_path: Path) -> None:
    vote = LearnedVote(LearnedVoteParams(weights=hand_weights(tmp_path), trust=False))
    strong = math.log(TRUST_CAP * 0.97 * 3 / (1 - TRUST_CAP * 0.97))
    weak = math.log(TRUST_CAP * 0.7 * 3 / (1 - TRUST_CAP * 0.7))
    assert strong > 2 * weak and 4 * weak > strong  # what the two cases below rely on
    split = [said(STRONG, "A"), said("w1", "B"), said("w2", "B"), said("w3", "C"), said("w4", "D")]
    result = await vote.aggregate("Q?" + ABCD, split, ctx())
    assert result.text == split[0].text and result.chosen == (0,)
    assert result.votes["A"] == pytest.approx(strong) and result.votes["B"] == pytest.approx(
        2 * weak
    )
    assert result.flagged == (1, 2, 3, 4)
    united = [said(STRONG, "A"), *(said(w, "B") for w in WEAK)]
    result = await vote.aggregate("Q?" + ABCD, united, ctx())
    assert result.text == united[1].text and result.chosen == (1, 2, 3, 4)


async def test_unknown_expert_earns_no_trust_not_even_a_tie(tmp_path: Path) -> None:
    vote = LearnedVote(LearnedVoteParams(weights=hand_weights(tmp_path)))
    # w1 and w2 tie; a stranger siding with w2 must not break the tie (first seen wins).
    tie = [said("stranger", "B"), said("w1", "A"), said("w2", "B")]
    result = await vote.aggregate("Q?" + ABCD, tie, ctx())
    assert result.text == tie[1].text
    # Nobody known: a plain majority of the strangers.
    strangers = [said("s1", "C"), said("s2", "D"), said("s3", "D")]
    assert (await vote.aggregate("Q?" + ABCD, strangers, ctx())).text == strangers[1].text


async def test_a_liar_in_the_strongest_seat_loses_its_weight(tmp_path: Path) -> None:
    path = hand_weights(tmp_path, sharpness=8.0)  # the strong expert outweighs all four
    liar, honest = (
        LearnedVote(LearnedVoteParams(weights=path)),
        LearnedVote(LearnedVoteParams(weights=path)),
    )
    wrong = []
    for n in range(20):
        seats = [said(STRONG, "D"), *(said(w, "A") for w in WEAK)]
        wrong.append((await liar.aggregate(f"Q{n}?" + ABCD, seats, ctx())).text == seats[0].text)
        # The honest one disagrees with the others on one item in five.
        mine = "B" if n % 5 == 4 else "A"
        await honest.aggregate(
            f"Q{n}?" + ABCD, [said(STRONG, mine), *(said(w, "A") for w in WEAK)], ctx()
        )
    # Each lie costs 0.5 * log((1 - 0.9) / (1 - 0.1 / 3)) = -1.13 of honesty's log-odds,
    # from the bound log(99) = 4.60. After three lies trust is 0.77, so the liar is right
    # with probability 0.77 * 0.97 = 0.74 at most: log(0.74 * 3 / 0.26) ** 8 = 483 < the
    # four others' 4 * log(0.693 * 3 / 0.307) ** 8 = 716. It never wins again.
    assert wrong == [True] * 3 + [False] * 17
    assert liar.trust(STRONG) == pytest.approx(1 - TRUST_CAP)
    # The honest strong expert's one disagreement in five is forgiven at the next item.
    assert honest.trust(STRONG) > 0.95 and honest.trust("w1") > 0.9


def test_registry_builds_it_and_checks_its_file_and_task(tmp_path: Path) -> None:
    path = hand_weights(tmp_path)
    params = AGGREGATORS.params_model("learned-vote").model_validate({"weights": str(path)})
    assert isinstance(AGGREGATORS.build("learned-vote", params), LearnedVote)
    assert params.model_refs() == {}  # type: ignore[attr-defined]
    with pytest.raises(VoteWeightsError, match="fit them: signoria aggregator fit"):
        LearnedVote(LearnedVoteParams(weights=tmp_path / "missing.json"))
    with pytest.raises(VoteWeightsError, match="no task 'nope'"):
        LearnedVote(LearnedVoteParams(weights=path, task="nope"))
    (tmp_path / "bad.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(VoteWeightsError, match="not vote weights"):
        LearnedVote(LearnedVoteParams(weights=tmp_path / "bad.json"))


@pytest.mark.skipif(not ROUTERBENCH.is_file(), reason=f"shared data absent: {ROUTERBENCH}")
def test_fit_on_routerbench_training_side_recognises_every_test_task() -> None:
    from signoria.agents.backends.replay import load_table
    from signoria.evals.redteam import is_letter, split_table, strongest_models

    train, test = split_table(load_table(ROUTERBENCH), 0.3, seed=0)
    models = strongest_models(train, 5)
    assert models[0] == "gpt-4-1106-preview"
    weights = fit_weights(
        [r for r in train.rows if is_letter(r.get("reference"))], models, answer="letter"
    )
    assert set(weights.tasks) == {POOLED, "arc-challenge", "winogrande"}
    mcq = [r for r in test.rows if is_letter(r.get("reference"))]
    assert all(weights.task_of(r["query"]) == r["task"] for r in mcq)
    # Correlated weaker experts: the fit sharpens beyond Nitzan-Paroush (s = 1).
    assert weights.tasks["arc-challenge"].sharpness > 1.0


def test_fit_command_writes_weights_that_a_config_names(tmp_path: Path) -> None:
    import subprocess
    import sys

    from signoria.errors import ConfigError
    from signoria.orchestrator.config import parse_config
    from tests.test_redteam import seeded_table

    data = seeded_table(tmp_path / "table.jsonl", n=120)
    out = tmp_path / "weights.json"
    signoria = str(Path(sys.executable).parent / "signoria")
    split = ["--test-fraction", "0.25", "--answer", "letter", "--json"]
    done = subprocess.run(
        [
            signoria,
            "aggregator",
            "fit",
            "--data",
            str(data),
            "--out",
            str(out),
            "--top",
            "3",
            *split,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    weights = VoteWeights.load(out)
    assert summary["experts"] == list(weights.experts) == ["m1", "m2", "m3"]
    assert weights.fitted_on["test_fraction"] == 0.25 and weights.fitted_on["rows"] < 120
    assert set(weights.tasks) == {POOLED, "toy"}

    base: dict[str, Any] = {
        "default_pipeline": "lv",
        "models": {m: {"backend": "scripted"} for m in ("m1", "m2", "m3")},
        "pipelines": {
            "lv": {
                "router": {"name": "fixed", "experts": ["m1", "m2", "m3"]},
                "aggregator": {"name": "learned-vote", "weights": str(out)},
            }
        },
    }
    config = parse_config(base, "x.yaml")
    assert config.pipelines["lv"].aggregator.name == "learned-vote"
    base["pipelines"]["lv"]["aggregator"] = {"name": "learned-vote"}
    with pytest.raises(ConfigError, match=r"aggregator.weights: Field required"):
        parse_config(base, "x.yaml")
    base["pipelines"]["lv"]["aggregator"] = {"name": "learned-vote", "weights": "w", "k": 1}
    with pytest.raises(ConfigError, match=r"aggregator.k: Extra inputs are not permitted"):
        parse_config(base, "x.yaml")
