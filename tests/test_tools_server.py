"""Tools and structured output through a real `signoria serve` (tiny local models, a real
SQLite record) hit with the official `openai` client: a local model held to a required
call by a grammar, the conversation that answers it, a JSON schema on a pipeline's answer,
and the 400 that says where tools go when the target combines several answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
import yaml
from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam

from signoria.agents.types import ToolUse
from signoria.orchestrator.config import parse_config
from signoria.orchestrator.limits import RequestLimits
from signoria.orchestrator.pipeline import PipelineFailed, ToolUseNotAccepted
from signoria.orchestrator.sdk import Orchestrator
from signoria.orchestrator.storage import Store
from tests.conftest import DEFAULT_CONFIG, ROOT, TEST_CONFIG
from tests.server_process import RunningServer, running_server
from tests.tool_fixtures import FORCE_WEATHER, WEATHER

KEY = "sk-signoria-tools"
ASK: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is the weather in Paris right now?"}
]
NUMBER_FORMAT: Any = {
    "type": "json_schema",
    "json_schema": {
        "name": "number",
        "schema": {
            "type": "object",
            "properties": {"answer": {"type": "integer"}},
            "required": ["answer"],
        },
    },
}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'tools.db'}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, db_url: str) -> Iterator[RunningServer]:
    log = tmp_path_factory.mktemp("server") / "server.log"
    args = ("--config", str(TEST_CONFIG), "--db", db_url)
    with running_server(*args, log=log, api_keys=KEY) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: RunningServer) -> OpenAI:
    return OpenAI(base_url=f"{server.base_url}/v1", api_key=KEY, max_retries=0, timeout=120)


def recorded_calls(db_url: str, request_id: str) -> list[Any]:
    store = Store.open(db_url)
    try:
        [run] = store.runs(kind="serve")
        [item] = [i for i in store.items(run.id) if i.item_key == request_id]
        return list(item.calls)
    finally:
        store.close()


def test_a_local_model_makes_the_required_call_and_answers_its_result(
    client: OpenAI, db_url: str
) -> None:
    first = client.chat.completions.create(
        model="qwen2.5-coder-0.5b", messages=ASK, tools=[WEATHER], tool_choice=FORCE_WEATHER
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert choice.message.tool_calls is not None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments)["city"], str)  # held to the schema
    [row] = recorded_calls(db_url, first.id)
    assert list(row.tool_calls) == [call.model_dump()] and row.finish_reason == "tool_calls"

    # The conversation goes on: the assistant's call and the tool's result, as sent back.
    conversation: list[ChatCompletionMessageParam] = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "clear", "celsius": 21}'},
    ]
    second = client.chat.completions.create(
        model="qwen2.5-coder-0.5b", messages=conversation, tools=[WEATHER], tool_choice="none"
    )
    assert second.choices[0].finish_reason in ("stop", "length")
    assert second.choices[0].message.content and not second.choices[0].message.tool_calls


def test_a_streamed_tool_call_arrives_whole_with_the_trace(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="qwen2.5-coder-0.5b",
        messages=ASK,
        tools=[WEATHER],
        tool_choice=FORCE_WEATHER,
        stream=True,
    )
    chunks = list(stream)
    deltas = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or ()]
    assert [(d.index, d.function and d.function.name) for d in deltas] == [(0, "get_weather")]
    assert deltas[0].function is not None and deltas[0].function.arguments
    json.loads(deltas[0].function.arguments)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert (chunks[-1].model_extra or {})["signoria"]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("model", ["signoria/fast", "signoria/pair", "smollm2-135m"])
def test_a_json_schema_holds_the_answer_of_pipelines_whose_answer_is_one_call(
    client: OpenAI, model: str
) -> None:
    reply = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "What is 6 times 7?"}],
        response_format=NUMBER_FORMAT,
    )
    content = reply.choices[0].message.content
    assert content is not None and isinstance(json.loads(content)["answer"], int), content


@pytest.mark.parametrize(
    ("model", "fields", "param"),
    [
        ("signoria/vote", {"tools": [WEATHER]}, "tools"),
        ("signoria/self-moa", {"tools": [WEATHER], "tool_choice": "auto"}, "tools"),
        ("signoria/vote", {"response_format": NUMBER_FORMAT}, "response_format"),
    ],
)
def test_a_pipeline_that_combines_answers_refuses_tools_naming_those_that_take_them(
    client: OpenAI, model: str, fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=model, messages=ASK, **fields)
    error = caught.value.body
    assert isinstance(error, dict)
    assert (error["param"], error["code"]) == (param, "unsupported")
    for taker in ("signoria/fast", "signoria/pair", "signoria/impatient"):
        assert taker in error["message"]
    assert "signoria/vote," not in error["message"]


def test_models_say_which_take_tools(server: RunningServer) -> None:
    listing = httpx.get(
        f"{server.base_url}/v1/models", headers={"Authorization": f"Bearer {KEY}"}
    ).json()
    takes = {m["id"]: m["signoria"]["tools"] for m in listing["data"]}
    assert takes["signoria/fast"] and takes["smollm2-135m"] and takes["signoria/pair"]
    assert not takes["signoria/vote"] and not takes["signoria/self-moa"]


@pytest.mark.parametrize(
    ("fields", "status", "param", "code"),
    [
        ({"tool_choice": "required"}, 400, "tool_choice", "invalid_value"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "x"}}},
            400,
            "tool_choice",
            "invalid_value",
        ),
        ({"tools": [WEATHER, WEATHER]}, 400, "tools", "invalid_value"),
        ({"functions": [{"name": "get_weather"}]}, 400, "functions", "unsupported"),
        ({"tools": [{"type": "function"}]}, 422, "tools.0.function", "invalid_schema"),
        (
            {"tools": [{"type": "function", "function": {"name": "has space"}}]},
            422,
            "tools.0.function.name",
            "invalid_schema",
        ),
        ({"response_format": {"type": "xml"}}, 422, "response_format", "invalid_schema"),
        (
            {"messages": [*ASK, {"role": "tool", "content": "21C"}]},
            422,
            "messages.1",
            "invalid_schema",
        ),
    ],
)
def test_malformed_tool_requests_get_openai_errors_naming_the_field(
    server: RunningServer, fields: dict[str, Any], status: int, param: str, code: str
) -> None:
    body = {"model": "signoria/fast", "messages": ASK, **fields}
    response = httpx.post(
        f"{server.base_url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=60,
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"]) == (param, code), error


async def test_the_routers_chosen_expert_gets_the_tools() -> None:
    """The default config's learned router picks one of three local models; whichever it
    picks makes the call the client requires."""
    tool_use = ToolUse(tools=(dict(WEATHER),), tool_choice=FORCE_WEATHER)
    async with Orchestrator.from_config(DEFAULT_CONFIG) as orchestrator:
        result = await orchestrator.aask(
            "What is the weather in Rome?", pipeline="routed", tool_use=tool_use
        )
        with pytest.raises(ToolUseNotAccepted, match="tools and response_format"):
            await orchestrator.aask("hi", pipeline="self-moa", tool_use=tool_use)
    assert result.routing is not None and result.routing.router == "learned"
    (call,) = result.tool_calls
    assert call.name == "get_weather" and "city" in json.loads(call.arguments)
    assert result.finish_reason == "tool_calls" and result.calls[0].tool_calls == (call,)


def test_the_record_of_a_text_answer_has_no_tool_calls(client: OpenAI, db_url: str) -> None:
    reply = client.chat.completions.create(model="signoria/fast", messages=ASK, max_tokens=8)
    [row] = recorded_calls(db_url, reply.id)
    assert row.tool_calls == () and reply.choices[0].message.tool_calls is None


FAULTS_WITH_TOOLS = """
default_pipeline: scripted
models:
  talker: {backend: scripted, answer: "I only talk."}
  caller: {backend: scripted, tool_call: {name: get_weather, arguments: {city: Oslo}}}
  recorded: {backend: replay, table: %s, model: gpt-4-1106-preview}
  smollm2-135m: {backend: llamacpp, source: {embedded: smollm2-135m}, context_length: 1024}
