"""OpenAI-shaped error bodies and the handlers that make every failure use them.

OpenAI clients (the official SDKs, lm-eval-harness, LangChain) parse
`{"error": {"message", "type", "param", "code"}}` and pick their exception class and retry
policy from the status code, so every path out of the server, including FastAPI's own
404/405 and validation errors, goes through one of these handlers. Unexpected exceptions
become a generic 500: the traceback goes to the server log, never to the client.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from signoria.orchestrator.metering import BUDGET_REFUSED
from signoria.orchestrator.pipeline import PipelineFailed

log = logging.getLogger("signoria.server")

INVALID_REQUEST = "invalid_request_error"
AUTHENTICATION = "authentication_error"
RATE_LIMIT = "rate_limit_error"
SERVER = "server_error"
BUDGET = "budget_error"

# Substrings of a call's error that mean time ran out (see orchestrator/calls.py).
_TIME_ERRORS = ("timeout", "deadline")


class ApiError(Exception):
    """An error with everything its OpenAI error body and status need."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = INVALID_REQUEST,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, dict[str, str | None]]:
        return error_body(self.message, self.type, self.param, self.code)

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def error_body(
    message: str, type: str, param: str | None = None, code: str | None = None
) -> dict[str, dict[str, str | None]]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def bad_request(message: str, param: str | None = None, code: str = "invalid_value") -> ApiError:
    return ApiError(400, message, param=param, code=code)


def _final(status: int, message: str, kind: str, code: str) -> ApiError:
    """An error the same request would meet again: `x-should-retry: false` for the SDKs."""
    return ApiError(status, message, type=kind, code=code, headers={"x-should-retry": "false"})


def pipeline_error(exc: PipelineFailed) -> ApiError:
    """402 when the budget refused every failed call, 504 when every failed call ran out
    of time, a 503 that is not to be retried when the setup cannot work (an unset key),
    else 503 (no expert could answer).

    The distinction matters to clients: a 504 says a longer deadline might work, a 503
    says the experts themselves are failing, and a 402 says the same request will fail
    the same way: it is the client's budget, not a server fault, so it is a 4xx that
    OpenAI clients do not retry (they retry 408, 409, 429 and 5xx), and `x-should-retry:
    false` says so to the SDKs that read it.
    """
    if exc.every_failure_has(BUDGET_REFUSED):
        return _final(402, f"over budget: {exc}", BUDGET, "budget_exceeded")
    if exc.misconfigured:
        # The operator's setup (an unset key): retrying cannot help until it is fixed.
        return _final(503, f"not configured: {exc.misconfigured}", SERVER, "expert_misconfigured")
    errors = [call.error for call in exc.result.calls if call.error]
    timed_out = bool(errors) and all(e.lower().startswith(_TIME_ERRORS) for e in errors)
    if timed_out:
        return ApiError(504, f"timed out: {exc}", type=SERVER, code="pipeline_timeout")
    return ApiError(503, f"no answer: {exc}", type=SERVER, code="pipeline_failed")


def _dotted(loc: Sequence[int | str]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts)


def validation_error(errors: Sequence[Any]) -> ApiError:
    """A pydantic/FastAPI validation failure as an error that names the bad field."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
    field = _dotted(first.get("loc", ()))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    message = f"{field}: {first.get('msg')}{more}" if field else f"{first.get('msg')}{more}"
    if first.get("type") == "json_invalid":
        return bad_request(f"body is not valid JSON: {first.get('msg')}", code="invalid_json")
    return ApiError(422, message, param=field or None, code="invalid_schema")


_HTTP_CODES = {
    401: ("authentication_error", "invalid_api_key"),
    404: (INVALID_REQUEST, "not_found"),
    405: (INVALID_REQUEST, "method_not_allowed"),
    413: (INVALID_REQUEST, "request_too_large"),
    429: (RATE_LIMIT, "rate_limit_exceeded"),
}


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    type_, code = _HTTP_CODES.get(
        exc.status_code, (SERVER if exc.status_code >= 500 else INVALID_REQUEST, None)
    )
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route {request.method} {request.url.path}"
    headers = dict(exc.headers or {})
    return ApiError(exc.status_code, message, type=type_, code=code, headers=headers).response()


async def _request_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return validation_error(exc.errors()).response()


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return ApiError(500, "internal server error", type=SERVER, code="internal_error").response()


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(Exception, _unexpected)
