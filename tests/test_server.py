"""The OpenAI-compatible server as clients use it: a real `signoria serve` subprocess on
127.0.0.1 with the tiny local models, hit with httpx and with the official `openai` client.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam

from tests.conftest import TEST_CONFIG
from tests.server_process import SIGNORIA, RunningServer, running_server, server_env

KEY = "sk-signoria-test-one"
OTHER_KEY = "sk-signoria-test-two"
USER: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is 2 + 2? Answer with a number."}
]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    log = tmp_path_factory.mktemp("server") / "server.log"
    args = ("--config", str(TEST_CONFIG), "--no-record")
    with running_server(*args, log=log, api_keys=f"{KEY}, {OTHER_KEY}") as running:
        yield running


@pytest.fixture(scope="module")
def http(server: RunningServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def client(server: RunningServer) -> OpenAI:
    # The second configured key: every key of $SIGNORIA_API_KEYS is accepted.
    return OpenAI(base_url=f"{server.base_url}/v1", api_key=OTHER_KEY, max_retries=0)


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    error: dict[str, Any] = body["error"]
    return error


def test_health_answers_without_a_key(server: RunningServer) -> None:
    response = httpx.get(f"{server.base_url}/health")
    assert response.status_code == 200
    health = response.json()
    assert health["status"] == "ok" and isinstance(health["ready"], bool)
    assert set(health["models"]) == {"lazy", "loading", "loaded", "no_room", "failed"} | (
        {"seconds"} if health["ready"] else set()
    )


def test_openai_client_gets_a_real_answer_with_usage_and_trace(client: OpenAI) -> None:
    done = client.chat.completions.create(
        model="signoria/fast",
        messages=USER,
        max_tokens=16,
        extra_body={"signoria": {"max_experts": 1, "deadline_s": 300}},
    )
    assert done.id.startswith("chatcmpl-") and done.object == "chat.completion"
    assert done.model == "signoria/fast"
    choice = done.choices[0]
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    assert choice.message.content and choice.message.content.strip()
    usage = done.usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens

    trace = (done.model_extra or {})["signoria"]
    assert trace["pipeline"] == "fast" and trace["cost"] == 0.0 and trace["latency_s"] > 0
    [call] = trace["calls"]
    assert call["expert"] == "smollm2-135m" and call["role"] == "expert" and call["error"] is None
    assert "text" not in call  # the answer is in choices, not repeated per call
    assert call["tokens_out"] == usage.completion_tokens <= 16
    assert call["tokens_in"] == usage.prompt_tokens
    assert trace["routing"]["router"] == "fixed"
    assert trace["routing"]["assignments"][0]["expert"] == "smollm2-135m"
    assert trace["aggregation"]["aggregator"] == "first"
    assert trace["aggregation"]["text"] == choice.message.content


def test_openai_client_streams_role_content_then_usage(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="signoria/fast",
        messages=USER,
        max_tokens=16,
        stream=True,
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text.strip()
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.usage is not None and last.usage.completion_tokens > 0
    assert (last.model_extra or {})["signoria"]["pipeline"] == "fast"
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")


def test_raw_sse_is_chunk_events_ending_with_done(http: httpx.Client) -> None:
    body = {"model": "signoria/fast", "messages": USER, "max_tokens": 16, "stream": True}
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    events = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert {e["object"] for e in events} == {"chat.completion.chunk"}
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert events[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "finish_reason": "stop",
        "logprobs": None,
    }
    content = "".join(e["choices"][0]["delta"].get("content", "") for e in events)
    assert content == events[-1]["signoria"]["aggregation"]["text"]
    assert events[-1]["usage"]["total_tokens"] > 0


def test_models_list_has_every_pipeline_and_expert(client: OpenAI, http: httpx.Client) -> None:
    models = list(client.models.list())
    ids = {m.id for m in models}
    pipelines = {"fast", "self-moa", "pair", "vote", "impatient"}
    assert ids == {f"signoria/{p}" for p in pipelines} | {"smollm2-135m", "qwen2.5-coder-0.5b"}
    assert {m.owned_by for m in models} == {"signoria"}
    assert {m.object for m in models} == {"model"}

    one = http.get("/v1/models/signoria/vote")
    assert one.status_code == 200 and one.json()["id"] == "signoria/vote"
    assert one.json()["signoria"]["kind"] == "pipeline"
    expert = client.models.retrieve("smollm2-135m")
    assert (expert.model_extra or {})["signoria"]["kind"] == "expert"
    missing = http.get("/v1/models/gpt-4")
    assert missing.status_code == 404 and error_of(missing)["code"] == "model_not_found"


async def test_concurrent_requests_to_a_pipeline_and_a_raw_expert(server: RunningServer) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    models = ["signoria/fast", "qwen2.5-coder-0.5b", "signoria/fast", "qwen2.5-coder-0.5b"]
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=300) as c:
        responses = await asyncio.gather(
            *(
                c.post(
                    "/v1/chat/completions",
                    json={"model": m, "messages": USER, "max_tokens": 12},
                )
                for m in models
            )
        )
    assert [r.status_code for r in responses] == [200] * 4, [r.text for r in responses]
    bodies = [r.json() for r in responses]
    assert [b["model"] for b in bodies] == models
    assert [b["signoria"]["pipeline"] for b in bodies] == ["fast", "qwen2.5-coder-0.5b"] * 2
    assert [b["signoria"]["calls"][0]["expert"] for b in bodies] == [
        "smollm2-135m",
        "qwen2.5-coder-0.5b",
    ] * 2
    assert all(b["usage"]["completion_tokens"] > 0 for b in bodies)
    assert all(b["choices"][0]["message"]["content"].strip() for b in bodies)
    assert len({r.headers["x-request-id"] for r in responses}) == 4
    assert {r.headers["x-request-id"] for r in responses} == {b["id"] for b in bodies}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer sk-wrong"}, {"X": "y"}])
@pytest.mark.parametrize("route", ["/v1/models", "/v1/chat/completions"])
def test_missing_or_wrong_key_is_401(
    server: RunningServer, headers: dict[str, str], route: str
) -> None:
    body = {"model": "signoria/fast", "messages": USER}
    response = httpx.request(
        "GET" if route.endswith("models") else "POST",
        f"{server.base_url}{route}",
        json=None if route.endswith("models") else body,
        headers=headers,
    )
    assert response.status_code == 401
    error = error_of(response)
    assert error["type"] == "authentication_error" and error["code"] == "invalid_api_key"
    assert response.headers["www-authenticate"] == "Bearer"


def test_unauthenticated_garbage_is_still_401_not_400(server: RunningServer) -> None:
    response = httpx.post(f"{server.base_url}/v1/chat/completions", content=b"{nope")
    assert response.status_code == 401


def test_openai_client_with_a_wrong_key_raises_authentication_error(server: RunningServer) -> None:
    bad = OpenAI(base_url=f"{server.base_url}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_unknown_model_is_404_with_the_openai_client(client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=USER)
    assert caught.value.code == "model_not_found"


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "signoria/fast", "messages": USER, **extra}


@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        (chat(model="nope"), 404, "model", "model_not_found"),
        (chat(model="signoria/nope"), 404, "model", "model_not_found"),
        (chat(api_base="http://evil:1/v1"), 400, "api_base", "forbidden_field"),
        (chat(base_url="http://evil:1/v1"), 400, "base_url", "forbidden_field"),
        (chat(api_key="sk-x"), 400, "api_key", "forbidden_field"),
        (chat(custom_llm_provider="openai"), 400, "custom_llm_provider", "forbidden_field"),
        (chat(functions=[{"name": "f"}]), 400, "functions", "unsupported"),
        (chat(logprobs=True), 400, "logprobs", "unsupported"),
        ({"model": "signoria/fast"}, 422, "messages", "invalid_schema"),
        (chat(messages=[]), 422, "messages", "invalid_schema"),
        (chat(messages=[{"role": "tool", "content": "x"}]), 422, "messages.0", None),
        (chat(messages=[{"role": "robot", "content": "x"}]), 422, "messages.0.role", None),
        (chat(temperature=3), 422, "temperature", "invalid_schema"),
        (chat(signoria={"budget": 1}), 422, "signoria.budget", "invalid_schema"),
        (chat(n=2), 400, "n", "invalid_value"),
        (chat(messages=USER * 65), 400, "messages", "invalid_value"),
        (chat(messages=[{"role": "system", "content": "x"}]), 400, "messages", "invalid_value"),
        (chat(max_tokens=4096), 400, "max_tokens", "invalid_value"),
        (chat(max_completion_tokens=2049), 400, "max_completion_tokens", "invalid_value"),
        (chat(signoria={"max_experts": 9}), 400, "signoria.max_experts", "invalid_value"),
    ],
)
def test_bad_requests_get_openai_errors_naming_the_field(
    http: httpx.Client, body: dict[str, Any], status: int, param: str, code: str | None
) -> None:
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == status, response.text
    error = error_of(response)
    assert error["param"] == param and error["type"] == "invalid_request_error"
    if code is not None:
        assert error["code"] == code
    assert error["message"]


def test_schema_error_message_names_the_missing_field(http: httpx.Client) -> None:
    response = http.post("/v1/chat/completions", json={"model": "signoria/fast"})
    assert response.status_code == 422
    assert error_of(response)["message"] == "messages: Field required"


@pytest.mark.parametrize("raw", [b'{"model": "signoria/fast",', b"not json", b"[1, 2]", b""])
def test_unparsable_json_is_400(http: httpx.Client, raw: bytes) -> None:
    response = http.post(
        "/v1/chat/completions", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_json"


def test_oversized_body_is_413_by_length_and_while_streaming(http: httpx.Client) -> None:
    big = json.dumps(chat(messages=[{"role": "user", "content": "x" * (1 << 20)}])).encode()
    declared = http.post("/v1/chat/completions", content=big)
    assert declared.status_code == 413
    assert error_of(declared)["code"] == "request_too_large"

    def pieces() -> Iterator[bytes]:  # no Content-Length: chunked transfer encoding
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    chunked = http.post("/v1/chat/completions", content=pieces())
    assert chunked.status_code == 413
    assert error_of(chunked)["code"] == "request_too_large"


def test_unknown_route_and_wrong_method_use_the_error_shape(http: httpx.Client) -> None:
    missing = http.get("/v1/engines")
    assert missing.status_code == 404 and error_of(missing)["code"] == "not_found"
    wrong = http.get("/v1/chat/completions")
    assert wrong.status_code == 405 and error_of(wrong)["code"] == "method_not_allowed"


def test_openapi_spec_lists_the_endpoints(server: RunningServer) -> None:
    spec = httpx.get(f"{server.base_url}/openapi.json").json()
    paths = spec["paths"]
    assert {"/v1/chat/completions", "/v1/models", "/v1/models/{model_id}", "/health"} <= set(paths)
    post = paths["/v1/chat/completions"]["post"]
    ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schemas = spec["components"]["schemas"]
    assert ref == "#/components/schemas/ChatCompletionRequest"
    assert {"model", "messages"} <= set(schemas["ChatCompletionRequest"]["required"])
    assert "ChatMessage" in schemas and "SignoriaOptions" in schemas
    assert "ErrorResponse" in schemas and "ChatCompletion" in schemas
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


def test_refuses_a_public_address_without_keys(tmp_path: Path) -> None:
    done = subprocess.run(
        [SIGNORIA, "serve", "--host", "0.0.0.0", "--port", "1", "--no-record"],
        capture_output=True,
        text=True,
        env=server_env(api_keys=None),
        timeout=120,
    )
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: refusing to listen on 0.0.0.0 without API keys")
