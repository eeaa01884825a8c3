"""`stream: true` as the answer is written (issue #14, operations item 4), through the
real server with the official `openai` client: scripted experts that write word by word
(a known pace), and a real local model (SmolLM2-135M through llama.cpp)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from signoria.orchestrator.storage import Store
from tests.conftest import TEST_CONFIG
from tests.server_process import RunningServer, running_server

ANSWER = "one two three four five six seven eight nine ten eleven twelve"
CONFIG = f"""
default_pipeline: single
models:
  writer: {{backend: scripted, answer: "{ANSWER}", latency_s: 0.05, token_latency_s: 0.15}}
  a: {{backend: scripted, answer: "twelve", token_latency_s: 0.01}}
  b: {{backend: scripted, answer: "thirteen", token_latency_s: 0.01}}
  judge: {{backend: scripted, answer: "the answer is twelve", token_latency_s: 0.1}}
  dead: {{backend: scripted, behaviour: error, retryable: true}}
  breaks: {{backend: scripted, answer: "{ANSWER}", fail_after_words: 3}}
  breaking-judge: {{backend: scripted, answer: "the answer is twelve", fail_after_words: 2}}
pipelines:
  single:
    router: {{name: fixed, experts: [writer]}}
    aggregator: first
  self-moa:
    router: {{name: fixed, experts: [a, b]}}
    aggregator: {{name: synthesize, model: judge}}
  vote:
    router: {{name: fixed, experts: [a, a, b]}}
    aggregator: {{name: majority}}
  dead:
    router: {{name: fixed, experts: [dead]}}
    aggregator: first
    limits: {{retries: 0}}
  judge-breaks:
    router: {{name: fixed, experts: [a, b]}}
    aggregator: {{name: synthesize, model: breaking-judge}}
  breaks:
    router: {{name: fixed, experts: [breaks]}}
    aggregator: first
    limits: {{retries: 2}}
"""
HI = [{"role": "user", "content": "Count to twelve."}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, str]]:
    root = tmp_path_factory.mktemp("stream")
    (root / "c.yaml").write_text(CONFIG)
    db = f"sqlite:///{root / 's.db'}"
    with running_server("-c", str(root / "c.yaml"), "--db", db, log=root / "s.log") as s:
        yield s, db


def client_of(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)


def streamed(s: RunningServer, model: str, **extra: Any) -> Any:
    """The official client's stream of one request."""
    return client_of(s).chat.completions.create(
        model=model,
        messages=HI,  # type: ignore[arg-type]
        stream=True,
        **extra,
    )


def read(stream: Any) -> tuple[list[str], list[float], Any]:
    """Content pieces, when each arrived (seconds from the request), the last chunk."""
    t0 = time.perf_counter()
    pieces, times, last = [], [], None
    for chunk in stream:
        last = chunk
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
            times.append(time.perf_counter() - t0)
    return pieces, times, last


def test_a_single_expert_streams_word_by_word(server: tuple[RunningServer, str]) -> None:
    s, _ = server
    stream = streamed(s, "signoria/single")
    pieces, times, last = read(stream)
    assert "".join(pieces) == ANSWER
    assert len(pieces) == 12  # one per word as written, not a replay in a few chunks
    trace = last.model_extra["signoria"]
    (call,) = trace["calls"]
    # The first word reached the client long before the call had finished writing.
    assert times[0] < call["latency_s"] / 2
    assert last.choices[0].finish_reason == "stop" and last.usage.completion_tokens == 12


def test_an_ensemble_streams_only_its_synthesis(server: tuple[RunningServer, str]) -> None:
    s, _ = server
    stream = streamed(s, "signoria/self-moa")
    pieces, _, last = read(stream)
    assert pieces == ["the", " answer", " is", " twelve"]
    roles = [c["role"] for c in last.model_extra["signoria"]["calls"]]
    assert roles == ["expert", "expert", "aggregator"]


def test_a_vote_is_replayed_whole_when_it_is_done(server: tuple[RunningServer, str]) -> None:
    s, _ = server
    stream = streamed(s, "signoria/vote")
    pieces, _, last = read(stream)
    assert "".join(pieces) == "twelve"
    assert last.model_extra["signoria"]["aggregation"]["aggregator"] == "majority"


def test_a_failure_before_the_first_token_is_an_http_error(
    server: tuple[RunningServer, str],
) -> None:
    s, _ = server
    with pytest.raises(openai.APIStatusError) as caught:
        streamed(s, "signoria/dead")
    assert caught.value.status_code == 503
    raw = httpx.post(
        f"{s.base_url}/v1/chat/completions",
        json={"model": "signoria/dead", "messages": HI, "stream": True},
    )
    assert raw.status_code == 503 and raw.json()["error"]["code"] == "pipeline_failed"


def test_a_failure_after_the_first_token_ends_the_stream_with_an_error(
    server: tuple[RunningServer, str],
) -> None:
    s, db = server
    with httpx.stream(
        "POST",
        f"{s.base_url}/v1/chat/completions",
        json={"model": "signoria/breaks", "messages": HI, "stream": True},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        request_id = response.headers["X-Request-Id"]
        events = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert '"content":"one"' in events[1]
    assert '"error"' in events[-1] and "pipeline_failed" in events[-1]
    with pytest.raises(openai.APIError):
        read(streamed(s, "signoria/breaks"))
    store = Store.open(db)
    items = {i.item_key: i for run in store.runs("serve") for i in store.items(run.id)}
    store.close()
    broken = items[request_id]
    # Not retried (retries: 2): the client already had the first words.
    assert broken.error is not None and [c.attempt for c in broken.calls] == [1]


def test_a_synthesis_that_breaks_mid_stream_says_the_stream_broke_off(
    server: tuple[RunningServer, str],
) -> None:
    """The aggregator falls back to a proposal, which does not continue what the client
    already has: the stream ends with an error event, never with a spliced answer."""
    s, _ = server
    with httpx.stream(
        "POST",
        f"{s.base_url}/v1/chat/completions",
        json={"model": "signoria/judge-breaks", "messages": HI, "stream": True},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        events = [line for line in response.iter_lines() if line.startswith("data: ")]
    contents = [e for e in events if '"content":"' in e and '"content":""' not in e]
    assert [json.loads(e[6:])["choices"][0]["delta"]["content"] for e in contents] == [
        "the",
        " answer",
    ]
    assert json.loads(events[-1][6:])["error"]["code"] == "stream_interrupted"


def test_stop_sequences_are_applied_to_the_whole_answer(
    server: tuple[RunningServer, str],
) -> None:
    s, _ = server
    stream = streamed(s, "signoria/single", stop=[" five"])
    pieces, _, _ = read(stream)
    assert "".join(pieces) == "one two three four"


def test_a_local_model_streams_the_same_answer_it_gives_whole(tmp_path: Path) -> None:
    args = ("-c", str(TEST_CONFIG), "--no-record")
    with running_server(*args, log=tmp_path / "local.log") as s:
        client = client_of(s)
        whole = client.chat.completions.create(
            model="signoria/fast",
            messages=HI,  # type: ignore[arg-type]
        )
        pieces, _, last = read(
            client.chat.completions.create(
                model="signoria/fast",
                messages=HI,  # type: ignore[arg-type]
                stream=True,
            )
        )
    assert "".join(pieces) == whole.choices[0].message.content
    assert len(pieces) > 8  # token by token (24 tokens), not the whole-answer replay
    assert last.usage.completion_tokens == whole.usage.completion_tokens
