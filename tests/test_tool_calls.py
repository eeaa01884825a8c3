"""Tool calls written by models that only write text: the schema a required call is held
to, and the calls parsed out of what a local model chose to write."""

from __future__ import annotations

import json
from typing import Any

import pytest

from signoria.agents.tools import (
    parse_required_call,
    parse_tagged_calls,
    provider_tool_calls,
    required_call_schema,
    response_schema,
)
from signoria.agents.types import ToolUse


def tool(name: str, **properties: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "parameters": {
                "type": "object",
                "properties": {key: {"type": kind} for key, kind in properties.items()},
                "required": list(properties),
            },
        },
    }


WEATHER = tool("get_weather", city="string")
SUM = tool("add", a="integer", b="integer")
BOTH = ToolUse(tools=(WEATHER, SUM))


def test_auto_leaves_the_model_free_to_answer_in_text() -> None:
    assert required_call_schema(BOTH) is None
    assert required_call_schema(BOTH.model_copy(update={"tool_choice": "none"})) is None


def test_a_named_function_is_the_only_call_the_schema_allows() -> None:
    forced = BOTH.model_copy(
        update={"tool_choice": {"type": "function", "function": {"name": "add"}}}
    )
    schema = required_call_schema(forced)
    assert schema is not None
    assert schema["properties"]["name"] == {"const": "add"}
    assert schema["properties"]["arguments"] == SUM["function"]["parameters"]


def test_required_allows_any_offered_function() -> None:
    schema = required_call_schema(BOTH.model_copy(update={"tool_choice": "required"}))
    assert schema is not None
    names = [option["properties"]["name"]["const"] for option in schema["anyOf"]]
    assert names == ["get_weather", "add"]


def test_a_required_call_parses_or_says_it_was_cut() -> None:
    call = parse_required_call('{"name": "add", "arguments": {"a": 1, "b": 2}}')
    assert call.name == "add" and json.loads(call.arguments) == {"a": 1, "b": 2}
    assert call.id.startswith("call_")
    with pytest.raises(ValueError, match="not complete JSON"):
        parse_required_call('{"name": "add", "argum')


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>',
        '{"name": "get_weather", "arguments": {"city": "Oslo"}}',
        '```json\n{\n  "name": "get_weather",\n  "arguments": {"city": "Oslo"}\n}\n```',
    ],
    ids=["tagged", "bare (the tags are special tokens)", "fenced"],
)
def test_a_call_the_model_chose_to_write_is_parsed(text: str) -> None:
    rest, calls = parse_tagged_calls(text, BOTH)
    assert rest == ""
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Oslo"})]


def test_text_around_tagged_calls_is_kept_and_several_calls_are_taken() -> None:
    text = (
        "Let me check.\n"
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>\n'
        '<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>'
    )
    rest, calls = parse_tagged_calls(text, BOTH)
    assert rest == "Let me check." and [c.name for c in calls] == ["get_weather", "add"]
    single = BOTH.model_copy(update={"parallel_tool_calls": False})
    assert [c.name for c in parse_tagged_calls(text, single)[1]] == ["get_weather"]


@pytest.mark.parametrize(
    "text",
    [
        "The weather in Oslo is mild.",
        '{"name": "delete_everything", "arguments": {}}',  # not a tool the client offered
        '<tool_call>{"name": "get_weather", "arguments": </tool_call>',  # broken JSON
        '{"answer": 42}',
        'Here: {"name": "get_weather", "arguments": {"city": "Oslo"}} and more prose',
    ],
)
def test_anything_else_stays_text(text: str) -> None:
    rest, calls = parse_tagged_calls(text, BOTH)
    assert calls == () and rest == text.strip()


def test_response_formats_become_schemas() -> None:
    assert response_schema(None) is None
    assert response_schema(ToolUse(response_format={"type": "text"})) is None
    assert response_schema(ToolUse(response_format={"type": "json_object"})) == {"type": "object"}
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}
    assert response_schema(ToolUse(response_format=fmt)) == schema


def test_provider_calls_parse_and_broken_ones_are_refused() -> None:
    message = {
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a":1}'}},
            {"type": "function", "function": {"name": "add", "arguments": {"a": 2}}},
        ]
    }
    first, second = provider_tool_calls(message)
    assert (first.id, first.arguments) == ("c1", '{"a":1}')
    assert second.id.startswith("call_") and json.loads(second.arguments) == {"a": 2}
    assert provider_tool_calls({"content": "hi", "tool_calls": None}) == ()
    for broken in ({"tool_calls": "add"}, {"tool_calls": [{"function": {"arguments": "{}"}}]}):
        with pytest.raises(TypeError):
            provider_tool_calls(broken)
