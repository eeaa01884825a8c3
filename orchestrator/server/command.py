"""`signoria serve`: run the OpenAI-compatible server with uvicorn.

This module is imported by the CLI at every start, so it imports only typer at module
level; FastAPI, uvicorn and the models load inside `serve`, keeping `signoria ask` fast.
"""

from __future__ import annotations

import copy
import gc
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    import socket

    from signoria.orchestrator.keylimits import KeyDeclaration
    from signoria.orchestrator.server.settings import ServerSettings
    from signoria.orchestrator.storage import Store


def serve(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Config YAML (default: $SIGNORIA_CONFIG or embedded)."),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to bind; a non-loopback one needs $SIGNORIA_API_KEYS.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help="Database URL (default: $SIGNORIA_DB or SQLite in SIGNORIA_HOME)."
        ),
    ] = None,
    no_record: Annotated[
        bool, typer.Option("--no-record", help="Do not record requests in the database.")
    ] = False,
    max_concurrent: Annotated[
        int | None, typer.Option(min=1, help="Requests in flight before 429 (default 32).")
    ] = None,
    max_body_bytes: Annotated[
        int | None, typer.Option(min=1024, help="Largest request body (default 1 MiB).")
    ] = None,
    max_messages: Annotated[
        int | None, typer.Option(min=1, help="Messages per request (default 64).")
    ] = None,
    max_tokens_cap: Annotated[
        int | None, typer.Option(min=1, help="Largest max_tokens a client may ask (default 2048).")
    ] = None,
    max_experts_cap: Annotated[
        int | None, typer.Option(min=1, help="Expert calls per request (default 8).")
    ] = None,
    budget_cap_usd: Annotated[
        float | None, typer.Option(min=0.0, help="USD per request (default none).")
    ] = None,
    header_timeout: Annotated[
        float | None,
        typer.Option(min=0.1, help="Seconds a client has to send a request head (default 10)."),
    ] = None,
    keep_alive: Annotated[
        int | None, typer.Option(min=1, help="Idle keep-alive seconds (default 5).")
    ] = None,
    body_timeout: Annotated[
        float | None,
        typer.Option(min=0.1, help="Seconds a client has to send a body; 408 after (default 30)."),
    ] = None,
    max_connections: Annotated[
        int | None,
        typer.Option(min=1, help="Open connections, kept under the fd limit (default 2048)."),
    ] = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host",
            help="A Host name to answer for besides the bound address and localhost; "
            "repeatable, '*' for any. A foreign Host is 421 (DNS rebinding).",
        ),
    ] = None,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--cors-origin",
            help="A browser origin allowed to call the API (CORS); repeatable. Default: "
            "none, a foreign Origin is 403.",
        ),
    ] = None,
    lazy: Annotated[
        bool,
        typer.Option(
            "--lazy",
            help="Load local models on first use instead of at startup (/ready is then "
            "200 at once; a first call waits for its model's load).",
        ),
    ] = False,
    no_console: Annotated[
        bool,
        typer.Option("--no-console", help="Do not serve the web console at /console."),
    ] = False,
    cache_ttl: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="Replay the answer of a deterministic request (temperature 0 or a seed) "
            "asked again within this many seconds, at no cost (default: no cache).",
        ),
    ] = None,
    cache_shared: Annotated[
        bool,
        typer.Option("--cache-shared", help="Let cached answers reach other API keys."),
    ] = False,
    otel: Annotated[
        bool,
        typer.Option(
            "--otel",
            help="Export each request's spans over OTLP/HTTP to $OTEL_EXPORTER_OTLP_ENDPOINT "
            "(needs signoria[otel]).",
        ),
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Server processes sharing the port (each loads its own local models; "
            "records, keys and budgets are shared through the database).",
        ),
    ] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve pipelines and experts over an OpenAI-compatible REST API.

    API keys come from $SIGNORIA_API_KEYS (comma-separated), never from a flag.
    """
    # Not from a flag because a command line is visible to every user of the machine.
    from signoria.orchestrator.server.settings import ServerConfigError, ServerSettings

    caps = {
        "max_concurrent": max_concurrent,
        "max_body_bytes": max_body_bytes,
        "max_messages": max_messages,
        "max_tokens_cap": max_tokens_cap,
        "max_experts_cap": max_experts_cap,
        "budget_cap_usd": budget_cap_usd,
        "header_timeout_s": header_timeout,
        "keep_alive_s": keep_alive,
        "body_timeout_s": body_timeout,
        "max_connections": max_connections,
        "allowed_hosts": tuple(allowed_host) if allowed_host else None,
        "cors_origins": tuple(cors_origin) if cors_origin else None,
    }
    settings = ServerSettings.from_env(
        {
            "host": host,
            "port": port,
            "record": not no_record,
            "db_url": db,
            "config_source": None if config is None else str(config),
            "lazy": lazy,
            "console": not no_console,
            "cache_ttl_s": cache_ttl,
            "cache_shared": cache_shared,
            **{key: value for key, value in caps.items() if value is not None},
        }
    )
    if not settings.record and (problem := settings.exposure_problem()):
        # Before any model loads: refusing should be instant.
        raise ServerConfigError(problem)

    if workers == 1:
        _serve_process(config, settings, otel, log_level)
        return
    from signoria.orchestrator.server.workers import bind, run_workers
    from signoria.orchestrator.storage import Store

    if settings.record:
        # Once, before the fork: a bad URL is one line, and the schema is migrated by one
        # process, not raced by N.
        Store.open(settings.db_url).close()
    sock = bind(settings.host, settings.port)
    code = run_workers(workers, lambda: _serve_process(config, settings, otel, log_level, sock))
    sock.close()
    if code:
        raise typer.Exit(code)


def _serve_process(
    config: Path | None,
    settings: ServerSettings,
    otel: bool,
    log_level: str,
    sock: socket.socket | None = None,
) -> None:
    """One server process: the models, the database, the app, then uvicorn."""
    from signoria.agents.backends.registry import preload_backends
    from signoria.orchestrator.sdk import Orchestrator
    from signoria.orchestrator.server.app import create_app
    from signoria.orchestrator.server.settings import ServerConfigError
    from signoria.orchestrator.server.transport import serve as serve_http
    from signoria.orchestrator.storage import Store

    # Also before any model loads: a database that cannot open is one line, not a failed
    # startup hook's traceback.
    store = Store.open(settings.db_url) if settings.record else None
    provider = None
    try:
        orchestrator = Orchestrator.from_config(config)
        if store is not None:
            _sync_keys(store, orchestrator.config.keys)
        elif orchestrator.config.keys:
            raise ServerConfigError("keys: declared keys need recording on (drop --no-record)")
        if otel:
            from signoria.orchestrator.server.tracing import otlp_provider

            provider = otlp_provider()
        app = create_app(orchestrator, settings, store, provider)
        preload_backends(spec.backend for spec in orchestrator.config.models.values())
        # Everything imported and built so far lives as long as the process. Left to the
        # collector, each full collection walks it all (torch, sklearn, the routers):
        # ~220 ms pauses of every in-flight request, the whole p99 at 16+ concurrent
        # requests (benchmarks/overhead.py). Frozen, it is never scanned again.
        gc.collect()
        gc.freeze()
        serve_http(app, settings, log_level=log_level, log_config=_log_config(), sock=sock)
    finally:
        if provider is not None:
            provider.shutdown()  # flushes the spans still batched
        if store is not None:
            store.close()


def _sync_keys(store: Store, declared: Mapping[str, KeyDeclaration]) -> None:
    """Bring the config's keys into the database (create_app then refuses an exposed bind
    without any key: environment, config or database)."""
    import os

    from signoria.orchestrator.server.settings import ServerConfigError
    from signoria.orchestrator.storage.keys import KeyStore

    secrets = {}
    for name, key in declared.items():
        secret = os.environ.get(key.env, "").strip()
        if not secret:
            raise ServerConfigError(f"keys.{name}.env: ${key.env} is not set")
        secrets[name] = (secret, key.limits)
    KeyStore(store).sync_declared(secrets)


def _log_config() -> dict[str, Any]:
    """uvicorn's logging plus Signoria's server logger on the same handler."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["signoria"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config