pipelines:
  scripted:
    router: {name: fixed, experts: [talker]}
    aggregator: first
"""


def faults_config() -> Any:
    table = ROOT / "tests" / "fixtures" / "routing_tiny.jsonl"
    return parse_config(yaml.safe_load(FAULTS_WITH_TOOLS % table))


@pytest.mark.parametrize(
    ("expert", "tool_use", "error"),
    [
        # A scripted expert with no call of the required tool refuses, not retried.
        ("talker", ToolUse(tools=(dict(WEATHER),), tool_choice="required"), "no scripted call"),
        # A replay answers with recorded text: it cannot make a call or hold to a schema.
        ("recorded", ToolUse(response_format={"type": "json_object"}), "takes no tools"),
        # A required call cut at max_tokens is not complete JSON: an error, not a broken call.
        (
            "smollm2-135m",
            ToolUse(tools=(dict(WEATHER),), tool_choice=FORCE_WEATHER),
            "not complete",
        ),
    ],
)
async def test_a_call_that_cannot_honour_the_tools_fails_with_its_reason(
    expert: str, tool_use: ToolUse, error: str
) -> None:
    async with Orchestrator(faults_config()) as orchestrator:
        with pytest.raises(PipelineFailed) as failed:
            await orchestrator.aask(
                "What is the weather in Oslo?",
                pipeline=expert,
                tool_use=tool_use,
                limits=RequestLimits(max_tokens=3),
            )
    calls = failed.value.result.calls
    assert len(calls) == 1 and calls[0].error is not None and error in calls[0].error


async def test_a_scripted_expert_makes_its_scripted_call_when_offered_the_tool() -> None:
    async with Orchestrator(faults_config()) as orchestrator:
        made = await orchestrator.aask(
            "Weather?", pipeline="caller", tool_use=ToolUse(tools=(dict(WEATHER),))
        )
    (call,) = made.tool_calls
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Oslo"})
