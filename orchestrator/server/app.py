"""The OpenAI-compatible REST app over an `Orchestrator`.

Model ids: `signoria/<pipeline>` (or the bare pipeline name) runs a configured pipeline;
a raw expert name runs that one expert through a one-off single-expert pipeline. An
unknown id is a 404, never a silent fallback to a default: a client must not believe it
measured model A while B answered.

Requests run concurrently on the event loop (`Orchestrator.aask` is async; local models
queue per model inside the llama.cpp runtime), bounded by `max_concurrent` in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response, StreamingResponse

from signoria.agents.types import Message, ToolUse
from signoria.errors import SignoriaError
from signoria.orchestrator.limits import RequestLimits
from signoria.orchestrator.pipeline import PipelineFailed
from signoria.orchestrator.result import AskResult
from signoria.orchestrator.sdk import Orchestrator
from signoria.orchestrator.server.auth import api_key_dependency
from signoria.orchestrator.server.cache import CACHE_HEADER, ResponseCache
from signoria.orchestrator.server.catalog import Catalog, Target
from signoria.orchestrator.server.errors import (
    RATE_LIMIT,
    SERVER,
    ApiError,
    install_error_handlers,
    pipeline_error,
)
from signoria.orchestrator.server.feedback import add_feedback_route
from signoria.orchestrator.server.keys import KeyGate
from signoria.orchestrator.server.metrics import CONTENT_TYPE, ServerMetrics
from signoria.orchestrator.server.origin import install_browser_guards
from signoria.orchestrator.server.preload import Preloader
from signoria.orchestrator.server.recording import RECORDED_HEADER, Recorder
from signoria.orchestrator.server.requests import (
    read_chat_request,
    request_limits,
    to_messages,
    tool_use,
)
from signoria.orchestrator.server.responses import (
    apply_stops,
    chunk_events,
    completion,
    new_completion_id,
)
from signoria.orchestrator.server.schemas import (
    ChatCompletion,
    ChatCompletionRequest,
    ErrorResponse,
    Health,
    ModelList,
    ModelObject,
    RecordingHealth,
)
from signoria.orchestrator.server.settings import ServerConfigError, ServerSettings
from signoria.orchestrator.server.streaming import live_stream
from signoria.orchestrator.server.tracing import RequestTracer
from signoria.orchestrator.storage.keys import KeyStore
from signoria.registry import load_ref

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

    from signoria.orchestrator.storage import Store

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 404, 413, 422, 429, 500, 503, 504)
}


class InFlight:
    """A non-blocking cap on concurrent requests: above it a client gets 429 at once
    rather than queueing invisibly behind work it cannot see."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def enter(self) -> None:
        if self.count >= self.limit:
            raise ApiError(
                429,
                f"{self.count} requests in flight, the server's limit; retry shortly",
                type=RATE_LIMIT,
                code="rate_limit_exceeded",
                headers={"Retry-After": "1"},
            )
        self.count += 1

    def leave(self) -> None:
        self.count -= 1


# The web console is a view over records and eval reports, so it lives in the evals
# layer; the server finds it by name rather than importing upward.
CONSOLE = "signoria.evals.console:install"


@dataclass(frozen=True)
class ConsoleContext:
    """What the web console needs from the server that mounts it."""

    # The records' store once recording started (None: recording is off).
    store: Callable[[], Store | None]
    # The API's own key check (a bearer key, or the console's login cookie).
    require_key: Callable[..., Awaitable[str | None]]
    model_ids: Callable[[], list[str]]
    auth: Callable[[], Awaitable[bool]]


@dataclass
class Served:
    """Counters kept for the run record."""

    requests: int = 0
    failed: int = 0


async def _execute(
    orchestrator: Orchestrator,
    body: ChatCompletionRequest,
    target: Target,
    messages: Sequence[Message],
    limits: RequestLimits,
    uses: ToolUse | None,
) -> AskResult:
    # A raw expert id honours the client's sampling; a pipeline keeps its own (the SDK's rule).
    return await orchestrator.aask(
        messages,
        pipeline=target.name,
        limits=limits,
        temperature=body.temperature,
        seed=body.seed,
        tool_use=uses,
    )


def _tagged(error: ApiError, headers: dict[str, str]) -> ApiError:
    """A recorded failure carries its request id, so a client can find its record. The
    error shares `headers`, so a failed record write still marks it (see `run`)."""
    headers.update(error.headers)
    error.headers = headers
    return error


