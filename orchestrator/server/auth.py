"""Bearer API keys, checked in constant time.

The dependency reads only the Authorization header (or, for the web console's pages, the
key a person entered at its login, held in a SameSite=Strict, HttpOnly cookie: no other
site's page can send it, and the origin guard refuses their requests anyway), and the
chat endpoint parses its body itself after the dependencies ran, so an unauthenticated
client always gets 401 and never learns anything from how its body was judged.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated

from fastapi import Cookie, Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from signoria.orchestrator.server.errors import AUTHENTICATION, ApiError
from signoria.orchestrator.server.keys import KeyGate
from signoria.orchestrator.storage.keys import key_fingerprint

__all__ = ["KEY_COOKIE", "api_key_dependency", "key_fingerprint", "key_matches"]

KEY_COOKIE = "signoria_key"

_bearer = HTTPBearer(auto_error=False, description="One of the keys in $SIGNORIA_API_KEYS.")


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def key_matches(given: str, digests: Sequence[bytes]) -> bool:
    """Compare against every key's digest without stopping at the first match.

    Hashing first makes every comparison the same length, so neither the time taken nor
    an early length mismatch says which key (or how much of one) was right.
    """
    candidate = _digest(given)
    matched = False
    for digest in digests:
        matched |= hmac.compare_digest(candidate, digest)
    return matched


def api_key_dependency(
    api_keys: Sequence[SecretStr], gate: KeyGate
) -> Callable[[HTTPAuthorizationCredentials | None], Awaitable[str | None]]:
    """A FastAPI dependency that enforces `api_keys` and the database's keys (`gate`) and
    returns the caller's `key_fingerprint` (None when keys are off); with no keys at all
    it lets everything through (the server refuses to start keyless on a non-loopback
    address)."""
    keys = [_digest(k.get_secret_value()) for k in api_keys]

    async def require_api_key(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        signoria_key: Annotated[str | None, Cookie(include_in_schema=False)] = None,
    ) -> str | None:
        if not keys and not await gate.any_keys():
            return None
        given = credentials.credentials if credentials is not None else signoria_key
        if not given:
            raise _unauthorized("missing API key: send 'Authorization: Bearer <key>'")
        fingerprint = key_fingerprint(given)
        if not key_matches(given, keys) and await gate.find(fingerprint) is None:
            raise _unauthorized("invalid API key")
        return fingerprint

    return require_api_key


def _unauthorized(message: str) -> ApiError:
    return ApiError(
        401,
        message,
        type=AUTHENTICATION,
        code="invalid_api_key",
        headers={"WWW-Authenticate": "Bearer"},
    )
