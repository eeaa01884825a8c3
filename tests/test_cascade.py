"""The answer-aware cascade: features, the learned accept/escalate rule, its offline cost
accounting, its file, the CLI, and the live pipeline over recorded (replay) experts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from signoria.agents.types import ModelCard
from signoria.errors import ConfigError
from signoria.orchestrator.cascade.features import Answer, log_odds, stage_features, weighted_vote
from signoria.orchestrator.cascade.pacing import Pacer
from signoria.orchestrator.cascade.policy import AnswerCascade, CascadeSettings
from signoria.orchestrator.cascade.search import Target, choose
from signoria.orchestrator.config import load_config
from signoria.orchestrator.pipeline import Pipeline, PipelineFailed
from signoria.orchestrator.sdk import Orchestrator
from signoria.routers.data import (
    Outcome,
    RoutingDataError,
    RoutingTable,
    Row,
    build_table,
    load_models,
)
from signoria.routers.data import load_table as load_routing_table
from signoria.routers.policy import sweep
from tests.aggregation_helpers import build, pipeline, pool
from tests.conftest import scripted

FIXTURES = Path(__file__).parent / "fixtures"
MCQ = "Question?\nA) yes\nB) no\nAnswer with the letter."
TINY = FIXTURES / "routing_tiny.jsonl"
TINY_MODELS = FIXTURES / "routing_tiny.models.json"
SIGNORIA = str(Path(sys.executable).parent / "signoria")
CHEAP, SECOND, STRONG = "cheap", "second", "strong"
PRICES = {CHEAP: 0.001, SECOND: 0.002, STRONG: 0.05}


def test_weighted_vote_and_features_by_hand() -> None:
    answers = [Answer(CHEAP, "(A)", "A"), Answer(SECOND, "B", "B"), Answer(STRONG, "B.", "B")]
    vote = weighted_vote(answers, {CHEAP: 1.0, SECOND: 0.5, STRONG: 1.0})
    assert (vote.winner, vote.distinct, vote.first) == ("B", 2, 1)
    assert vote.share == pytest.approx(1.5 / 2.5)
    x, _ = stage_features(answers, "letter", {CHEAP: 1.0, SECOND: 0.5, STRONG: 1.0})
    # kind one-hot (letter), share, distinct, unanimous, then (side, log length) per model
    assert x[:6].tolist() == pytest.approx([1, 0, 0, 1.5 / 2.5, 2, 0])
    assert x[6::2].tolist() == [-1, 1, 1]
    assert log_odds(0.5) == pytest.approx(0.01)  # no better than chance: the floor
    assert log_odds(0.9) == pytest.approx(np.log(9))


def synthetic(n: int = 300, seed: int = 0) -> list[Row]:
    """Cheap models agree on 70% of the rows and are then right 95% of the time; on the
    rest they disagree, one of them right at random; the strong model is always right."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        agree = rng.random() < 0.7
        right_cheap = rng.random() < (0.95 if agree else 0.5)
        wrong = "B"
        cheap_answer = "A" if right_cheap else wrong
        second_answer = cheap_answer if agree else ("B" if cheap_answer == "A" else "A")
        query = f"Question {i}?\nA) yes\nB) no\nAnswer with the letter."

        def outcome(model: str, answer: str) -> Outcome:
            return Outcome(score=float(answer == "A"), cost=PRICES[model], response=answer)

        rows.append(
            Row(
                id=f"q{i}",
                task="mcq",
                query=query,
                reference="A",
                outcomes={
                    CHEAP: outcome(CHEAP, cheap_answer),
                    SECOND: outcome(SECOND, second_answer),
                    STRONG: outcome(STRONG, "A"),
                },
            )
        )
    return rows


def table_of(rows: list[Row]) -> RoutingTable:
    info = {m: ModelCard(name=m) for m in PRICES}
    return build_table(tuple(rows), tuple(sorted(info)), info)


@pytest.fixture(scope="module")
def fitted() -> tuple[AnswerCascade, RoutingTable]:
    train, test = table_of(synthetic(300, 0)), table_of(synthetic(200, 1))
    settings = CascadeSettings(chain=((CHEAP, SECOND), (STRONG,)), value_usd=0.5)
    return AnswerCascade.fit(train, settings), test


