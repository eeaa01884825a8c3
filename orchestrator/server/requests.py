"""From raw HTTP body to a validated chat request, in the order a careful server checks.

1. size (413), before anything is parsed; 2. JSON (400); 3. fields a client may never set
(400, naming the field); 4. schema (422, naming the field); 5. caps and semantics (400).
The body is read here rather than by FastAPI so that this order holds and authentication,
a dependency, always runs before the body is even looked at.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from signoria.agents.types import Message, Role
from signoria.orchestrator.limits import RequestLimits
from signoria.orchestrator.server.errors import ApiError, bad_request
from signoria.orchestrator.server.schemas import (
    FORBIDDEN_FIELDS,
    UNSUPPORTED_FIELDS,
    ChatCompletionRequest,
)
from signoria.orchestrator.server.settings import ServerSettings


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"request body is larger than {limit} bytes", code="request_too_large")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it is known to exceed `limit`: from Content-Length if
    the client sent one, else while it streams in (chunked uploads have no length)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise bad_request("invalid Content-Length header", code="invalid_header") from None
        if size > limit:
            raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def parse_json(body: bytes) -> dict[str, Any]:
    if not body.strip():
        raise bad_request("request body is empty; expected a JSON object", code="invalid_json")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_request(f"body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise bad_request("body must be a JSON object", code="invalid_json")
    return data


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
                f"{name!r} is not supported by this server", param=name, code="unsupported"
            )


def validate(data: Mapping[str, Any]) -> ChatCompletionRequest:
    try:
        return ChatCompletionRequest.model_validate(data)
    except ValidationError as exc:
        loc_errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(loc_errors) from None


def _role(role: str) -> Role:
    if role == "user":
        return "user"
    if role == "assistant":
        return "assistant"
    return "system"  # system, or developer: OpenAI's newer name for it


def to_messages(body: ChatCompletionRequest, settings: ServerSettings) -> list[Message]:
    """The chat in Signoria's shape; `developer` is OpenAI's newer name for `system`."""
    if len(body.messages) > settings.max_messages:
        raise bad_request(
            f"{len(body.messages)} messages; this server accepts at most {settings.max_messages}",
            param="messages",
        )
    messages = [Message(role=_role(m.role), content=m.text()) for m in body.messages]
    if not any(m.role == "user" and m.content.strip() for m in messages):
        raise bad_request("the conversation has no user message with content", param="messages")
    return messages


def request_limits(body: ChatCompletionRequest, settings: ServerSettings) -> RequestLimits:
    """The request's own limits with the server's caps always applied on top.

    Asking for more than a cap is a 400 rather than a silent clamp: a client that sends
    `max_tokens=4096` should learn that it will not get 4096 tokens.
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
        max_tokens=max_tokens or settings.max_tokens_cap,
        max_experts=experts or settings.max_experts_cap,
        budget_usd=budget if budget is not None else cap,
        deadline_s=None if options is None else options.deadline_s,
    )


async def read_chat_request(request: Request, settings: ServerSettings) -> ChatCompletionRequest:
    data = parse_json(await read_body(request, settings.max_body_bytes))
    check_client_fields(data)
    return validate(data)
