"""The two remote backends, litellm and openai (direct httpx), against a real
OpenAI-compatible server on 127.0.0.1.

The server is llama-cpp-python's own (`python -m llama_cpp.server`) serving SmolLM2; it
is started by the fixture and checks a bearer key, so the key path is real too. Provider
faults (5xx, 429, dropped connections, malformed bodies, 4xx) are injected at the HTTP seam
with httpx.MockTransport; every behaviour is asserted for both backends alike.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI

from signoria.agents.backends.litellm import LiteLLMExpert, LiteLLMOptions, priced_card
from signoria.agents.backends.openai_compat import OpenAICompatExpert, OpenAICompatOptions
from signoria.agents.sources import EmbeddedSource, resolve
from signoria.agents.streaming import AnswerStream, final_call, streaming_answer
from signoria.agents.types import (
    Expert,
    ExpertError,
    ExpertMisconfigured,
    GenerationParams,
    Message,
    ModelCard,
    ToolCall,
    ToolUse,
)
from signoria.orchestrator.aggregators.first import FirstAnswer, FirstParams
from signoria.orchestrator.limits import Limits
from signoria.orchestrator.pipeline import Pipeline, PipelineFailed
from signoria.routers.fixed import FixedRouter, FixedRouterParams
from tests.tool_fixtures import FORCE_WEATHER, WEATHER

KEY = "test-key-123"
QUESTION = [Message(role="user", content="Say hello.")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    gguf = resolve(EmbeddedSource(embedded="smollm2-135m"), model_cache)
    port = free_port()
    # A file, not a pipe: llama.cpp logs enough at load to fill a pipe nobody reads.
    log_path = tmp_path_factory.mktemp("server") / "stderr.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(gguf),
            "--model_alias",
            "smollm2",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "1024",
            "--n_threads",
            "2",
            "--api_key",
            KEY,
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(1200):  # up to 2 minutes: a loaded machine starts slowly
            if proc.poll() is not None:
                raise RuntimeError(f"server died: {log_path.read_text()[-2000:]}")
            try:
                if (
                    httpx.get(
                        f"{base}/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=1
                    ).status_code
                    == 200
                ):
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError("llama_cpp.server did not start in 120 s")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def card(price: float | None = None) -> ModelCard:
    return ModelCard(name="remote-smol", backend="litellm", input_price=price, output_price=price)


Handler = Any  # httpx.MockTransport's handler: Request -> Response
BACKENDS = ("litellm", "openai")


def remote(
    backend: str,
    base: str,
    key_env: str | None = "SIGNORIA_TEST_KEY",
    price: float | None = None,
    handler: Handler | None = None,
) -> Expert:
    """The expert under test; with a handler, its HTTP goes to that handler instead."""
    transport = None if handler is None else httpx.MockTransport(handler)
    if backend == "openai":
        opts = OpenAICompatOptions(model="smollm2", base_url=base, api_key_env=key_env)
        return OpenAICompatExpert(card(price), opts, transport=transport)
    client = None
    if transport is not None:
        client = AsyncOpenAI(
            base_url=base,
            api_key="x",
            max_retries=0,
            http_client=httpx.AsyncClient(transport=transport),
        )
    litellm_opts = LiteLLMOptions(model="openai/smollm2", api_base=base, api_key_env=key_env)
    return LiteLLMExpert(card(price), litellm_opts, client=client)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_real_server_generation_with_key_from_env(
    backend: str, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNORIA_TEST_KEY", KEY)
    expert = remote(backend, server)
    result = await expert.generate(QUESTION, params=GenerationParams(max_tokens=12, seed=1))
    await expert.aclose()
    assert result.ok and result.text
    assert result.usage.tokens_in > 0 and 0 < result.usage.tokens_out <= 12
    assert result.cost is None  # no price in config or in litellm's map: unknown, not 0

    priced = remote(backend, server, price=2.0)
    again = await priced.generate(QUESTION, params=GenerationParams(max_tokens=12, seed=1))
    await priced.aclose()
    expected = (again.usage.tokens_in + again.usage.tokens_out) * 2.0 / 1e6
    assert again.cost == pytest.approx(expected)


async def test_both_backends_give_the_same_greedy_answer(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNORIA_TEST_KEY", KEY)
    params = GenerationParams(max_tokens=12, temperature=0.0)
    answers = []
    for backend in BACKENDS:
        expert = remote(backend, server)
        answers.append((await expert.generate(QUESTION, params=params)).text)
        await expert.aclose()
    assert answers[0] == answers[1] != ""


@pytest.mark.parametrize("backend", BACKENDS)
async def test_each_api_backend_streams_the_same_answer_from_a_real_server(
    backend: str, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inside a final call of a streaming request the backend asks the provider for a
    stream and forwards each delta as it arrives; the answer is the one-piece answer."""
    monkeypatch.setenv("SIGNORIA_TEST_KEY", KEY)
    params = GenerationParams(max_tokens=12, temperature=0.0)
    expert = remote(backend, server, price=1.0)
    whole = await expert.generate(QUESTION, params=params)
    stream = AnswerStream()
    with streaming_answer(stream), final_call():
        streamed = await expert.generate(QUESTION, params=params)
    await expert.aclose()
    pieces = []
    while not stream.queue.empty():
        pieces.append(stream.queue.get_nowait())
    assert streamed.ok and streamed.text == whole.text != ""
    assert "".join(pieces).strip() == whole.text and len(pieces) > 1
    assert streamed.finish_reason == whole.finish_reason
    if backend == "litellm":  # this server sends no usage: litellm counts the stream's
        assert streamed.usage.tokens_out == whole.usage.tokens_out > 0  # (its own tokenizer)
        assert streamed.cost is not None and streamed.usage.tokens_in > 0
    else:  # llama_cpp.server sends no usage in a stream: the cost is unknown, never 0
        assert streamed.cost is None and whole.cost is not None


