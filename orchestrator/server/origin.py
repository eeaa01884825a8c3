"""Browser guards: a foreign `Host` (DNS rebinding) and a foreign `Origin` (cross-site
requests) are refused before routing, authentication or any body is read.

A keyless server on 127.0.0.1 is reachable from every web page its operator opens: the
page cannot read a cross-origin answer, but it can POST and spend money, and after DNS
rebinding (evil.example resolving to 127.0.0.1) it can even read the answers, since the
browser then believes the server *is* evil.example. Checking `Host` defeats the second
(the rebinding page still sends `Host: evil.example`); refusing any request whose
`Origin` is neither this server itself nor a configured CORS origin defeats the first
(browsers always send `Origin` on cross-origin POSTs and on CORS preflights).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from signoria.orchestrator.server.errors import ApiError
from signoria.orchestrator.server.settings import ServerSettings, is_loopback

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
# Headers a CORS client may read: the record key and whether the record was written.
EXPOSED_HEADERS = ("X-Request-Id", "X-Signoria-Recorded")


def host_name(authority: str) -> str:
    """`Host` without its port, lower-case, IPv6 brackets and a trailing dot removed."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        return authority[1 : authority.find("]")] if "]" in authority else authority
    if authority.count(":") == 1:
        authority = authority.partition(":")[0]
    return authority.rstrip(".")


def allowed_hosts(settings: ServerSettings) -> frozenset[str] | None:
    """The Host names this server answers for; None means any.

    Bound to loopback: the loopback names, the bound address and `--allowed-host` names.
    Bound elsewhere (API keys are then required, so rebinding gains nothing without a key):
    any host unless `--allowed-host` names some. `*` among them means any.
    """
    extra = {host_name(h) for h in settings.allowed_hosts}
    if "*" in extra or (not extra and not is_loopback(settings.host)):
        return None
    return frozenset({*LOOPBACK_NAMES, host_name(settings.host), *extra})


def same_origin(origin: str, authority: str) -> bool:
    """True when `origin` is the server itself as the client addressed it, e.g. the
    `/docs` page served by this process posting to it."""
    parts = urlsplit(origin.strip().lower())
    return parts.scheme in ("http", "https") and parts.netloc == authority.strip().lower()


class BrowserGuard:
    """Pure ASGI middleware: 421 for a foreign Host, 403 for a foreign Origin."""

    def __init__(
        self, app: ASGIApp, hosts: frozenset[str] | None, cors_origins: Iterable[str]
    ) -> None:
        self.app = app
        self.hosts = hosts
        self.cors_origins = frozenset(o.rstrip("/").lower() for o in cors_origins)

    def problem(self, headers: Headers) -> ApiError | None:
        authority = headers.get("host", "")
        if self.hosts is not None and host_name(authority) not in self.hosts:
            return ApiError(
                421,
                f"this server does not answer for Host {authority[:100]!r}; the operator can "
                "allow it with --allowed-host",
                code="invalid_host",
            )
        origin = headers.get("origin")
        if origin is None or same_origin(origin, authority):
            return None
        if "*" in self.cors_origins or origin.rstrip("/").lower() in self.cors_origins:
            return None
        return ApiError(
            403,
            f"cross-origin requests from {origin[:100]!r} are refused; the operator can "
            "allow an origin with --cors-origin",
            code="cross_origin_forbidden",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            problem = self.problem(Headers(scope=scope))
            if problem is not None:
                await problem.response()(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install_browser_guards(app: FastAPI, settings: ServerSettings) -> None:
    """Put the guards in front of `app`, with CORS for `settings.cors_origins` (none by
    default: a browser page of another origin gets no way in)."""
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=list(EXPOSED_HEADERS),
        )
    # Added last, so outermost: a refused request reaches neither CORS nor the routes.
    app.add_middleware(
        BrowserGuard, hosts=allowed_hosts(settings), cors_origins=settings.cors_origins
    )
