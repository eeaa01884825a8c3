"""`POST /v1/feedback`: a client's score or reference answer for a request it made.

The request id is the completion's `id` (also sent as the `X-Request-Id` header, on
failures too). Feedback is stored beside the recorded request and given again replaces
the earlier one (latest wins); `signoria eval export --traffic` turns it into outcome
rows that routers train on. With API keys on, a key may only give feedback on requests
made with that same key: any other id is a 404, exactly like an unknown one, so a key
cannot probe which ids exist.

The body is read and validated here rather than by FastAPI for the same reason as the
chat endpoint's: authentication runs first, and a malformed body is a 400 naming the bad
field (these fields are few and all semantic, so there is no separate 422 stage). The
body passes the same checks as a chat body (`body.py`: JSON content type, nesting, 64-bit
integers, encodable text), so nothing a client sends can fail the feedback write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from signoria.orchestrator.server.body import check_content_type, parse_json, read_body
from signoria.orchestrator.server.errors import ApiError, bad_request
from signoria.orchestrator.storage.feedback import FeedbackInput, FeedbackRefused, UnknownRequest

if TYPE_CHECKING:
    from signoria.orchestrator.storage import Store

# Feedback bodies are small: a reference answer, a comment. Far below the chat cap.
MAX_FEEDBACK_BYTES = 256 * 1024
# How long such a body may take to arrive (408 after): a trickled body holds a slot.
FEEDBACK_BODY_S = 30.0


class FeedbackRequest(FeedbackInput):
    """POST /v1/feedback: exactly one of `score` (0..1) and `reference`."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    request_id: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class FeedbackResponse(BaseModel):
    """The stored feedback; `replaced` is true when it overwrote earlier feedback."""

    object: Literal["signoria.feedback"] = "signoria.feedback"
    request_id: str
    score: float | None
    reference: str | None
    comment: str | None
    task: str | None
    replaced: bool
    created_at: datetime
    updated_at: datetime


def _invalid(exc: ValidationError) -> ApiError:
    problem = exc.errors()[0]
    field = ".".join(str(part) for part in problem["loc"]) or None
    message = str(problem["msg"]).removeprefix("Value error, ")
    return bad_request(f"{field}: {message}" if field else message, param=field)


def _not_found(why: str) -> ApiError:
    return ApiError(404, why, param="request_id", code="request_not_found")


def add_feedback_route(
    router: APIRouter,
    store: Callable[[], Store | None],
    require_key: Callable[..., Awaitable[str | None]],
    responses: dict[int | str, dict[str, object]],
) -> None:
    """Register `POST /feedback` on `router`; `store` gives the recording store, or None
    when the server does not record (then no request id can be known)."""

    body_schema = {"schema": FeedbackRequest.model_json_schema()}

    @router.post(
        "/feedback",
        response_model=FeedbackResponse,
        responses=responses,
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": body_schema}}
        },
    )
    # `client` is a default, not Annotated: a string annotation cannot name a closure's
    # dependency (this module has postponed annotations).
    async def feedback(
        request: Request, client: str | None = Depends(require_key)
    ) -> FeedbackResponse:
        """Score a served answer (0..1) or give its reference answer; latest wins."""
        check_content_type(request)
        try:
            body = FeedbackRequest.model_validate(
                parse_json(await read_body(request, MAX_FEEDBACK_BYTES, FEEDBACK_BODY_S))
            )
        except ValidationError as exc:
            raise _invalid(exc) from None
        target = store()
        if target is None:
            raise _not_found(
                "this server does not record requests (--no-record), so no request id "
                "can be given feedback",
            )
        verdict = FeedbackInput.model_validate(body.model_dump(exclude={"request_id"}))
        try:
            record = await asyncio.to_thread(
                target.give_feedback,
                body.request_id,
                verdict,
                client=client,
                # With keys on (the caller has one), only that key's own requests.
                enforce_client=client is not None,
            )
        except UnknownRequest as exc:
            raise _not_found(str(exc)) from None
        except FeedbackRefused as exc:
            raise bad_request(str(exc), param="score", code="not_scorable") from None
        return FeedbackResponse(
            request_id=body.request_id,
            replaced=record.updated_at > record.created_at,
            **record.model_dump(),
        )
