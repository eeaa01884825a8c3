"""What every backend that calls a remote server shares: the key and its rules, which
HTTP statuses are worth a retry, and what to tell an operator when the server cannot be
reached."""

from __future__ import annotations

import os
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from signoria.agents.types import Availability, ExpertMisconfigured

# Statuses that say "try again later" rather than "this request is wrong".
RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class RemoteOptions(BaseModel):
    """The key is read from an environment variable the config names, never from the
    config itself, so a config file can be shared and committed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key_env: str | None = Field(
        default=None, description="name of the environment variable that holds the key"
    )
    request_timeout_s: float = Field(default=600.0, gt=0)

    def target(self) -> str:
        """What `signoria models list` shows as the place this expert is called."""
        raise NotImplementedError

    def availability(self) -> Availability:
        missing = self.api_key_env is not None and not os.environ.get(self.api_key_env)
        detail = self.target() + (f" (${self.api_key_env} not set)" if missing else "")
        return Availability(available=not missing, detail=detail)

    def api_key(self, model_name: str) -> str | None:
        name = self.api_key_env
        if name is None:
            return None
        key = os.environ.get(name)
        if not key:
            raise missing_key(model_name, [name])
        return key

    @model_validator(mode="before")
    @classmethod
    def _no_inline_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and "api_key" in data:
            raise ValueError(
                "api_key must not be written in a config file; put it in an environment "
                "variable and name that variable with api_key_env"
            )
        return data


def missing_key(model_name: str, names: list[str]) -> ExpertMisconfigured:
    variables = " or ".join(f"${name}" for name in names)
    return ExpertMisconfigured(
        f"model {model_name!r} reads its API key from {variables}, which is not set: "
        f"export {names[0]}=<key>, or pick a pipeline of local models (signoria models list)"
    )


def _chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def unreachable_cause(exc: BaseException, url: str) -> str | None:
    """Why `url` could not be reached, in the operator's terms, or None when the chain
    holds no such cause. HTTP clients report the symptom their pool saw (httpx-aiohttp
    calls a refused connection a ConnectTimeout "ssl:default", litellm an
    InternalServerError); the cause is further down the exception chain."""
    parts = urlsplit(url)
    where = parts.netloc or url
    for cause in _chain(exc):
        if isinstance(cause, ConnectionRefusedError):
            return (
                f"connection refused by {where} ({url}): nothing listens there; "
                "start the server or fix base_url"
            )
        if isinstance(cause, socket.gaierror):
            return f"cannot resolve host {parts.hostname!r} ({url}): check base_url"
        if isinstance(cause, ssl.SSLError):
            plain = parts.scheme == "https"
            hint = "; a plain-HTTP server needs an http:// base_url" if plain else ""
            return f"TLS handshake with {where} failed ({cause.reason or cause}){hint}"
        if isinstance(cause, ConnectionResetError):
            return f"connection reset by {where} ({url})"
    return None
