"""Server pieces that are clearest tested in-process: settings, keys, chunking, and the
500 path, which no well-behaved backend can trigger over the wire."""

from __future__ import annotations

import dataclasses
import hashlib

import httpx
import pytest
from pydantic import SecretStr

from signoria.agents.types import Completion, GenerationParams, Message, ModelCard
from signoria.errors import ConfigError
from signoria.orchestrator.config import parse_config
from signoria.orchestrator.limits import RequestLimits
from signoria.orchestrator.sdk import Orchestrator
from signoria.orchestrator.server.app import create_app
from signoria.orchestrator.server.auth import key_matches
from signoria.orchestrator.server.errors import ApiError
from signoria.orchestrator.server.requests import request_limits
from signoria.orchestrator.server.responses import apply_stops, split_answer
from signoria.orchestrator.server.schemas import ChatCompletionRequest
from signoria.orchestrator.server.settings import ServerConfigError, ServerSettings, is_loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("example.com", False),
    ],
)
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_keys_come_from_the_environment_and_never_show_in_a_repr() -> None:
    settings = ServerSettings.from_env({"host": "0.0.0.0"}, env={"SIGNORIA_API_KEYS": "a, b,,"})
    assert [k.get_secret_value() for k in settings.api_keys] == ["a", "b"]
    assert settings.exposure_problem() is None
    assert "a" not in repr(settings.api_keys) and "api_keys" not in settings.summary()
    keyless = ServerSettings.from_env({"host": "0.0.0.0"}, env={})
    assert keyless.exposure_problem() is not None
    assert ServerSettings.from_env({"host": "::1"}, env={}).exposure_problem() is None


def test_defaults_are_the_documented_caps() -> None:
    s = ServerSettings()
    assert (s.max_body_bytes, s.max_messages, s.max_tokens_cap) == (1 << 20, 64, 2048)
    assert (s.max_experts_cap, s.max_concurrent, s.budget_cap_usd) == (8, 32, None)
    assert issubclass(ServerConfigError, ConfigError)  # the CLI exits 2 for it


def test_every_key_is_accepted_and_nothing_else() -> None:
    keys = [hashlib.sha256(k).digest() for k in (b"sk-one", b"sk-two")]
    assert key_matches("sk-one", keys) and key_matches("sk-two", keys)
    assert not key_matches("sk-on", keys) and not key_matches("", keys)
    assert not key_matches("sk-\u00e9", keys)  # non-ASCII compares as bytes, no TypeError


@pytest.mark.parametrize(
    "text", ["", "one", "a b c", "  lead and trail  ", "x\ny\n\nz " * 20, "   "]
)
def test_split_answer_is_lossless_and_short(text: str) -> None:
    pieces = split_answer(text)
    assert "".join(pieces) == text and len(pieces) <= 8


def test_apply_stops_cuts_at_the_earliest() -> None:
    assert apply_stops("a STOP b END c", ["END", "STOP"]) == "a "
    assert apply_stops("abc", ["x"]) == "abc" and apply_stops("abc", []) == "abc"


class _BrokenExpert:
    """An expert whose backend has a bug (raises something other than ExpertError)."""

    def __init__(self) -> None:
        self._card = ModelCard(name="broken", backend="custom")

    @property
    def card(self) -> ModelCard:
        return self._card

    async def generate(self, messages: list[Message], *, params: GenerationParams) -> Completion:
        raise RuntimeError("secret internal detail /etc/passwd")

    async def count_tokens(self, messages: list[Message]) -> int:
        return 1

    async def aclose(self) -> None:
        return None


class _BrokenAggregator:
    """An aggregator with a bug: the request itself cannot finish."""

    async def aggregate(self, query: str, completions: object, ctx: object) -> object:
        raise RuntimeError("secret internal detail /etc/passwd")


def _app_with_a_broken_expert() -> httpx.AsyncClient:
    config = parse_config(
        {
            "default_pipeline": "p",
            "models": {"ok": {"backend": "scripted"}},
            "pipelines": {
                "p": {"router": {"name": "fixed", "experts": ["ok"]}, "aggregator": "first"}
            },
        }
    )
    orchestrator = Orchestrator(config)
    orchestrator.pool.add(_BrokenExpert())
    pipeline = orchestrator.pipelines["p"]
    orchestrator.pipelines["p"] = dataclasses.replace(pipeline, aggregator=_BrokenAggregator())  # type: ignore[arg-type]
    app = create_app(orchestrator, ServerSettings(record=False, max_concurrent=1))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")


async def test_a_broken_backend_is_a_failed_call_without_internals() -> None:
    async with _app_with_a_broken_expert() as client:
        body = {"model": "broken", "messages": [{"role": "user", "content": "hi"}]}
        response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 503 and response.json()["error"]["code"] == "pipeline_failed"
    assert "RuntimeError" in response.text
    assert "secret" not in response.text and "/etc/passwd" not in response.text


async def test_unexpected_errors_are_a_generic_500_without_internals() -> None:
    async with _app_with_a_broken_expert() as client:
        body = {"model": "signoria/p", "messages": [{"role": "user", "content": "hi"}]}
        response = await client.post("/v1/chat/completions", json=body)
        assert response.status_code == 500
        assert response.json() == {
            "error": {
                "message": "internal server error",
                "type": "server_error",
                "param": None,
                "code": "internal_error",
            }
        }
        assert "secret" not in response.text and "Traceback" not in response.text
        fine = await client.post("/v1/chat/completions", json={**body, "model": "ok"})
        assert fine.status_code == 200  # the failed request released its slot


def test_create_app_refuses_a_public_host_without_keys() -> None:
    config = parse_config(
        {
            "default_pipeline": "p",
            "models": {"ok": {"backend": "scripted"}},
            "pipelines": {
                "p": {"router": {"name": "fixed", "experts": ["ok"]}, "aggregator": "first"}
            },
        }
    )
    with pytest.raises(ServerConfigError, match=r"refusing to listen on 0\.0\.0\.0"):
        create_app(Orchestrator(config), ServerSettings(host="0.0.0.0"))
    keyed = ServerSettings(host="0.0.0.0", api_keys=(SecretStr("k"),))
    assert create_app(Orchestrator(config), keyed).title == "Signoria"


def limits_for(settings: ServerSettings, **body: object) -> RequestLimits:
    request = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], **body}
    )
    return request_limits(request, settings)


def test_caps_apply_to_every_request_and_requests_only_tighten() -> None:
    capped = ServerSettings(budget_cap_usd=0.5, max_experts_cap=4, max_tokens_cap=100)
    # No max_tokens asked: the pipeline's default applies (None here), not the cap.
    assert limits_for(capped) == RequestLimits(
        max_tokens=None, ceiling_tokens=100, max_experts=4, budget_usd=0.5
    )
    asked = limits_for(
        capped,
        max_completion_tokens=20,
        signoria={"budget_usd": 0.1, "max_experts": 2, "deadline_s": 3},
    )
    assert asked == RequestLimits(
        max_tokens=20, ceiling_tokens=100, max_experts=2, budget_usd=0.1, deadline_s=3
    )
    with pytest.raises(ApiError) as over:
        limits_for(capped, signoria={"budget_usd": 1.0})
    assert (over.value.status, over.value.param) == (400, "signoria.budget_usd")
    with pytest.raises(ApiError) as disagree:
        limits_for(capped, max_tokens=10, max_completion_tokens=20)
    assert disagree.value.param == "max_completion_tokens"
    # No server budget cap: a request without a budget leaves the pipeline's in charge.
    assert limits_for(ServerSettings()).budget_usd is None
