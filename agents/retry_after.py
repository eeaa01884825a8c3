"""Retry-After, as providers send it (seconds or an HTTP date), in seconds from now.

Backends read it off provider errors so the orchestrator's one retry loop can wait at
least as long as the provider asked.
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from datetime import UTC, datetime


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A Retry-After header (delta-seconds or an HTTP date) as seconds from now."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    reference = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, when.timestamp() - reference)


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def from_exception(exc: BaseException) -> float | None:
    """The Retry-After of a provider error, wherever its client library keeps the headers."""
    for headers in (
        getattr(getattr(exc, "response", None), "headers", None),
        getattr(exc, "litellm_response_headers", None),
        getattr(exc, "headers", None),
    ):
        if isinstance(headers, Mapping) or hasattr(headers, "items"):
            seconds = retry_after_seconds(header(headers, "retry-after"))
            if seconds is not None:
                return seconds
    return None
