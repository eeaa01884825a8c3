"""The tool the tool-calling tests offer, in OpenAI's shape: one required string argument,
so a call's arguments can be checked against its schema."""

from __future__ import annotations

from typing import Any

WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
FORCE_WEATHER: dict[str, Any] = {"type": "function", "function": {"name": "get_weather"}}
