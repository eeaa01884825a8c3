"""Tool calls and structured output for models that only write text (local GGUFs).

An API provider takes `tools` and `response_format` as they are. A local model gets them
two ways: the chat template renders the tools into the prompt (so the model knows them),
and, where the client leaves the model no choice (`tool_choice: "required"` or a named
function, or a JSON `response_format`), a grammar built from the JSON schema makes any
other output impossible, so the call parses by construction. With `tool_choice: "auto"`
the model may answer in text or call a tool in the `<tool_call>{...}</tool_call>` form
that Qwen's and Hermes' templates teach; such blocks are parsed out of the text.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from signoria.agents.types import ToolCall, ToolUse

_TAGGED = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.DOTALL)
_FENCED = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
_ANY_OBJECT: dict[str, Any] = {"type": "object"}


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def required_call_schema(tool_use: ToolUse) -> dict[str, Any] | None:
    """The JSON schema of one call the model must make, or None when it may answer in
    text: `{"name": <one of the allowed>, "arguments": <that function's parameters>}`."""
    if not tool_use.requires_call:
        return None
    forced = tool_use.forced_function()
    allowed = [f for f in tool_use.functions() if forced is None or f["name"] == forced]
    options = [
        {
            "type": "object",
            "properties": {
                "name": {"const": function["name"]},
                "arguments": function.get("parameters") or _ANY_OBJECT,
            },
            "required": ["name", "arguments"],
        }
        for function in allowed
    ]
    return options[0] if len(options) == 1 else {"anyOf": options}


def parse_required_call(text: str) -> ToolCall:
    """The call a grammar-constrained generation wrote (`required_call_schema`'s shape).
    A generation cut at max_tokens is not complete JSON: that is a ValueError."""
    try:
        data = json.loads(text)
        name = data["name"]
        arguments = data["arguments"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"the tool call is not complete JSON: {text[:80]!r}") from exc
    return ToolCall(id=new_call_id(), name=str(name), arguments=json.dumps(arguments))


def _as_call(text: str, names: set[str]) -> ToolCall | None:
    """A call when `text` is one JSON object naming an offered tool, else None."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("name") not in names:
        return None
    arguments = data.get("arguments", data.get("parameters", {}))
    return ToolCall(id=new_call_id(), name=data["name"], arguments=json.dumps(arguments))


def parse_tagged_calls(text: str, tool_use: ToolUse) -> tuple[str, tuple[ToolCall, ...]]:
    """The text outside `<tool_call>` blocks, and the calls inside them that name a tool
    the client offered (a block naming anything else is left in the text, as written).

    The tags are special tokens in Qwen's vocabulary and llama.cpp leaves them out of the
    text, so an answer that is such a call object (fenced as JSON or not), or whose every
    line is one, is taken as those calls.
    """
    names = {f["name"] for f in tool_use.functions()}
    calls: list[ToolCall] = []

    def take(match: re.Match[str]) -> str:
        call = _as_call(match.group(1), names)
        if call is None:
            return match.group(0)
        calls.append(call)
        return ""

    rest = _TAGGED.sub(take, text).strip()
    if not calls and rest:
        fenced = _FENCED.match(rest)
        body = fenced.group(1) if fenced else rest
        whole = _as_call(body, names)
        bare = [whole] if whole else [_as_call(ln, names) for ln in body.splitlines() if ln.strip()]
        if all(call is not None for call in bare):
            calls, rest = [call for call in bare if call is not None], ""
    if tool_use.parallel_tool_calls is False:
        calls = calls[:1]
    return rest, tuple(calls)


def response_schema(tool_use: ToolUse | None) -> dict[str, Any] | None:
    """The JSON schema an answer must match under `response_format` (`json_object`: any
    object), or None for free text."""
    fmt = None if tool_use is None else tool_use.response_format
    if fmt is None or fmt.get("type") == "text":
        return None
    if fmt.get("type") == "json_schema":
        schema = fmt.get("json_schema", {}).get("schema")
        return schema if isinstance(schema, dict) and schema else _ANY_OBJECT
    return _ANY_OBJECT


def local_arguments(tool_use: ToolUse | None) -> dict[str, Any]:
    """What a llama.cpp chat call adds for the client's tools: the tools for the template
    to render, and the grammar of the output the client requires (if any)."""
    if tool_use is None:
        return {}
    arguments: dict[str, Any] = {}
    if tool_use.offers_tools:
        arguments["tools"] = list(tool_use.tools)
    schema = required_call_schema(tool_use) or response_schema(tool_use)
    if schema is not None:
        from llama_cpp.llama_grammar import LlamaGrammar

        arguments["grammar"] = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
    return arguments


def local_result(text: str, tool_use: ToolUse | None) -> tuple[str, tuple[ToolCall, ...]]:
    """A local model's text as an answer: the tool call it was constrained to write, the
    `<tool_call>` blocks it chose to write, or its text as it is."""
    if tool_use is None or not tool_use.offers_tools:
        return text, ()
    if tool_use.requires_call:
        return "", (parse_required_call(text),)
    return parse_tagged_calls(text, tool_use)


def provider_tool_calls(message: dict[str, Any]) -> tuple[ToolCall, ...]:
    """The tool calls of an OpenAI-shaped response message. A provider whose calls lack a
    function name sent something that is not a completion: a TypeError (`malformed`)."""
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise TypeError("tool_calls is not a list")
    parsed = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not function.get("name"):
            raise TypeError("a tool call without a function name")
        arguments = function.get("arguments")
        parsed.append(
            ToolCall(
                id=str(call.get("id") or new_call_id()),
                name=str(function["name"]),
                arguments=arguments if isinstance(arguments, str) else json.dumps(arguments or {}),
            )
        )
    return tuple(parsed)
