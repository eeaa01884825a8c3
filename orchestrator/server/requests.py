"""From raw HTTP body to a validated chat request, in the order a careful server checks.

1. content type (415) and size (413), before anything is parsed; 2. JSON, and values no
stage could hold (400, see `body`); 3. fields a client may never set (400, naming the
field); 4. schema (422, naming the field); 5. caps and semantics (400).
The body is read here rather than by FastAPI so that this order holds and authentication,
a dependency, always runs before the body is even looked at.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from signoria.agents.types import Message, Role, ToolCall, ToolUse
from signoria.orchestrator.limits import RequestLimits
from signoria.orchestrator.server.body import check_content_type, parse_json, read_body
from signoria.orchestrator.server.errors import bad_request
from signoria.orchestrator.server.schemas import (
    FORBIDDEN_FIELDS,
    UNSUPPORTED_FIELDS,
    ChatCompletionRequest,
    ChatMessage,
    TextFormat,
)
from signoria.orchestrator.server.settings import ServerSettings


def check_client_fields(data: Mapping[str, Any]) -> None:
    """Refuse fields that would redirect or re-key backend calls, and features that would
    otherwise be silently ignored."""
    lowered = {str(key).lower(): key for key in data}
    for name in FORBIDDEN_FIELDS:
        if name in lowered:
            raise bad_request(
                f"{lowered[name]!r} cannot be set by a client: backends and credentials "
                "come from the server's config",
                param=lowered[name],
                code="forbidden_field",
            )
    for name in UNSUPPORTED_FIELDS:
        if data.get(name) not in (None, False, [], {}):
            raise bad_request(
                f"{name!r} is not supported by this server"
                + ("; send tools and tool_choice" if name.startswith("function") else ""),
                param=name,
                code="unsupported",
            )


def validate(data: Mapping[str, Any]) -> ChatCompletionRequest:
    try:
        return ChatCompletionRequest.model_validate(data)
    except ValidationError as exc:
        loc_errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(loc_errors) from None


def _role(role: str) -> Role:
    if role in ("user", "assistant", "tool"):
        return role  # type: ignore[return-value]
    return "system"  # system, or developer: OpenAI's newer name for it


def _message(message: ChatMessage) -> Message:
    calls = tuple(
        ToolCall(id=call.id, name=call.function.name, arguments=call.function.arguments)
        for call in message.tool_calls or ()
    )
    return Message(
        role=_role(message.role),
        content=message.text(),
        tool_calls=calls,
        tool_call_id=message.tool_call_id,
    )


def to_messages(body: ChatCompletionRequest, settings: ServerSettings) -> list[Message]:
    """The chat in Signoria's shape; `developer` is OpenAI's newer name for `system`."""
    if len(body.messages) > settings.max_messages:
        raise bad_request(
            f"{len(body.messages)} messages; this server accepts at most {settings.max_messages}",
            param="messages",
        )
    messages = [_message(m) for m in body.messages]
    if not any(m.role == "user" and m.content.strip() for m in messages):
        raise bad_request("the conversation has no user message with content", param="messages")
    return messages


def tool_use(body: ChatCompletionRequest) -> ToolUse | None:
    """The client's tools and response format, checked against each other; None when it
    sent neither (`response_format: text` is the default, not a request)."""
    names = [tool.function.name for tool in body.tools or ()]
    if len(set(names)) < len(names):
        raise bad_request("two tools share a name", param="tools")
    choice = body.tool_choice
    if choice is not None and choice != "none" and not names:
        raise bad_request("tool_choice needs tools", param="tool_choice")
    if not isinstance(choice, str | None) and choice.function.name not in names:
        raise bad_request(
            f"tool_choice names {choice.function.name!r}, which is not among the tools",
            param="tool_choice",
        )
    fmt = None if isinstance(body.response_format, TextFormat) else body.response_format
    if not names and fmt is None:
        return None
    return ToolUse(
        tools=tuple(tool.model_dump(exclude_none=True) for tool in body.tools or ()),
        tool_choice=choice if isinstance(choice, str | None) else choice.model_dump(),
        parallel_tool_calls=body.parallel_tool_calls,
        response_format=None if fmt is None else fmt.model_dump(exclude_none=True, by_alias=True),
    )


def request_limits(body: ChatCompletionRequest, settings: ServerSettings) -> RequestLimits:
    """The request's own limits with the server's caps always applied on top.

    Asking for more than a server cap is a 400 rather than a silent clamp: a client that
    sends `max_tokens=4096` should learn that it will not get 4096 tokens. A `max_tokens`
    within the cap is passed on as asked (above or below the pipeline's default); only a
    pipeline's own `max_tokens_cap` may hold it lower, and the response says so
    (`signoria.max_tokens_applied`, `finish_reason: "length"` when the cap was hit).
    Without one the pipeline's default applies, held to the server's cap as well.
    """
    if body.n != 1:
        raise bad_request("only n=1 is supported", param="n")
    if (
        body.max_tokens is not None
        and body.max_completion_tokens is not None
        and body.max_tokens != body.max_completion_tokens
    ):
        raise bad_request(
            "max_tokens and max_completion_tokens disagree; send one of them",
            param="max_completion_tokens",
        )
    max_tokens = body.max_completion_tokens or body.max_tokens
    if max_tokens is not None and max_tokens > settings.max_tokens_cap:
        param = "max_tokens" if body.max_tokens is not None else "max_completion_tokens"
        raise bad_request(
            f"{param}={max_tokens} is above this server's cap of {settings.max_tokens_cap}",
            param=param,
        )
    options = body.signoria
    budget = None if options is None else options.budget_usd
    cap = settings.budget_cap_usd
    if budget is not None and cap is not None and budget > cap:
        raise bad_request(
            f"signoria.budget_usd={budget} is above this server's cap of {cap}",
            param="signoria.budget_usd",
        )
    experts = None if options is None else options.max_experts
    if experts is not None and experts > settings.max_experts_cap:
        raise bad_request(
            f"signoria.max_experts={experts} is above this server's cap of "
            f"{settings.max_experts_cap}",
            param="signoria.max_experts",
        )
    return RequestLimits(
        max_tokens=max_tokens,
        ceiling_tokens=settings.max_tokens_cap,
        max_experts=experts or settings.max_experts_cap,
        budget_usd=budget if budget is not None else cap,
        deadline_s=None if options is None else options.deadline_s,
    )


async def read_chat_request(request: Request, settings: ServerSettings) -> ChatCompletionRequest:
    check_content_type(request)
    data = parse_json(await read_body(request, settings.max_body_bytes, settings.body_timeout_s))
    check_client_fields(data)
    return validate(data)