@pytest.mark.parametrize("backend", BACKENDS)
async def test_wrong_key_is_a_non_retryable_error(
    backend: str, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNORIA_TEST_KEY", "wrong")
    expert = remote(backend, server)
    with pytest.raises(ExpertError) as info:
        await expert.generate(QUESTION, params=GenerationParams(max_tokens=4))
    await expert.aclose()
    assert not info.value.retryable


@pytest.mark.parametrize("backend", BACKENDS)
async def test_missing_key_variable_is_a_clear_error(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SIGNORIA_NO_SUCH_KEY", raising=False)
    expert = remote(backend, "http://127.0.0.1:9/v1", "SIGNORIA_NO_SUCH_KEY")
    with pytest.raises(
        ExpertMisconfigured, match=r"\$SIGNORIA_NO_SUCH_KEY, which is not set"
    ) as info:
        await expert.generate(QUESTION, params=GenerationParams(max_tokens=4))
    assert not info.value.retryable  # the operator's to fix: retrying cannot help


async def test_litellms_own_key_lookup_is_checked_before_the_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    expert = remote("litellm", "http://127.0.0.1:9/v1", None)
    with pytest.raises(ExpertMisconfigured, match=r"\$OPENAI_API_KEY, which is not set"):
        await expert.generate(QUESTION, params=GenerationParams(max_tokens=4))


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_refused_connection_is_a_retryable_error(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNORIA_TEST_KEY", KEY)
    port = free_port()
    expert = remote(backend, f"http://127.0.0.1:{port}/v1")
    with pytest.raises(ExpertError) as info:
        await expert.generate(QUESTION, params=GenerationParams(max_tokens=4))
    await expert.aclose()
    assert info.value.retryable
    # said as it is, not as the HTTP pool's symptom ("ConnectTimeout ... ssl:default")
    assert f"connection refused by 127.0.0.1:{port}" in str(info.value)


def test_prices_come_from_litellms_map_when_not_configured() -> None:
    filled = priced_card(card(), "gpt-4o-mini")
    assert filled.input_price is not None and filled.input_price > 0
    assert priced_card(card(price=9.0), "gpt-4o-mini").input_price == 9.0
    assert priced_card(card(), "openai/some-private-model").input_price is None


def completion_body(text: str) -> dict[str, object]:
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "smollm2",
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }


def flaky(statuses: list[int], headers: dict[str, str] | None = None) -> tuple[Handler, list[int]]:
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        status = statuses[len(seen)] if len(seen) < len(statuses) else 200
        seen.append(status)
        if status != 200:
            body = {"error": {"message": f"injected {status}"}}
            return httpx.Response(status, json=body, headers=headers)
        return httpx.Response(200, json=completion_body("recovered"))

    return handler, seen


NOWHERE = "http://127.0.0.1:1/v1"


def single(retries: int) -> Pipeline:
    return Pipeline(
        name="remote",
        router=FixedRouter(FixedRouterParams(experts=("remote-smol",))),
        aggregator=FirstAnswer(FirstParams()),
        limits=Limits(retries=retries, retry_backoff_s=0.0),
    )


@pytest.mark.parametrize("backend", BACKENDS)
async def test_provider_503_is_retried_by_the_one_retry_loop(backend: str) -> None:
    handler, seen = flaky([503])
    expert = remote(backend, NOWHERE, None, price=1.0, handler=handler)
    result = await single(retries=1).run("hi", {"remote-smol": expert})
    assert result.answer == "recovered" and seen == [503, 200]
    assert [c.attempt for c in result.calls] == [1, 2]
    assert result.calls[0].error is not None and "503" in result.calls[0].error


@pytest.mark.parametrize("backend", BACKENDS)
async def test_provider_429_retry_after_reaches_the_retry_loop(backend: str) -> None:
    handler, _ = flaky([429], headers={"Retry-After": "0.3"})
    expert = remote(backend, NOWHERE, None, handler=handler)
    with pytest.raises(ExpertError) as info:
        await expert.generate([Message(role="user", content="hi")], params=GenerationParams())
    assert info.value.retryable and info.value.retry_after_s == pytest.approx(0.3)
    handler, seen = flaky([429], headers={"Retry-After": "0.3"})
    expert = remote(backend, NOWHERE, None, handler=handler)
    result = await single(retries=1).run("hi", {"remote-smol": expert})
    assert result.answer == "recovered" and seen == [429, 200]
    failed, succeeded = result.calls
    assert succeeded.started_at - failed.started_at >= 0.3


def dropped(request: httpx.Request) -> httpx.Response:
    raise httpx.RemoteProtocolError("Server disconnected without sending a response.")


def malformed(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=b"{not json", headers={"content-type": "application/json"})


def html_502(request: httpx.Request) -> httpx.Response:
    return httpx.Response(502, content=b"<html>bad gateway</html>")


def no_choices(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={**completion_body(""), "choices": []})


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fault", [dropped, malformed, html_502, no_choices])
async def test_provider_faults_are_retryable_and_recovered(backend: str, fault: Any) -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return (
            fault(request) if len(calls) == 1 else httpx.Response(200, json=completion_body("ok"))
        )

    expert = remote(backend, NOWHERE, None, handler=handler)
    result = await single(retries=1).run("hi", {"remote-smol": expert})
    assert result.answer == "ok" and len(calls) == 2
    assert result.calls[0].error is not None and result.calls[1].error is None


@pytest.mark.parametrize("backend", BACKENDS)
async def test_provider_400_is_not_retried(backend: str) -> None:
    handler, seen = flaky([400, 400])
    expert = remote(backend, NOWHERE, None, handler=handler)
    with pytest.raises(PipelineFailed):
        await single(retries=3).run("hi", {"remote-smol": expert})
    assert seen == [400]


async def test_openai_backend_without_usage_leaves_the_cost_unknown() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = completion_body("fine")
        del body["usage"]
        return httpx.Response(200, json=body)

    expert = remote("openai", NOWHERE, None, price=3.0, handler=handler)
    result = await expert.generate(QUESTION, params=GenerationParams(max_tokens=4))
    assert result.text == "fine" and result.cost is None


async def test_openai_backend_sends_the_request_as_is() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=completion_body("ok"))

    os.environ["SIGNORIA_TEST_KEY_2"] = "k-123"
    try:
        expert = remote("openai", NOWHERE + "/", "SIGNORIA_TEST_KEY_2", handler=handler)
        params = GenerationParams(max_tokens=7, temperature=0.2, seed=3, stop=("\n",))
        await expert.generate(QUESTION, params=params)
    finally:
        del os.environ["SIGNORIA_TEST_KEY_2"]
    (request,) = seen
    assert str(request.url) == "http://127.0.0.1:1/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer k-123"
    body = json.loads(request.content)
    assert body == {
        "model": "smollm2",
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": 7,
        "temperature": 0.2,
        "top_p": 1.0,
        "seed": 3,
        "stop": ["\n"],
    }


FORCED = ToolUse(tools=(WEATHER,), tool_choice=FORCE_WEATHER)
ASK_WEATHER = [Message(role="user", content="What is the weather in Paris?")]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_required_tool_call_comes_back_from_a_real_server(
    backend: str, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tools pass through to the provider as OpenAI shapes; llama_cpp.server holds the
    call to the function's schema, and the call comes back parsed."""
    monkeypatch.setenv("SIGNORIA_TEST_KEY", KEY)
    expert = remote(backend, server)
    params = GenerationParams(max_tokens=48, tool_use=FORCED)
    result = await expert.generate(ASK_WEATHER, params=params)
    await expert.aclose()
    assert result.ok and result.finish_reason == "tool_calls"
    (call,) = result.tool_calls
    assert call.name == "get_weather" and call.id
    assert isinstance(json.loads(call.arguments)["city"], str)


async def test_the_openai_backend_sends_tools_and_the_conversation_of_a_call() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json=completion_body("It is sunny."))

    call = ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')
    chat = [
        *ASK_WEATHER,
        Message(role="assistant", content="", tool_calls=(call,)),
        Message(role="tool", content='{"sky": "clear"}', tool_call_id="call_1"),
    ]
    fmt = {"type": "json_object"}
    tool_use = ToolUse(tools=(WEATHER,), tool_choice="auto", response_format=fmt)
    expert = remote("openai", NOWHERE, None, handler=handler)
    result = await expert.generate(chat, params=GenerationParams(tool_use=tool_use))
    assert result.text == "It is sunny." and result.tool_calls == ()
    (body,) = seen
    assert body["tools"] == [WEATHER] and body["tool_choice"] == "auto"
    assert body["response_format"] == fmt and "parallel_tool_calls" not in body
    assert body["messages"][1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    }
    assert body["messages"][2] == {
        "role": "tool",
        "content": '{"sky": "clear"}',
        "tool_call_id": "call_1",
    }


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_tool_call_without_a_name_is_a_retryable_provider_fault(backend: str) -> None:
    answers = iter(["broken", "fine"])

    def handler(request: httpx.Request) -> httpx.Response:
        body = completion_body("")
        if next(answers) == "broken":
            body["choices"][0]["message"]["tool_calls"] = [
                {"id": "c", "type": "function", "function": {"arguments": "{}"}}
            ]
        else:
            body["choices"][0]["message"]["content"] = "fine"
        return httpx.Response(200, json=body)

    expert = remote(backend, NOWHERE, None, handler=handler)
    result = await single(retries=1).run("hi", {"remote-smol": expert})
    assert result.answer == "fine"
    assert result.calls[0].error is not None and "malformed" in result.calls[0].error


def test_no_network_leaks_into_the_suite() -> None:
    assert os.environ.get("HF_HUB_OFFLINE") == "1"


def test_a_server_imports_litellm_before_serving_only_when_a_model_uses_it() -> None:
    code = (
        "import sys; from signoria.agents.backends.registry import preload_backends; "
        "preload_backends(['openai', 'llamacpp']); print('litellm' in sys.modules); "
        "preload_backends(['litellm']); print('litellm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
