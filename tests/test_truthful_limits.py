"""An answer says when it was cut, a client's `max_tokens` is honoured or visibly capped,
and served pipelines pass the client's messages as sent (issue #17, items 6, 9 and 10).

Through the real `signoria serve` (uvicorn on 127.0.0.1), real HTTP clients (httpx and the
official `openai` client), a real SQLite file and the real SmolLM2-135M. The `scripted`
experts of tests/configs/truthful.yaml are honest doubles: a word a token, cut at
`max_tokens` with `finish_reason: "length"`, and prompts counted a word a token, so
`tokens_in` shows whether anything was added to the client's messages.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from signoria.orchestrator.storage import Store
from tests.conftest import ROOT
from tests.server_process import SIGNORIA, RunningServer, running_server

CONFIG = str(ROOT / "tests" / "configs" / "truthful.yaml")
LONG = (
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty so the answer is 42"
)
WORDS = LONG.split()
USER = [{"role": "user", "content": "hi there friend"}]
PIPELINE_SYSTEM = "Answer concisely and state the final answer clearly."


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('truthful') / 'signoria.db'}"


@pytest.fixture(scope="module")
def server(db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    log = tmp_path_factory.mktemp("truthful-log") / "server.log"
    with running_server("--config", CONFIG, "--db", db, log=log) as running:
        yield running


@pytest.fixture
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=120) as http:
        yield http


def _chat(client: httpx.Client, model: str, **body: Any) -> httpx.Response:
    payload = {"model": f"signoria/{model}", "messages": USER, **body}
    return client.post("/v1/chat/completions", json=payload)


def _answer(response: httpx.Response) -> tuple[str, str, dict[str, Any]]:
    assert response.status_code == 200, response.text
    data = response.json()
    choice = data["choices"][0]
    return choice["message"]["content"], choice["finish_reason"], data["signoria"]


def _stored(db: str, response: httpx.Response) -> tuple[Any, list[Any]]:
    """The stored item of a served request and its calls, found by its request id."""
    store = Store.open(db)
    try:
        request_id = response.headers["x-request-id"]
        for run in store.runs(kind="serve"):
            for item in store.items(run.id):
                if item.item_key == request_id:
                    return item, list(item.calls)
    finally:
        store.close()
    raise AssertionError(f"request {request_id} was answered but not recorded")


def test_an_answer_cut_at_the_pipeline_limit_says_length(client: httpx.Client, db: str) -> None:
    response = _chat(client, "plain")
    text, finish, trace = _answer(response)
    assert text.split() == WORDS[:8]
    assert finish == "length"
    assert trace["truncated"] is True
    assert trace["max_tokens_applied"] == 8
    assert trace["max_tokens_requested"] is None
    assert response.json()["usage"]["completion_tokens"] == 8
    item, calls = _stored(db, response)
    assert item.finish_reason == "length"
    assert [call.finish_reason for call in calls] == ["length"]


def test_a_client_max_tokens_above_the_default_is_honoured(client: httpx.Client) -> None:
    text, finish, trace = _answer(_chat(client, "plain", max_tokens=40))
    assert text == LONG
    assert finish == "stop"
    assert trace["truncated"] is False
    assert (trace["max_tokens_applied"], trace["max_tokens_requested"]) == (40, 40)


def test_a_pipeline_cap_is_applied_visibly(client: httpx.Client) -> None:
    text, finish, trace = _answer(_chat(client, "capped", max_tokens=40))
    assert text.split() == WORDS[:12]
    assert finish == "length"
    assert (trace["max_tokens_applied"], trace["max_tokens_requested"]) == (12, 40)


def test_the_server_cap_holds_every_pipeline(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'capped.db'}"
    args = ("--config", CONFIG, "--db", db, "--max-tokens-cap", "6")
    with (
        running_server(*args, log=tmp_path / "server.log") as capped_server,
        httpx.Client(base_url=capped_server.base_url, timeout=60) as http,
    ):
        text, finish, trace = _answer(_chat(http, "plain"))
        assert len(text.split()) == 6 and finish == "length"
        assert trace["max_tokens_applied"] == 6
        over = _chat(http, "plain", max_tokens=7)
    assert over.status_code == 400, over.text
    error = over.json()["error"]
    assert error["param"] == "max_tokens"
    assert "6" in error["message"]


@pytest.mark.parametrize(
    ("pipeline", "finish", "call_reasons"),
    [
        # short proposals fit; the long model's synthesis is cut: the answer was cut
        ("synth-cut", "length", ["stop", "stop", "length"]),
        # proposals were cut, but the synthesis that is the answer fits: it is whole
        ("synth-whole", "stop", ["length", "length", "stop"]),
        ("vote-cut", "length", ["length", "length", "length"]),
    ],
)
def test_an_aggregated_answer_reports_its_final_call(
    client: httpx.Client, db: str, pipeline: str, finish: str, call_reasons: list[str]
) -> None:
    response = _chat(client, pipeline)
    _, reported, trace = _answer(response)
    assert reported == finish
    assert trace["truncated"] is (finish == "length")
    assert [call["finish_reason"] for call in trace["calls"]] == call_reasons
    item, calls = _stored(db, response)
    assert item.finish_reason == finish
    assert [call.finish_reason for call in calls] == call_reasons


def _last_chunk(lines: Iterator[str]) -> dict[str, Any]:
    chunks = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    assert chunks, "no chunk streamed"
    last: dict[str, Any] = chunks[-1]
    return last


def test_a_streamed_cut_answer_ends_with_length(client: httpx.Client) -> None:
    payload = {"model": "signoria/plain", "messages": USER, "stream": True}
    with client.stream("POST", "/v1/chat/completions", json=payload) as response:
        assert response.status_code == 200
        last = _last_chunk(response.iter_lines())
    assert last["choices"][0]["finish_reason"] == "length"
    assert last["signoria"]["truncated"] is True


def test_the_openai_client_sees_length_streamed_and_not(server: RunningServer) -> None:
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)
    whole = client.chat.completions.create(model="signoria/plain", messages=USER)  # type: ignore[arg-type]
    assert whole.choices[0].finish_reason == "length"
    stream = client.chat.completions.create(
        model="signoria/plain",
        messages=USER,  # type: ignore[arg-type]
        stream=True,
    )
    reasons = [chunk.choices[0].finish_reason for chunk in stream if chunk.choices]
    assert reasons[-1] == "length"


def test_a_stop_sequence_ends_the_answer_with_stop(client: httpx.Client) -> None:
    text, finish, _ = _answer(_chat(client, "plain", stop=["three"], max_tokens=40))
    assert text.split() == ["one", "two"]
    assert finish == "stop"


@pytest.mark.parametrize(
    ("messages", "plain_tokens", "prompted_tokens"),
    [
        # no system message from the client: only `prompted` adds its own (8 words)
        (USER, 3, 3 + len(PIPELINE_SYSTEM.split())),
        # the client's own system message replaces the pipeline's: both send it as is
        ([{"role": "system", "content": "be brief"}, *USER], 5, 5),
    ],
)
def test_served_pipelines_pass_messages_as_sent_unless_configured(
    client: httpx.Client, messages: list[dict[str, str]], plain_tokens: int, prompted_tokens: int
) -> None:
    seen = {}
    for pipeline in ("plain", "prompted"):
        _, _, trace = _answer(_chat(client, pipeline, messages=messages))
        seen[pipeline] = trace["calls"][0]["tokens_in"]
    assert seen == {"plain": plain_tokens, "prompted": prompted_tokens}


def test_models_say_what_each_pipeline_does_to_a_request(client: httpx.Client) -> None:
    listing = client.get("/v1/models")
    assert listing.status_code == 200
    meta = {model["id"]: model["signoria"] for model in listing.json()["data"]}
    assert meta["signoria/plain"]["rewrites_messages"] is False
    assert meta["signoria/plain"]["system_prompt"] is None
    assert meta["signoria/plain"]["max_tokens"] == 8
    assert meta["signoria/prompted"]["rewrites_messages"] is True
    assert meta["signoria/prompted"]["system_prompt"] == PIPELINE_SYSTEM
    assert meta["signoria/capped"]["max_tokens_cap"] == 12
    assert meta["signoria/plain"]["max_tokens_cap"] is None


def test_a_real_model_cut_at_max_tokens_says_length(server: RunningServer) -> None:
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)
    answer = client.chat.completions.create(
        model="signoria/tiny",
        messages=[{"role": "user", "content": "Tell me a long story about a dragon."}],
        max_tokens=3,
        temperature=0,
    )
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage is not None and answer.usage.completion_tokens == 3


def _signoria(*args: str) -> subprocess.CompletedProcess[str]:
    command = [SIGNORIA, *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)


@pytest.mark.parametrize(("pipeline", "share"), [("plain", 0.0), ("capped", 1.0)])
def test_eval_report_shows_the_truncated_share(tmp_path: Path, pipeline: str, share: float) -> None:
    """The runner asks each benchmark prompt's max_tokens (1024 for GSM8K), so the long
    answer fits through `plain`; `capped` holds it to 12 tokens and every answer is cut."""
    db = f"sqlite:///{tmp_path / 'eval.db'}"
    data = str(ROOT / "tests" / "fixtures" / "gsm8k.jsonl")
    run = _signoria(
        "eval", "run", "--benchmark", "gsm8k", "--data", data, "-c", CONFIG,
        "-p", pipeline, "--db", db, "--run-id", "truncation", "--limit", "3",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    report = _signoria(
        "eval", "report", "truncation", "--db", db, "--json", "--out", str(tmp_path / "report")
    )
    assert report.returncode == 0, report.stderr
    summary = json.loads(report.stdout)
    assert summary["summary"]["truncated_share"] == share
