"""Router-R1 training: its settings and command-line errors, the replayed environment,
the format warm-up's demonstrations, the rollout's token bookkeeping with the real
tokenizer, and (slow) a real GRPO run of SmolLM2-135M through `signoria route train` whose
artifact serves in a `router-r1` pipeline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from signoria.errors import UsageError
from signoria.orchestrator.config import parse_config
from signoria.orchestrator.pipeline import PipelineFailed
from signoria.orchestrator.router_r1.descriptors import load_descriptors, measure
from signoria.orchestrator.router_r1.grpo import EpisodeReward
from signoria.orchestrator.router_r1.reward import CostScale
from signoria.orchestrator.router_r1.settings import TrainSettings
from signoria.orchestrator.router_r1.tags import Answer, Route, parse_turn
from signoria.orchestrator.router_r1.task import NOT_RECORDED, RoutingTask
from signoria.orchestrator.router_r1.warmup import demonstrations
from signoria.orchestrator.sdk import Orchestrator
from signoria.routers.data import RoutingTable, load_models, load_table
from tests.conftest import ROOT

SIGNORIA = str(Path(sys.executable).parent / "signoria")
FIXTURES = ROOT / "tests" / "fixtures"
TABLE = FIXTURES / "routing_tiny.jsonl"
MODELS = FIXTURES / "routing_tiny.models.json"
EXPERTS = ("mistralai/mistral-7b-chat", "zero-one-ai/Yi-34B-Chat", "gpt-4-1106-preview")


def table(limit: int = 30) -> RoutingTable:
    return load_table(TABLE, load_models(MODELS), limit=limit)


def task(limit: int = 30) -> RoutingTask:
    rows = table(limit)
    return RoutingTask.of(
        rows, EXPERTS, measure(rows, EXPERTS, rows.info), max_rounds=2, information_limit=300
    )


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SIGNORIA, *args], capture_output=True, text=True, timeout=900)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"stepz": 3}, "--option stepz: Extra inputs are not permitted"),
        ({"cost_weight": 2}, "--option cost_weight: Input should be less than or equal to 1"),
        ({"generations": 1}, "--option generations"),
        ({"experts": ""}, "--option experts: Value error, give at least one"),
    ],
)
def test_settings_name_the_bad_option(options: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        TrainSettings.parse(options)


def test_experts_may_be_given_comma_separated() -> None:
    assert TrainSettings.parse({"experts": "a,b"}).experts == ("a", "b")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--scenario", "balanced"], "give --option cost_weight=W"),
        (["--option", "steps=-1"], "--option steps: Input should be greater than or equal to 0"),
        (["--option", "experts=nobody"], "experts nobody are not in the table"),
    ],
)
def test_route_train_errors_are_one_line_and_exit_non_zero(
    tmp_path: Path, extra: list[str], message: str
) -> None:
    done = cli(
        "route", "train", "--router", "router-r1", "--train", str(TABLE), "--models",
        str(MODELS), "--out", str(tmp_path / "art"), "--limit", "5", *extra,
    )  # fmt: skip
    assert done.returncode != 0
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "art" / "manifest.json").exists()


def test_route_list_names_router_r1() -> None:
    listed = json.loads(cli("route", "list", "--json").stdout)
    assert listed["policy"]["router-r1"]["extra"] == "rl"


def test_a_route_is_answered_from_the_recording_of_its_own_question_only() -> None:
    routing = task()
    row = routing.rows[0]
    asked = routing.reply(row, Route("t", EXPERTS[1], row.query))
    assert asked.text == row.outcomes[EXPERTS[1]].response
    assert asked.cost == row.outcomes[EXPERTS[1]].cost
    reworded = " ".join(reversed(row.query.split()))  # every word, another order
    assert routing.reply(row, Route("t", EXPERTS[1], reworded)).text == asked.text
    other = routing.reply(row, Route("t", EXPERTS[1], "What is the capital of France?"))
    # Asking costs the call whether or not the replay knows the reply (no free guesses).
    assert other.text is None and other.error == NOT_RECORDED and other.cost == asked.cost


def test_rows_without_a_reference_are_not_trained_on() -> None:
    routing = task(200)  # the fixture's MBPP rows have no reference answer
    assert routing.rows and all(r.reference is not None for r in routing.rows)
    assert len(routing.rows) < len(table(200))


def test_demonstrations_are_well_formed_and_ask_every_expert_alike() -> None:
    routing = task()
    pairs = demonstrations(routing, questions=4, seed=0)
    assert len(pairs) == 4 * len(EXPERTS) * 2
    asked = []
    for pair in pairs:
        turn = pair["completion"][0]["content"]
        action = parse_turn(turn, EXPERTS)
        assert isinstance(action, Route | Answer), turn
        if isinstance(action, Route):
            asked.append(action.expert)
            assert pair["prompt"][-1]["role"] == "user"
        else:  # the answer copies what the expert replied, right or wrong
            reply = pair["prompt"][-1]["content"]
            assert reply.startswith("<information>") and action.text in reply
    assert sorted(asked) == sorted(EXPERTS * 4)


def test_the_episode_reward_logs_its_terms() -> None:
    logged: dict[str, float] = {}
    scorer = EpisodeReward(0.5, CostScale(frozen=(0.0, 0.1)))
    rewards = scorer(
        format_ok=[True, True, False],
        correct=[True, False, True],
        cost=[0.0025, 0.0, float("nan")],
        routes=[1, 1, 0],
        log_metric=logged.__setitem__,
    )
    # sqrt(0.0025) = 0.05: halfway up the scale, so the cost reward is 0.5.
    assert rewards == pytest.approx([0.5 + 0.5 * 0.5, 0.0, -1.0])
    assert logged == pytest.approx(
        {"format_ok": 2 / 3, "accuracy": 2 / 3, "routes": 2 / 3, "cost_usd": 0.00125}
    )


class Scripted:
    """A stand-in for `model.generate` that writes fixed turns (token bookkeeping only)."""

    def __init__(self, tokenizer: Any, turns: list[str]) -> None:
        self.tokenizer = tokenizer
        self.turns = turns

    def generate(self, input_ids: Any, **_: Any) -> Any:
        import torch

        new = [self.tokenizer(self.turns.pop(0), add_special_tokens=False)["input_ids"]]
        return torch.cat([input_ids, torch.tensor(new)], dim=1)


def test_the_rollout_masks_exactly_the_environments_tokens(model_cache: Path) -> None:
    from transformers import AutoTokenizer

    from signoria.agents.embedded import EMBEDDED, locate
    from signoria.orchestrator.router_r1.rollout import generate, outcomes

    gguf = locate(EMBEDDED["smollm2-135m"], model_cache)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    routing = task()
    row = routing.rows[0]
    turns = [
        f"<think> ask </think>\n<search> {EXPERTS[2]}: {row.query} </search>",
        f"<think> read </think>\n<answer> {row.reference} </answer>",
    ]
    [played] = generate(
        Scripted(tokenizer, list(turns)), tokenizer, routing, [row],
        max_turn_tokens=64, temperature=1.0,
    )  # fmt: skip
    assert [o.correct for o in outcomes(routing, [played])] == [row.outcomes[EXPERTS[2]].score > 0]
    assert played.episode.format_ok and played.costs == [row.outcomes[EXPERTS[2]].cost]
    whole = tokenizer.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in played.episode.messages], tokenize=False
    )
    # The same tokens as the template's rendering of the episode (whose last newline, after
    # the final end of turn, is never generated).
    assert tokenizer.decode(played.prompt_ids + played.completion_ids) == whole.rstrip("\n")
    written = [t for t, keep in zip(played.completion_ids, played.env_mask, strict=True) if keep]
    assert tokenizer.decode(written) == "".join(turns)


def _serve(artifact: Path) -> dict[str, Any]:
    """A config serving the trained policy (its GGUF) with replay experts."""
    snippet = __import__("yaml").safe_load((artifact / "pipeline.yaml").read_text())
    cards = json.loads(MODELS.read_text())
    experts = {
        name: {"backend": "replay", "table": str(TABLE), "match": "question", **cards[name]}
        for name in EXPERTS
    }
    for entry in experts.values():
        entry.pop("params_b", None)
    pipeline = snippet["pipelines"]["router-r1"]
    pipeline["limits"] = {"max_tokens": 32, "deadline_s": 300}
    pipeline["aggregator"]["policy_max_tokens"] = 48
    return {
        "default_pipeline": "router-r1",
        "models": {**snippet["models"], **experts},
        "pipelines": snippet["pipelines"],
    }


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_a_tiny_grpo_run_writes_an_artifact_the_pipeline_serves(tmp_path: Path) -> None:
    art = tmp_path / "art"
    done = cli(
        "route", "train", "--router", "router-r1", "--train", str(TABLE), "--models",
        str(MODELS), "--limit", "12", "--out", str(art), "--seed", "3", "--quiet",
        "--option", f"experts={','.join(EXPERTS)}", "--option", "warmup_steps=2",
        "--option", "steps=2", "--option", "prompts_per_step=1", "--option", "generations=2",
        "--option", "max_turn_tokens=32", "--option", "cost_weight=0.3",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str(art)
    manifest = json.loads((art / "manifest.json").read_text())
    assert manifest["experts"] == list(EXPERTS) and manifest["cost_weight"] == 0.3
    assert manifest["gguf"] == "policy.gguf" and manifest["trained_on"]["rows"] > 0
    low, high = manifest["cost_scale"]
    assert 0 <= low < high
    log = [json.loads(line) for line in (art / "train_log.jsonl").read_text().splitlines()]
    grpo = [e for e in log if e["phase"] == "grpo" and "reward" in e]
    assert [e["step"] for e in grpo] == [1, 2]
    assert all({"format_ok", "accuracy", "routes"} <= set(e) for e in grpo)
    assert any(e["phase"] == "warmup" and "loss" in e for e in log)
    assert set(load_descriptors(art / "descriptors.json")) == set(EXPERTS)
    assert (art / "policy" / "config.json").is_file()

    async def ask() -> Any:
        async with Orchestrator(parse_config(_serve(art))) as orchestrator:
            return await orchestrator.aask(table(12).rows[0].query)

    import asyncio

    try:
        result = asyncio.run(ask())
        turns = result.aggregation.turns
    except PipelineFailed as failed:  # a policy of two steps may still break the format
        assert failed.result.aggregation is not None
        turns = failed.result.aggregation.turns
    assert turns and turns[0].turn == 1  # the trained GGUF ran the loop through llama.cpp


def test_a_sub_question_goes_to_the_live_expert_when_there_is_one(tmp_path: Path) -> None:
    from signoria.orchestrator.router_r1.live import live_experts

    config = tmp_path / "live.yaml"
    config.write_text(
        "default_pipeline: p\n"
        "models:\n"
        f"  {EXPERTS[0]}: {{backend: scripted, behaviour: echo, input_price: 1, output_price: 1}}\n"
        f"  {EXPERTS[1]}: {{backend: scripted, behaviour: error, retryable: false}}\n"
        "pipelines:\n"
        f"  p: {{router: {{name: fixed, experts: ['{EXPERTS[0]}']}}, aggregator: first}}\n"
    )
    ask, close = live_experts(config, EXPERTS[:2])
    try:
        rows = table()
        routing = RoutingTask.of(
            rows, EXPERTS, measure(rows, EXPERTS, rows.info), max_rounds=2,
            information_limit=300, live=ask,
        )  # fmt: skip
        row = routing.rows[0]
        echoed = routing.reply(row, Route("t", EXPERTS[0], "What is 2 + 2?"))
        assert echoed.text == "What is 2 + 2?" and echoed.cost is not None and echoed.cost > 0
        failed = routing.reply(row, Route("t", EXPERTS[1], "What is 2 + 2?"))
        assert failed.text is None and failed.error is not None
        own = routing.reply(row, Route("t", EXPERTS[0], row.query))  # replayed, not asked
        assert own.text == row.outcomes[EXPERTS[0]].response
    finally:
        close()
    with pytest.raises(UsageError, match="no model gpt-9 in its models"):
        live_experts(config, ["gpt-9"])


def test_descriptors_take_each_experts_latency_from_recorded_calls(tmp_path: Path) -> None:
    from signoria.orchestrator.result import AskResult, ExpertCall
    from signoria.orchestrator.storage import Store

    db = f"sqlite:///{tmp_path / 'calls.db'}"
    store = Store.open(db)
    run = store.create_run(kind="serve")
    for i, seconds in enumerate((1.0, 2.0, 9.0)):
        calls = (
            ExpertCall(expert=EXPERTS[1], latency_s=seconds, text="B"),
            ExpertCall(expert=EXPERTS[1], latency_s=99.0, error="timeout"),  # not counted
            ExpertCall(expert=EXPERTS[1], role="aggregator", latency_s=50.0, text="x"),
        )
        result = AskResult(answer="B", pipeline="p", calls=calls, cost=None, latency_s=1.0)
        store.record_item(run, item_key=f"r{i}", query="q", result=result)
    store.close()
    settings = TrainSettings.parse({"latency_db": db})
    from signoria.orchestrator.router_r1.training import routing_task

    rows = table()
    described = {d.name: d for d in routing_task(rows, rows.info, settings).descriptors}
    assert described[EXPERTS[1]].latency_s == 2.0  # the median of 1, 2 and 9
    assert described[EXPERTS[0]].latency_s is None  # never recorded: left out
    assert "Answers in about 2.0 s." in described[EXPERTS[1]].line()
    assert "Answers in" not in described[EXPERTS[0]].line()


@pytest.mark.parametrize(("gguf", "backend"), [("policy.gguf", "llamacpp"), (None, "openai")])
def test_the_artifacts_pipeline_snippet_is_a_valid_config_once_merged(
    tmp_path: Path, gguf: str | None, backend: str
) -> None:
    import yaml

    from signoria.orchestrator.router_r1 import artifact

    manifest = artifact.R1Manifest(
        policy="smollm2-135m", gguf=gguf, experts=EXPERTS[:2], max_rounds=3,
        information_limit=500, cost_weight=0.2, cost_scale=(0.0, 0.1), settings={}, seed=0,
        trained_on={}, seconds=1.0,
    )  # fmt: skip
    (tmp_path / "descriptors.json").write_text("{}")
    artifact.write_artifact(tmp_path, manifest, tmp_path / "descriptors.json")
    assert artifact.read_manifest(tmp_path) == manifest
    snippet = yaml.safe_load((tmp_path / "pipeline.yaml").read_text())
    experts = {name: {"backend": "scripted"} for name in EXPERTS[:2]}
    config = parse_config(
        {"default_pipeline": "router-r1", **snippet, "models": {**snippet["models"], **experts}}
    )
    assert config.models["r1-policy"].card.backend == backend
    aggregator = config.pipelines["router-r1"].aggregator
    assert aggregator.name == "router-r1" and aggregator.params.max_rounds == 3  # type: ignore[attr-defined]


def test_a_directory_without_a_manifest_is_not_an_artifact(tmp_path: Path) -> None:
    from signoria.orchestrator.router_r1.artifact import ArtifactError, read_manifest

    with pytest.raises(ArtifactError, match="not a Router-R1 artifact"):
        read_manifest(tmp_path)
