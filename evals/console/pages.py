"""The console's routes: each page checks the caller's key, reads the store, renders."""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from signoria.evals.console.views import request_view, share_over_time, spend_per_key
from signoria.evals.metrics import paired, run_metrics
from signoria.orchestrator.server.auth import KEY_COOKIE
from signoria.orchestrator.server.errors import ApiError
from signoria.orchestrator.storage.browse import (
    key_names,
    recent_requests,
    served_request,
)

if TYPE_CHECKING:
    from signoria.orchestrator.server.app import ConsoleContext

_HERE = Path(__file__).parent
PREFIX = "/console"
RECENT = 200


def console_templates() -> Jinja2Templates:
    """The pages' templates, autoescaped: queries and expert answers are untrusted text."""
    return Jinja2Templates(directory=_HERE / "templates")


class LoginRequired(Exception):
    """A page asked for without a valid key: the browser is sent to the login form."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


def _credentials(request: Request) -> HTTPAuthorizationCredentials | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return HTTPAuthorizationCredentials(scheme="Bearer", credentials=token.strip())


def install(app: FastAPI, ctx: ConsoleContext) -> None:
    """Mount the console at /console on `app`."""
    templates = console_templates()
    router = APIRouter(prefix=PREFIX, include_in_schema=False)

    async def viewer(request: Request) -> str | None:
        try:
            return await ctx.require_key(_credentials(request), request.cookies.get(KEY_COOKIE))
        except ApiError:
            raise LoginRequired(request.url.path) from None

    async def page(request: Request, name: str, **values: Any) -> HTMLResponse:
        await viewer(request)
        store = ctx.store()
        return templates.TemplateResponse(
            request,
            name,
            {"recording": store is not None, "auth": await ctx.auth(), **values},
        )

    @router.get("/", response_class=RedirectResponse)
    async def home() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/requests", status_code=303)

    @router.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request, next: str = f"{PREFIX}/requests") -> HTMLResponse:
        return templates.TemplateResponse(request, "login.html", {"next": next, "error": None})

    @router.post("/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        form = urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"))
        key = (form.get("key") or [""])[0].strip()
        target = (form.get("next") or [f"{PREFIX}/requests"])[0]
        if not target.startswith(PREFIX + "/"):
            target = f"{PREFIX}/requests"  # never a redirect off the console
        try:
            creds = HTTPAuthorizationCredentials(scheme="Bearer", credentials=key)
            await ctx.require_key(creds, None)
        except ApiError:
            values = {"next": target, "error": "That key is not valid here."}
            return templates.TemplateResponse(request, "login.html", values, status_code=401)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(KEY_COOKIE, key, httponly=True, samesite="strict", path="/")
        return response

    @router.get("/logout")
    async def logout() -> RedirectResponse:
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        response.delete_cookie(KEY_COOKIE, path="/")
        return response

    @router.get("/requests", response_class=HTMLResponse)
    async def requests_page(
        request: Request, pipeline: str = "", key: str = "", status: str = ""
    ) -> HTMLResponse:
        store = ctx.store()
        items, names, pipelines = [], {}, []
        if store is not None:
            names = key_names(store)
            by_label = {label: fp for fp, label in names.items()}
            failed = {"ok": False, "error": True}.get(status)
            items = recent_requests(
                store,
                pipeline=pipeline or None,
                client=by_label.get(key, key or None) if key else None,
                failed=failed,
                limit=RECENT,
            )
            pipelines = sorted(
                {i.pipeline for i in recent_requests(store, limit=1000) if i.pipeline}
            )
        views = [request_view(item, names) for item in items]
        return await page(
            request,
            "requests.html",
            views=views,
            pipelines=pipelines,
            keys=sorted(names.values()),
            chosen={"pipeline": pipeline, "key": key, "status": status},
        )

    @router.get("/requests/{request_id}", response_class=HTMLResponse)
    async def request_page(request: Request, request_id: str) -> HTMLResponse:
        store = ctx.store()
        item = None if store is None else served_request(store, request_id)
        view = None if item is None or store is None else request_view(item, key_names(store))
        response = await page(request, "request.html", view=view, request_id=request_id)
        if view is None:
            response.status_code = 404
        return response

    @router.get("/runs", response_class=HTMLResponse)
    async def runs_page(request: Request) -> HTMLResponse:
        store = ctx.store()
        rows: list[dict[str, Any]] = []
        if store is not None:
            for summary in store.run_summaries(kind="eval"):
                metrics = run_metrics(store.items(summary.run.id))
                rows.append({"run": summary.run, "m": metrics})
        points = [
            (r["run"].id[:12], r["m"]["cost_per_item"], r["m"]["accuracy"])
            for r in rows
            if r["m"]["cost_per_item"] is not None and r["m"]["accuracy"] is not None
        ]
        from signoria.evals.console import plots  # matplotlib: paid by this page only

        plot = plots.cost_quality(points) if points else None
        return await page(request, "runs.html", rows=rows, plot=plot)

    @router.get("/runs/{run_id}", response_class=HTMLResponse)
    async def run_page(request: Request, run_id: str) -> HTMLResponse:
        store = ctx.store()
        run = None if store is None else store.get_run(run_id)
        items = [] if run is None or store is None else store.items(run_id)
        metrics = run_metrics(items) if items else None
        response = await page(request, "run.html", run=run, items=items, m=metrics)
        if run is None:
            response.status_code = 404
        return response

    @router.get("/compare", response_class=HTMLResponse)
    async def compare_page(request: Request, a: str = "", b: str = "") -> HTMLResponse:
        store = ctx.store()
        runs = [] if store is None else [s.run for s in store.run_summaries(kind="eval")]
        pair = rows = None
        if store is not None and a and b:
            first, second = store.items(a), store.items(b)
            pair = paired(first, second)
            by_key = {i.item_key: i for i in first}
            rows = [(by_key[i.item_key], i) for i in second if i.item_key in by_key]
        return await page(request, "compare.html", runs=runs, a=a, b=b, pair=pair, rows=rows)

    @router.get("/routers", response_class=HTMLResponse)
    async def routers_page(request: Request) -> HTMLResponse:
        store = ctx.store()
        items = [] if store is None else recent_requests(store, limit=5000)
        names = {} if store is None else key_names(store)
        from signoria.evals.console import plots

        shares = share_over_time(items)
        charts = {s.pipeline: plots.share_over_time(s.buckets, s.shares) for s in shares}
        spend = spend_per_key(items, names)
        return await page(request, "routers.html", shares=shares, charts=charts, spend=spend)

    @router.get("/playground", response_class=HTMLResponse)
    async def playground_page(request: Request) -> HTMLResponse:
        return await page(request, "playground.html", models=ctx.model_ids())

    async def to_login(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        query = urllib.parse.urlencode({"next": exc.path})
        return RedirectResponse(f"{PREFIX}/login?{query}", status_code=303)

    app.add_exception_handler(LoginRequired, to_login)
    app.include_router(router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=_HERE / "static"), name="console-static")