def test_never_paying_asks_only_the_first_stage_and_counts_its_cost(
    fitted: tuple[AnswerCascade, RoutingTable],
) -> None:
    cascade, test = fitted
    outcome = cascade.with_value(0.0).outcome(test)
    strong = test.models.index(STRONG)
    assert outcome.calls[:, strong].sum() == 0
    assert outcome.cost == pytest.approx(np.full(len(test), PRICES[CHEAP] + PRICES[SECOND]))


def test_always_paying_asks_every_stage_and_pays_for_all(
    fitted: tuple[AnswerCascade, RoutingTable],
) -> None:
    cascade, test = fitted
    outcome = cascade.with_value(1e9).outcome(test)
    assert outcome.quality() == 1.0
    assert outcome.cost == pytest.approx(np.full(len(test), sum(PRICES.values())))


def test_a_fair_price_escalates_exactly_the_disagreements(
    fitted: tuple[AnswerCascade, RoutingTable],
) -> None:
    cascade, test = fitted
    outcome = cascade.outcome(test)  # 0.5 USD per right answer vs 0.05 for the call
    disagree = np.array(
        [r.outcomes[CHEAP].response != r.outcomes[SECOND].response for r in test.rows]
    )
    escalated = outcome.calls[:, test.models.index(STRONG)] > 0
    assert (escalated == disagree).all()
    assert outcome.quality() > 0.9  # about 0.7 * 0.95 + 0.3
    assert outcome.total_cost() < PRICES[STRONG] * len(test) * 0.5


def test_sweep_runs_from_cheapest_to_strongest(fitted: tuple[AnswerCascade, RoutingTable]) -> None:
    cascade, test = fitted
    points = sweep(cascade, test)
    assert points[0].call_share == {CHEAP: 1.0, SECOND: 1.0}
    assert points[-1].call_share[STRONG] == 1.0
    assert points[-1].quality >= points[0].quality


def test_the_file_round_trips_and_bad_files_say_why(
    fitted: tuple[AnswerCascade, RoutingTable], tmp_path: Path
) -> None:
    cascade, test = fitted
    cascade.save(tmp_path / "c.json")
    again = AnswerCascade.load(tmp_path / "c.json")
    assert (again.outcome(test).calls == cascade.outcome(test).calls).all()
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(RoutingDataError, match="not a cascade file"):
        AnswerCascade.load(tmp_path / "bad.json")
    with pytest.raises(RoutingDataError, match="not found"):
        AnswerCascade.load(tmp_path / "missing.json")


def test_a_table_without_responses_or_models_is_refused() -> None:
    rows = synthetic(20)
    with pytest.raises(RoutingDataError, match="lacks"):
        AnswerCascade.fit(table_of(rows), CascadeSettings(chain=((CHEAP,), ("gpt-9",))))
    silent = [
        r.model_copy(
            update={
                "outcomes": {
                    m: o.model_copy(update={"response": None}) for m, o in r.outcomes.items()
                }
            }
        )
        for r in rows
    ]
    with pytest.raises(RoutingDataError, match="no recorded response"):
        AnswerCascade.fit(table_of(silent), CascadeSettings(chain=((CHEAP,), (STRONG,))))


def test_the_search_meets_a_cost_target_on_validation() -> None:
    train, validation = table_of(synthetic(300, 2)), table_of(synthetic(150, 3))
    choice = choose(train, validation, Target(cost_ratio=0.5))
    assert choice.validation.cost is not None and choice.reference.cost is not None
    assert choice.validation.cost <= 0.5 * choice.reference.cost
    assert choice.validation.quality > 0.95
    assert choice.chain[-1] == (STRONG,)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SIGNORIA, *args], capture_output=True, text=True, timeout=300)


