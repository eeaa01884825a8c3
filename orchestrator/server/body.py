"""From raw HTTP bytes to a JSON object that every later stage can hold.

A body that parses is not yet safe: Python's `json` turns a 100k-deep array into a
RecursionError, a 5,000-digit integer into a ValueError, `1e400` into `inf`, `NaN` into
a float no database column takes, and `"\\ud800"` into a string that cannot be encoded
as UTF-8 (so the expert call, the response or the record write fails after the model
ran). Each is refused here, before any expert is called, as a 400 naming the field.
The JSON endpoints (chat and feedback) read their bodies through this module.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any, NoReturn

from fastapi import Request

from signoria.orchestrator.server.errors import ApiError, bad_request

# OpenAI request bodies are a few levels deep (messages[].content[].text); 32 leaves room
# for any field a client sends by habit while staying far below Python's recursion limit.
MAX_DEPTH = 32
# What a BIGINT column (SQLite INTEGER, PostgreSQL BIGINT) and every backend can hold.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
JSON_TYPES = ("application/json",)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"request body is larger than {limit} bytes", code="request_too_large")


async def read_body(request: Request, limit: int, timeout_s: float | None = None) -> bytes:
    """The body, refused as soon as it is known to exceed `limit`: from Content-Length if
    the client sent one, else while it streams in (chunked uploads have no length).

    `timeout_s` bounds how long the whole body may take to arrive (408 after it): a client
    trickling a declared megabyte would otherwise hold its connection and slot forever.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise bad_request("invalid Content-Length header", code="invalid_header") from None
        if size > limit:
            raise _too_large(limit)
    body = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise _too_large(limit)
    except TimeoutError:
        raise ApiError(
            408, f"request body did not arrive within {timeout_s}s", code="request_timeout"
        ) from None
    return bytes(body)


def check_content_type(request: Request) -> None:
    """415 unless the body is declared JSON (`application/json`, or `application/*+json`,
    in UTF-8).

    A web page can POST `text/plain` or a form to a loopback server without any CORS
    preflight; requiring a JSON type means such a request never reaches a pipeline. An
    absent Content-Type is read as JSON (curl-style clients); a browser cannot send one
    cross-site without an `Origin` header, which the origin guard refuses.
    """
    raw = request.headers.get("content-type")
    if raw is None:
        return
    mime, _, params = raw.partition(";")
    mime = mime.strip().lower()
    is_json = mime in JSON_TYPES or (mime.startswith("application/") and mime.endswith("+json"))
    charset = next(
        (
            value.strip().strip('"').lower()
            for key, _, value in (p.partition("=") for p in params.split(";"))
            if key.strip().lower() == "charset"
        ),
        "utf-8",
    )
    if not is_json or charset not in ("utf-8", "utf8"):
        raise ApiError(
            415,
            f"Content-Type {raw.strip()[:100]!r} is not supported; send 'application/json' (UTF-8)",
            code="unsupported_media_type",
        )


def _constant(name: str) -> NoReturn:
    # NaN and Infinity are not JSON (RFC 8259), though Python's parser takes them.
    raise ValueError(f"{name} is not valid JSON")


def parse_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object whose every value the server can hold (`check_values`)."""
    if not body.strip():
        raise bad_request("request body is empty; expected a JSON object", code="invalid_json")
    try:
        data = json.loads(body, parse_constant=_constant)
    except RecursionError:
        raise bad_request(
            f"body is nested too deeply (at most {MAX_DEPTH} levels)", code="invalid_json"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_request(f"body is not valid JSON: {exc}", code="invalid_json") from None
    except ValueError as exc:  # an integer of more than 4,300 digits, NaN, Infinity
        raise bad_request(f"body holds a value the server cannot read: {exc}") from None
    if not isinstance(data, dict):
        raise bad_request("body must be a JSON object", code="invalid_json")
    check_values(data)
    return data


def _safe(text: str) -> str:
    """A client's text fit to put in an error message (which is itself UTF-8 JSON)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")[:100]


def _field(path: tuple[str, ...]) -> str | None:
    return ".".join(path) or None


def check_values(data: dict[str, Any]) -> None:
    """400 for the first value no stage could hold: nesting over `MAX_DEPTH`, an integer
    outside 64 bits, a non-finite number, or text that is not encodable Unicode (a lone
    UTF-16 surrogate) or holds NUL (PostgreSQL text cannot). Iterative, so the walk
    itself cannot overflow the stack."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if len(path) > MAX_DEPTH:
            raise bad_request(
                f"body is nested too deeply (at most {MAX_DEPTH} levels)", code="invalid_json"
            )
        if isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, path)
                stack.append((item, (*path, _safe(key))))
        elif isinstance(value, list):
            stack.extend((item, (*path, str(i))) for i, item in enumerate(value))
        elif isinstance(value, str):
            _check_text(value, path)
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
            raise bad_request(
                f"{_field(path)}: integers must fit in 64 bits "
                f"(between {INT64_MIN} and {INT64_MAX})",
                param=_field(path),
            )
        elif isinstance(value, float) and not math.isfinite(value):
            raise bad_request(f"{_field(path)}: numbers must be finite", param=_field(path))


def _check_text(text: str, path: tuple[str, ...]) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_request(
            f"{_field(path) or 'body'}: text is not valid Unicode (a lone UTF-16 surrogate "
            "such as \\ud800 cannot be encoded as UTF-8)",
            param=_field(path),
        ) from None
    if "\x00" in text:
        raise bad_request(
            f"{_field(path) or 'body'}: text may not contain NUL (\\u0000)", param=_field(path)
        )
