"""The litellm backend against a real OpenAI-compatible server on 127.0.0.1.

The server is llama-cpp-python's own (`python -m llama_cpp.server`) serving SmolLM2; it
is started by the fixture and checks a bearer key, so the key path is real too. Provider
faults (5xx, 4xx) are injected at the HTTP seam with httpx.MockTransport.
"""

from __future__ import annotations

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

from agents.backends.litellm import LiteLLMExpert, LiteLLMOptions, priced_card
from agents.errors import SignoriaError
from agents.sources import EmbeddedSource, resolve
from agents.types import ExpertError, GenerationParams, Message, ModelCard
from orchestrator.aggregators.first import FirstAnswer, FirstParams
from orchestrator.limits import Limits
from orchestrator.pipeline import Pipeline, PipelineFailed
from routers.fixed import FixedRouter, FixedRouterParams

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


def options(base: str, key_env: str = "SIGNORIA_TEST_KEY") -> LiteLLMOptions:
    return LiteLLMOptions(model="openai/smollm2", api_base=base, api_key_env=key_env)


async def test_real_server_generation_with_key_from_env(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNORIA_TEST_KEY", KEY)
    remote = LiteLLMExpert(card(), options(server))
    result = await remote.generate(QUESTION, params=GenerationParams(max_tokens=12, seed=1))
    assert result.ok and result.text
    assert result.usage.tokens_in > 0 and 0 < result.usage.tokens_out <= 12
    assert result.cost is None  # no price in config or in litellm's map: unknown, not 0

    priced = LiteLLMExpert(card(price=2.0), options(server))
    again = await priced.generate(QUESTION, params=GenerationParams(max_tokens=12, seed=1))
    expected = (again.usage.tokens_in + again.usage.tokens_out) * 2.0 / 1e6
    assert again.cost == pytest.approx(expected)


async def test_wrong_key_is_a_non_retryable_error(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNORIA_TEST_KEY", "wrong")
    remote = LiteLLMExpert(card(), options(server))
    with pytest.raises(ExpertError) as info:
        await remote.generate(QUESTION, params=GenerationParams(max_tokens=4))
    assert not info.value.retryable


async def test_missing_key_variable_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIGNORIA_NO_SUCH_KEY", raising=False)
    remote = LiteLLMExpert(card(), options("http://127.0.0.1:9/v1", "SIGNORIA_NO_SUCH_KEY"))
    with pytest.raises(SignoriaError, match=r"\$SIGNORIA_NO_SUCH_KEY, which is not set"):
        await remote.generate(QUESTION, params=GenerationParams(max_tokens=4))


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


def flaky_client(
    statuses: list[int], headers: dict[str, str] | None = None
) -> tuple[AsyncOpenAI, list[int]]:
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        status = statuses[len(seen)] if len(seen) < len(statuses) else 200
        seen.append(status)
        if status != 200:
            body = {"error": {"message": f"injected {status}"}}
            return httpx.Response(status, json=body, headers=headers)
        return httpx.Response(200, json=completion_body("recovered"))

    client = AsyncOpenAI(
        base_url="http://127.0.0.1:1/v1",
        api_key="x",
        max_retries=0,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
    )
    return client, seen


def single(retries: int) -> Pipeline:
    return Pipeline(
        name="remote",
        router=FixedRouter(FixedRouterParams(experts=("remote-smol",))),
        aggregator=FirstAnswer(FirstParams()),
        limits=Limits(retries=retries, retry_backoff_s=0.0),
    )


async def test_provider_503_is_retried_by_the_one_retry_loop() -> None:
    client, seen = flaky_client([503])
    remote = LiteLLMExpert(card(price=1.0), options("http://127.0.0.1:1/v1", None), client=client)  # type: ignore[arg-type]
    result = await single(retries=1).run("hi", {"remote-smol": remote})
    assert result.answer == "recovered" and seen == [503, 200]
    assert [c.attempt for c in result.calls] == [1, 2]
    assert result.calls[0].error is not None and "503" in result.calls[0].error


async def test_provider_429_retry_after_reaches_the_retry_loop() -> None:
    client, _ = flaky_client([429], headers={"Retry-After": "0.3"})
    remote = LiteLLMExpert(card(), options("http://127.0.0.1:1/v1", None), client=client)  # type: ignore[arg-type]
    with pytest.raises(ExpertError) as info:
        await remote.generate([Message(role="user", content="hi")], params=GenerationParams())
    assert info.value.retryable and info.value.retry_after_s == pytest.approx(0.3)
    client, seen = flaky_client([429], headers={"Retry-After": "0.3"})
    remote = LiteLLMExpert(card(), options("http://127.0.0.1:1/v1", None), client=client)  # type: ignore[arg-type]
    result = await single(retries=1).run("hi", {"remote-smol": remote})
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


@pytest.mark.parametrize("fault", [dropped, malformed, html_502, no_choices])
async def test_provider_faults_are_retryable_and_recovered(fault: Any) -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return (
            fault(request) if len(calls) == 1 else httpx.Response(200, json=completion_body("ok"))
        )

    client = AsyncOpenAI(
        base_url="http://127.0.0.1:1/v1",
        api_key="x",
        max_retries=0,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
    )
    remote = LiteLLMExpert(card(), options("http://127.0.0.1:1/v1", None), client=client)  # type: ignore[arg-type]
    result = await single(retries=1).run("hi", {"remote-smol": remote})
    assert result.answer == "ok" and len(calls) == 2
    assert result.calls[0].error is not None and result.calls[1].error is None


async def test_provider_400_is_not_retried() -> None:
    client, seen = flaky_client([400, 400])
    remote = LiteLLMExpert(card(), options("http://127.0.0.1:1/v1", None), client=client)  # type: ignore[arg-type]
    with pytest.raises(PipelineFailed):
        await single(retries=3).run("hi", {"remote-smol": remote})
    assert seen == [400]


def test_no_network_leaks_into_the_suite() -> None:
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