def create_app(
    orchestrator: Orchestrator,
    settings: ServerSettings,
    store: Store | None = None,
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """The app for `orchestrator`. It owns the orchestrator from here on and closes it at
    shutdown. Requests are recorded when `settings.record` is set (the store at
    `settings.db_url` is opened at startup) or when an open `store` is passed in (the
    caller keeps ownership of it). With an OpenTelemetry `tracer_provider`, each request
    is also written as a span tree (tracing.py; the caller keeps the provider)."""
    problem = settings.exposure_problem(db_keys=store is not None and KeyStore(store).any_keys())
    if problem:
        raise ServerConfigError(problem)
    keys = KeyGate()
    metrics = ServerMetrics(orchestrator.health.states)
    tracer = None if tracer_provider is None else RequestTracer(tracer_provider)
    cache = ResponseCache(orchestrator, settings.cache_ttl_s, settings.cache_shared)
    catalog = Catalog(orchestrator)
    gate = InFlight(settings.max_concurrent)
    served = Served()
    recorder: Recorder | None = None
    preloader = Preloader(orchestrator.pool, lazy=settings.lazy)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal recorder
        preloader.start()
        if settings.record or store is not None:
            run_config = {
                "server": settings.summary(),
                "default_pipeline": orchestrator.config.default_pipeline,
                "pipelines": sorted(orchestrator.pipelines),
                "experts": sorted(catalog.expert_names()),
            }
            recorder = await Recorder.start(store, settings.db_url, run_config)
            keys.bind(KeyStore(recorder.store))
            cache.bind(recorder.store)
        try:
            yield
        finally:
            await preloader.stop()
            if recorder is not None:
                await recorder.finish({"requests": served.requests, "failed": served.failed})
                await recorder.close()
            await orchestrator.aclose()

    app = FastAPI(
        title="Signoria",
        version="0.1.0",
        summary="OpenAI-compatible chat completions over Signoria pipelines and experts.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_browser_guards(app, settings)
    require_key = api_key_dependency(settings.api_keys, keys)
    # The same callable as an endpoint parameter is resolved once per request (FastAPI
    # caches it), and hands the endpoint the caller's key fingerprint.
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_key)])

    async def run(
        completion_id: str,
        body: ChatCompletionRequest,
        target: Target,
        messages: list[Message],
        limits: RequestLimits,
        uses: ToolUse | None,
        client: str | None,
    ) -> tuple[AskResult, dict[str, str]]:
        """The result (computed, or replayed from the cache) and the response headers;
        `X-Signoria-Recorded: false` is added when the record write failed, on an answer
        or an error alike."""
        stops = body.stops()
        query = next(m.content for m in reversed(messages) if m.role == "user")
        result: AskResult | None = None
        error: str | None = None
        status = 500
        headers = {"X-Request-Id": completion_id}
        served.requests += 1
        metrics.in_flight.inc()
        key = cache.key(body, target.kind, target.name, client)
        try:
            result = None if key is None else await cache.lookup(key)
            if result is None:
                result = await _execute(orchestrator, body, target, messages, limits, uses)
                # The record keeps the answer the client got; the trace keeps the full text.
                result = result.model_copy(update={"answer": apply_stops(result.answer, stops)})
                if key is not None:
                    await cache.save(key, completion_id, result)
            if key is not None:
                headers[CACHE_HEADER] = "miss" if result.cached_from is None else "hit"
                metrics.cache.labels(headers[CACHE_HEADER]).inc()
            status = 200
            return result, headers
        except PipelineFailed as exc:
            result, error = exc.result, str(exc)
            failure = pipeline_error(exc)
            status = failure.status
            raise _tagged(failure, headers) from None
        except SignoriaError as exc:
            error, status = str(exc), 503
            unavailable = ApiError(503, error, type=SERVER, code="expert_unavailable")
            raise _tagged(unavailable, headers) from None
        except asyncio.CancelledError:
            error, status = "cancelled before the pipeline finished", 499
            raise
        except Exception as exc:  # a bug: recorded here, a generic 500 for the client
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            metrics.in_flight.dec()
            metrics.observe(body.model, status, result)
            if tracer is not None:
                tracer.export(completion_id, body.model, status, result, error)
            if error is not None:
                served.failed += 1
            if recorder is not None:
                if await recorder.record(completion_id, query, result, error, client):
                    keys.note(client, result)  # its spend counts before the next read
                else:
                    headers[RECORDED_HEADER] = "false"

    @v1.post(
        "/chat/completions",
        response_model=ChatCompletion,
        responses=_ERRORS,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/ChatCompletionRequest"}
                    }
                },
            }
        },
    )
    # `client` is a default, not Annotated: a string annotation cannot name a closure's
    # dependency (this module has postponed annotations).
    async def chat_completions(
        request: Request, client: str | None = Depends(require_key)
    ) -> Response:
        """An OpenAI chat completion; with `stream: true`, server-sent chunk events that
        start once the pipeline has its answer."""
        body = await read_chat_request(request, settings)
        messages = to_messages(body, settings)
        limits = request_limits(body, settings)
        target = catalog.require(body.model)
        uses = tool_use(body)
        if uses is not None:
            catalog.require_tool_use(target, "tools" if body.tools else "response_format")
        try:
            # The in-flight cap first: a request it refuses never counts against the
            # key's requests per minute (an admission is written only for one that runs).
            gate.enter()
            try:
                limits = await keys.admit(client, target.kind, target.name, limits)
            except ApiError:
                gate.leave()
                raise
        except ApiError as refused:  # the key's limits or the in-flight cap
            metrics.observe(body.model, refused.status, None)
            raise
        completion_id = new_completion_id()

        async def work() -> tuple[AskResult, dict[str, str]]:
            try:
                return await run(completion_id, body, target, messages, limits, uses, client)
            finally:
                gate.leave()

        if body.stream and not body.stops() and not body.tools:
            # As the answer is written (stop sequences need the whole answer to cut it, a
            # tool call is only known once it is complete).
            return await live_stream(completion_id, body.model, work)
        result, headers = await work()
        answer = result.answer
        if body.stream:
            return StreamingResponse(
                chunk_events(completion_id, body.model, answer, result),
                media_type="text/event-stream",
                headers={**headers, "Cache-Control": "no-cache"},
            )
        payload = completion(completion_id, body.model, answer, result)
        return JSONResponse(payload.model_dump(mode="json"), headers=headers)

    @v1.get("/models", response_model=ModelList, responses=_ERRORS)
    async def list_models(client: str | None = Depends(require_key)) -> ModelList:
        """Every pipeline as `signoria/<pipeline>` and every expert under its own name
        (for a key limited to some of them, those)."""
        record = None if client is None else await keys.find(client)
        models = catalog.models()
        if record is not None:
            models = [m for m in models if record.limits.allows(*catalog.kind_and_name(m.id))]
        return ModelList(data=models)

    @v1.get("/models/{model_id:path}", response_model=ModelObject, responses=_ERRORS)
    async def get_model(model_id: str) -> ModelObject:
        return catalog.model(model_id, catalog.require(model_id))

    add_feedback_route(
        v1, lambda: None if recorder is None else recorder.store, require_key, _ERRORS
    )

    @app.get("/metrics", dependencies=[Depends(require_key)], response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus metrics (text format), behind the same keys as the API."""
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/health", response_model=Health, response_model_exclude_none=True)
    async def health() -> Health:
        """Liveness, without authentication: load balancers and test harnesses poll it.
        When recording, also how many answered requests could not be recorded."""
        counts = None
        if recorder is not None:
            counts = RecordingHealth(
                run_id=recorder.run_id, recorded=recorder.recorded, unrecorded=recorder.unrecorded
            )
        return Health(ready=preloader.ready, models=preloader.health(), recording=counts)

    @app.get("/ready", response_model=Health, response_model_exclude_none=True)
    async def ready() -> JSONResponse:
        """Readiness, without authentication: 503 until the startup load of local models
        is done (a load balancer's readiness probe), then 200; the body is `/health`'s."""
        body = await health()
        status = 200 if body.ready else 503
        return JSONResponse(body.model_dump(exclude_none=True), status_code=status)

    app.include_router(v1)
    if settings.console:

        async def auth_on() -> bool:
            return settings.auth_required or await keys.any_keys()

        context = ConsoleContext(
            store=lambda: None if recorder is None else recorder.store,
            require_key=require_key,
            model_ids=lambda: [m.id for m in catalog.models()],
            auth=auth_on,
        )
        load_ref(CONSOLE, what="the web console")(app, context)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's generated spec plus the chat request schema, which FastAPI cannot infer
    because the endpoint reads its body itself (to check auth and size first)."""
    if app.openapi_schema is None:
        spec = get_openapi(
            title=app.title, version=app.version, summary=app.summary, routes=app.routes
        )
        schema = ChatCompletionRequest.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        components = spec.setdefault("components", {}).setdefault("schemas", {})
        components.update(schema.pop("$defs", {}))
        components["ChatCompletionRequest"] = schema
        app.openapi_schema = spec
    return app.openapi_schema