def test_cli_trains_and_sweeps_on_recorded_routerbench_rows(tmp_path: Path) -> None:
    table = load_routing_table(TINY, load_models(TINY_MODELS))
    train, test = table.split(0.3, seed=0)
    for name, part in (("train", train), ("test", test)):
        (tmp_path / f"{name}.jsonl").write_text(
            "".join(json.dumps(r.model_dump()) + "\n" for r in part.rows)
        )
    trained = run_cli(
        "route", "cascade", "train", "--train", str(tmp_path / "train.jsonl"),
        "--models", str(TINY_MODELS), "--out", str(tmp_path / "c.json"),
        "--chain", "mistralai/mixtral-8x7b-chat;zero-one-ai/Yi-34B-Chat;gpt-4-1106-preview",
        "--json",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    report = json.loads(trained.stdout)
    assert report["settings"]["value_usd"] is not None
    # The default target (half the best single model's cost) as the spend a pacer should hold.
    strong_cost = train.costs[:, train.models.index("gpt-4-1106-preview")].mean()
    assert report["budget_usd"] == pytest.approx(0.5 * strong_cost)
    evaluated = run_cli(
        "route", "cascade", "eval", "--cascade", str(tmp_path / "c.json"),
        "--test", str(tmp_path / "test.jsonl"), "--models", str(TINY_MODELS),
        "--sweep", "--json", "--plot", str(tmp_path / "curve.png"),
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    result = json.loads(evaluated.stdout)
    assert result["n"] == len(test)
    assert {"param", "quality", "cost", "call_share"} <= set(result["curve"][0])
    assert result["curve"][0]["call_share"] == {"mistralai/mixtral-8x7b-chat": 1.0}
    assert "gpt-4-1106-preview" in result["baselines"] and "oracle" in result["baselines"]
    assert {"cheapest_reaching_reference", "best_within_25pct", "auc"} <= set(result["summary"])
    assert (tmp_path / "curve.png").stat().st_size > 0
    eager = run_cli(  # a knob that escalates on any doubt
        "route", "cascade", "train", "--train", str(tmp_path / "train.jsonl"),
        "--models", str(TINY_MODELS), "--out", str(tmp_path / "eager.json"),
        "--chain", "mistralai/mixtral-8x7b-chat;zero-one-ai/Yi-34B-Chat;gpt-4-1106-preview",
        "--value-usd", "100",
    )  # fmt: skip
    assert eager.returncode == 0, eager.stderr
    evaluate = ["route", "cascade", "eval", "--cascade", str(tmp_path / "eager.json")]
    evaluate += ["--test", str(tmp_path / "test.jsonl"), "--models", str(TINY_MODELS), "--json"]
    static, paced = (run_cli(*evaluate, *extra) for extra in ([], ["--budget-usd", "1e-6"]))
    assert static.returncode == 0 and paced.returncode == 0, static.stderr + paced.stderr
    static_result, paced_result = json.loads(static.stdout), json.loads(paced.stdout)
    assert paced_result["budget_usd"] == 1e-6 and static_result["budget_usd"] is None
    # Far under any stage's price: the pacer stops escalating, the static knob does not.
    strong = "gpt-4-1106-preview"
    assert static_result["call_share"][strong] > 0.3
    assert paced_result["call_share"].get(strong, 0.0) < 0.1
    assert paced_result["cost"] < static_result["cost"]
    zero = run_cli(
        "route", "cascade", "eval", "--cascade", str(tmp_path / "c.json"),
        "--test", str(tmp_path / "test.jsonl"), "--models", str(TINY_MODELS), "--budget-usd", "0",
    )  # fmt: skip
    assert zero.returncode == 2 and "--budget-usd" in zero.stderr
    bad = run_cli(
        "route", "cascade", "train", "--train", str(tmp_path / "train.jsonl"),
        "--models", str(TINY_MODELS), "--out", str(tmp_path / "x.json"), "--option", "final=maybe",
    )  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [bad.stderr.strip()]
    assert "final" in bad.stderr


@pytest.fixture(scope="module")
def replay_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pool of recorded experts (their real RouterBench answers) and a cascade pipeline
    whose cascade was trained on other rows than the ones asked."""
    root = tmp_path_factory.mktemp("cascade")
    table = load_routing_table(TINY, load_models(TINY_MODELS))
    train, _ = table.split(0.3, seed=0)
    chain = (("mistralai/mixtral-8x7b-chat", "zero-one-ai/Yi-34B-Chat"), ("gpt-4-1106-preview",))
    AnswerCascade.fit(train, CascadeSettings(chain=chain, value_usd=0.05)).save(root / "c.json")
    models = {
        name.replace("/", "_"): {"backend": "replay", "table": str(TINY), "model": name}
        for stage in chain
        for name in stage
    }
    config = {
        "default_pipeline": "cascade",
        "models": models,
        "pipelines": {
            "cascade": {
                "router": {"name": "fixed", "experts": [m.replace("/", "_") for m in chain[0]]},
                "aggregator": {"name": "cascade", "file": str(root / "c-local.json")},
            }
        },
    }
    # The live pool names models as the config does: rewrite the chain's names.
    raw = json.loads((root / "c.json").read_text())
    raw["settings"]["chain"] = [[m.replace("/", "_") for m in s] for s in raw["settings"]["chain"]]
    raw["weights"] = {
        k: {m.replace("/", "_"): w for m, w in v.items()} for k, v in raw["weights"].items()
    }
    (root / "c-local.json").write_text(json.dumps(raw))
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    return root / "config.yaml"


def test_live_cascade_stops_on_agreement_and_escalates_on_doubt(replay_config: Path) -> None:
    table = load_routing_table(TINY, load_models(TINY_MODELS))
    _, test = table.split(0.3, seed=0)
    mix, yi = "mistralai/mixtral-8x7b-chat", "zero-one-ai/Yi-34B-Chat"
    from signoria.orchestrator.answers import extract_letter

    def letters(row: Row) -> tuple[str | None, str | None]:
        return tuple(extract_letter(row.outcomes[m].response or "") for m in (mix, yi))  # type: ignore[return-value]

    agree = next(r for r in test.rows if r.task != "mbpp" and len(set(letters(r))) == 1)
    disagree = next(r for r in test.rows if r.task != "mbpp" and len(set(letters(r))) == 2)
    with Orchestrator.from_config(replay_config) as orch:
        calm = orch.ask(agree.query)
        doubt = orch.ask(disagree.query)
    assert [c.expert for c in calm.calls] == [m.replace("/", "_") for m in (mix, yi)]
    assert calm.aggregation is not None and [s.accept for s in calm.aggregation.steps] == [True]
    assert doubt.aggregation is not None
    assert [s.accept for s in doubt.aggregation.steps] == [False, True]
    assert doubt.calls[-1].expert == "gpt-4-1106-preview" and doubt.calls[-1].role == "expert"
    assert doubt.answer == disagree.outcomes["gpt-4-1106-preview"].response
    paid = [disagree.outcomes[m].cost or 0.0 for m in (mix, yi, "gpt-4-1106-preview")]
    assert doubt.cost == pytest.approx(sum(paid))


def test_a_cascade_naming_a_model_the_pool_lacks_fails_at_load(
    replay_config: Path, tmp_path: Path
) -> None:
    config = yaml.safe_load(replay_config.read_text())
    del config["models"]["gpt-4-1106-preview"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=r"aggregator\.file\.chain\[1\]\[0\]: unknown model"):
        load_config(tmp_path / "config.yaml")


@pytest.fixture()
def cascade_file(fitted: tuple[AnswerCascade, RoutingTable], tmp_path: Path) -> Path:
    fitted[0].save(tmp_path / "c.json")
    return tmp_path / "c.json"


def cascade_pipeline(path: Path, first: tuple[str, ...] = (CHEAP, SECOND)) -> Pipeline:
    return pipeline(list(first), build("cascade", file=str(path)))


async def test_edge_every_stage_fails(cascade_file: Path) -> None:
    experts = [scripted(m, behaviour="error", retryable=False) for m in (CHEAP, SECOND, STRONG)]
    with pytest.raises(PipelineFailed, match="no expert answered") as info:
        await cascade_pipeline(cascade_file).run(MCQ, pool(*experts))
    assert [c.expert for c in info.value.result.calls] == [CHEAP, SECOND, STRONG]
    assert info.value.result.aggregation is not None
    assert [s.stage for s in info.value.result.aggregation.steps] == [0, 1]


async def test_edge_one_cheap_expert_fails(cascade_file: Path) -> None:
    experts = [
        scripted(CHEAP, behaviour="error", retryable=False),
        scripted(SECOND, answer="A"),
        scripted(STRONG, answer="The answer is (A)"),
    ]
    result = await cascade_pipeline(cascade_file).run(MCQ, pool(*experts))
    assert "A" in result.answer
    assert result.aggregation is not None and 0 not in result.aggregation.chosen


async def test_edge_garbage_from_the_strong_model_keeps_an_answer(cascade_file: Path) -> None:
    experts = [
        scripted(CHEAP, answer="A"),
        scripted(SECOND, answer="B"),
        scripted(STRONG, behaviour="garbage"),
    ]
    result = await cascade_pipeline(cascade_file).run(MCQ, pool(*experts))
    assert [c.expert for c in result.calls] == [CHEAP, SECOND, STRONG]
    assert result.answer  # the strong model's text, whatever it is, is an answer


async def test_edge_a_router_that_skips_the_first_stage_is_an_error(cascade_file: Path) -> None:
    experts = [scripted(m, answer="A") for m in (CHEAP, SECOND, STRONG)]
    with pytest.raises(PipelineFailed, match="first stage"):
        await cascade_pipeline(cascade_file, (SECOND,)).run(MCQ, pool(*experts))


async def test_edge_a_budget_that_cannot_pay_the_strong_model(cascade_file: Path) -> None:
    experts = [
        scripted(CHEAP, answer="A", price=0.0),
        scripted(SECOND, answer="B", price=0.0),
        scripted(STRONG, answer="A", price=1000.0),
    ]
    line = pipeline([CHEAP, SECOND], build("cascade", file=str(cascade_file)), budget_usd=0.01)
    result = await line.run(MCQ, pool(*experts))
    strong = [c for c in result.calls if c.expert == STRONG]
    assert strong and all(c.error for c in strong)  # refused by the budget, not paid
    assert result.answer in {"A", "B"}  # the first answer that exists


def test_query_priors_join_the_features_and_survive_the_file(tmp_path: Path) -> None:
    """With `query_prior`, each chain model's chance of being right, predicted from the
    query's real MiniLM embedding, is appended to every stage's features and saved."""
    table = load_routing_table(TINY, load_models(TINY_MODELS))
    train, test = table.split(0.3, seed=0)
    chain = (("mistralai/mixtral-8x7b-chat",), ("gpt-4-1106-preview",))
    plain = AnswerCascade.fit(train, CascadeSettings(chain=chain))
    cascade = AnswerCascade.fit(train, CascadeSettings(chain=chain, query_prior=True))
    assert cascade.priors is not None and cascade.priors.models == tuple(
        m for s in chain for m in s
    )
    priors = cascade.query_priors(test.queries)
    assert priors.shape == (len(test), 2) and ((priors > 0) & (priors < 1)).all()
    assert plain.query_priors(test.queries).shape == (len(test), 0)
    widths = {len(s.coef) for s in cascade.scorers.values()}
    assert widths == {len(next(iter(plain.scorers.values())).coef) + 2}
    cascade.save(tmp_path / "c.json")
    again = AnswerCascade.load(tmp_path / "c.json")
    assert again.priors is not None
    assert np.allclose(again.query_priors(test.queries), priors, atol=1e-5)
    assert (again.outcome(test).calls == cascade.outcome(test).calls).all()


def test_a_pacer_moves_the_knob_against_the_spend() -> None:
    pacer = Pacer(budget_usd=0.01, value_usd=1.0, rate=0.1)
    pacer.spent(0.05)  # four budgets over: the knob falls
    assert pacer.value_usd == pytest.approx(np.exp(-0.4))
    pacer.spent(0.0)  # nothing spent: it rises again
    assert pacer.value_usd == pytest.approx(np.exp(-0.3))
    pacer.spent(1e6)  # one outlier bill moves it by at most e^5
    assert pacer.value_usd == pytest.approx(np.exp(-5.3))
    for bad in ({"budget_usd": 0.0}, {"rate": 0.0}):
        with pytest.raises(ValueError, match="positive"):
            Pacer(**{"budget_usd": 0.01, "value_usd": 1.0, **bad})  # type: ignore[arg-type]


@pytest.mark.parametrize("budget", [0.006, 0.012])
def test_pacing_holds_the_mean_spend_where_the_trained_knob_does_not(
    fitted: tuple[AnswerCascade, RoutingTable], budget: float
) -> None:
    cascade, _ = fitted
    test = table_of(synthetic(3000, 7))
    static = cascade.outcome(test)  # escalates every disagreement: about 0.018 a query
    assert static.cost.mean() > 1.4 * budget
    paced = cascade.outcome(test, pacer=Pacer(budget, cascade.settings.value_usd))
    assert paced.cost.mean() == pytest.approx(budget, rel=0.1)
    # Spending less buys less, but still more than never escalating.
    never = cascade.with_value(0.0).outcome(test)
    assert never.quality() < paced.quality() < static.quality()


async def test_live_pacing_stops_escalating_once_the_budget_is_spent(cascade_file: Path) -> None:
    def experts() -> dict[str, Any]:  # unpriced: spend is the stages' training means
        return pool(
            scripted(CHEAP, price=None, answer="A"),
            scripted(SECOND, price=None, answer="B"),
            scripted(STRONG, price=None, answer="The answer is (A)"),
        )

    unpaced = cascade_pipeline(cascade_file)
    paced = pipeline(
        [CHEAP, SECOND], build("cascade", file=str(cascade_file), budget_usd=0.004, pace_rate=0.5)
    )
    first, second = [await paced.run(MCQ, experts()) for _ in range(2)]
    assert first.aggregation is not None and second.aggregation is not None
    assert [s.accept for s in first.aggregation.steps] == [False, True]
    assert first.aggregation.steps[0].value_usd == pytest.approx(0.5)  # the trained knob
    # 0.053 spent against 0.004: the knob fell, and the same doubt is now accepted.
    assert [s.accept for s in second.aggregation.steps] == [True]
    assert (second.aggregation.steps[0].value_usd or 1.0) < 0.01
    assert [c.expert for c in second.calls] == [CHEAP, SECOND]
    again = await unpaced.run(MCQ, experts())  # without a budget: still escalates
    assert again.aggregation is not None and len(again.aggregation.steps) == 2


def test_a_bad_budget_is_a_config_error_at_its_key(replay_config: Path, tmp_path: Path) -> None:
    config = yaml.safe_load(replay_config.read_text())
    config["pipelines"]["cascade"]["aggregator"]["budget_usd"] = 0
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=r"pipelines\.cascade\.aggregator\.budget_usd"):
        load_config(tmp_path / "config.yaml")


async def test_live_pacing_counts_a_failed_escalation_and_keeps_an_answer(
    cascade_file: Path,
) -> None:
    experts = pool(  # unpriced, as in the test above
        scripted(CHEAP, price=None, answer="A"),
        scripted(SECOND, price=None, answer="B"),
        scripted(STRONG, price=None, behaviour="error", retryable=False),
    )
    paced = pipeline(
        [CHEAP, SECOND], build("cascade", file=str(cascade_file), budget_usd=0.004, pace_rate=0.5)
    )
    first = await paced.run(MCQ, experts)
    assert first.answer == "A"  # the strong stage failed: the first answer that exists
    assert first.aggregation is not None
    assert [s.accept for s in first.aggregation.steps] == [False, True]
    # The prices are unknown: the stages' training means were counted for the request,
    # the failed stage included, so the knob fell and the next doubt is accepted.
    second = await paced.run(MCQ, experts)
    assert second.aggregation is not None and [s.accept for s in second.aggregation.steps] == [True]
    assert [c.expert for c in second.calls] == [CHEAP, SECOND]
