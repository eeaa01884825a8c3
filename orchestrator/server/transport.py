"""The HTTP connection layer: uvicorn's httptools protocol with the bounds uvicorn lacks.

uvicorn (0.55) times out idle keep-alive connections, but not a connection that never
finishes its request head: one that connects and sends nothing, or a header byte every
few seconds, is held forever. Enough of them (slowloris) exhaust the process's file
descriptors, and then nothing is accepted: no `/health`, no chat, and no socket for
SQLite or an upstream provider either. uvicorn's `limit_concurrency` does not help, as
it answers 503 to the *honest* requests once the slow connections fill it.

So each connection here gets:
- a head deadline: the request head (request line and headers) must be complete within
  `header_timeout_s` of the connection opening or of the request's first byte, and
  within `MAX_HEAD_BYTES`; else the connection is closed;
- a place under `max_connections`, kept below the file-descriptor limit: when a new
  connection would exceed it, the oldest connection still waiting for its head is
  closed (the likeliest slow client), and only if every connection is busy with a real
  request is the new one refused.

Idle keep-alive is uvicorn's own `timeout_keep_alive`. A reverse proxy in front (nginx,
docs/server.md) adds the same bounds at the edge.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

if TYPE_CHECKING:
    from fastapi import FastAPI

    from signoria.orchestrator.server.settings import ServerSettings

log = logging.getLogger("signoria.server")

# A request head far larger than any client sends (uvicorn's h11 default is 16 KiB).
MAX_HEAD_BYTES = 64 * 1024
# File descriptors kept free for everything but client connections: model files,
# SQLite, upstream provider sockets, log files.
RESERVED_FDS = 64


@dataclass
class ConnectionGuard:
    """What one server's connections share: the limits and who is still in its head."""

    header_timeout_s: float
    max_connections: int
    # Connections whose request head is not complete, oldest first (dicts keep order).
    waiting: dict[GuardedProtocol, None] = field(default_factory=dict)
    closed_slow: int = 0
    evicted: int = 0


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head deadline and the connection cap."""

    guard: ConnectionGuard  # set on the subclass `protocol_class` makes

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline: asyncio.TimerHandle | None = None
        self._head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()
        if len(self.connections) > self.guard.max_connections:
            oldest = next(iter(self.guard.waiting))
            if oldest is self:  # every other connection is serving a request
                log.warning("refusing a connection: %d open", len(self.connections))
            else:
                self.guard.evicted += 1
            oldest._close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_done()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        waiting = self in self.guard.waiting
        super().data_received(data)
        if waiting and self in self.guard.waiting:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._close()

    def on_message_begin(self) -> None:
        # The first byte of a request on a kept-alive connection: its head is now due.
        super().on_message_begin()
        if self not in self.guard.waiting:
            self._await_head()

    def on_headers_complete(self) -> None:
        self._head_done()
        super().on_headers_complete()

    def _await_head(self) -> None:
        self._head_bytes = 0
        self.guard.waiting[self] = None
        self._head_deadline = self.loop.call_later(self.guard.header_timeout_s, self._too_slow)

    def _head_done(self) -> None:
        self.guard.waiting.pop(self, None)
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _too_slow(self) -> None:
        self.guard.closed_slow += 1
        self._close()

    def _close(self) -> None:
        self._head_done()
        if not self.transport.is_closing():
            self.transport.close()


def protocol_class(header_timeout_s: float, max_connections: int) -> type[GuardedProtocol]:
    """A protocol class for one server: its connections share one `ConnectionGuard`."""

    class ServerProtocol(GuardedProtocol):
        guard = ConnectionGuard(header_timeout_s, max_connections)

    return ServerProtocol


def connection_budget(requested: int) -> int:
    """`requested`, lowered to what the file-descriptor limit leaves for connections.

    The soft limit is raised to the hard one first (it is often 1,024 while the hard
    limit allows far more); running out of descriptors would stop the accept loop.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        target = hard if hard != resource.RLIM_INFINITY else max(soft, requested * 2)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return requested
    in_use = len(os.listdir("/dev/fd")) if os.path.isdir("/dev/fd") else 32
    budget = max(16, soft - in_use - RESERVED_FDS)
    if budget < requested:
        log.warning(
            "max_connections lowered from %d to %d: the file-descriptor limit is %d",
            requested,
            budget,
            soft,
        )
    return min(requested, budget)


def serve(
    app: FastAPI,
    settings: ServerSettings,
    log_level: str,
    log_config: Any,
    sock: socket.socket | None = None,
) -> None:
    """Run `app` on `settings.host:port` (or on the already listening `sock` that the
    workers of `--workers` share) with the bounded protocol until a signal stops it."""
    import uvicorn

    protocol = protocol_class(
        settings.header_timeout_s, connection_budget(settings.max_connections)
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=protocol,
        timeout_keep_alive=settings.keep_alive_s,
        log_level=log_level,
        log_config=log_config,
    )
    uvicorn.Server(config).run(sockets=None if sock is None else [sock])
