"""The console's ASGI application (Starlette): its pages, its JSON API and its alerts feed.

=====================================  =============================================
``GET /``                              the console (one page; its script and style
                                       from ``/static``, nothing from elsewhere)
``GET /api/models``                    every model (:func:`streams.ui.data.overview`)
``GET /api/models/{name}?points=N``    one model and its timeline
``GET /api/alerts?model=&kind=&count=``  the newest alerts, filtered
``GET /api/alerts/stream?model=&kind=``  the live feed (server-sent events)
``GET /report/{name}``                 the model's full HTML report, made now
``GET /favicon.ico``                   the icon (asked for by the report's page)
=====================================  =============================================

The console is read-only: any other method than GET and HEAD is refused (405). With a token
(``DRIFTLINE_UI_TOKEN``) every request must carry it: ``?token=`` once (the answer sets a
cookie and redirects to the same page without it, so it leaves the address bar), the cookie,
or ``Authorization: Bearer``. Every answer forbids loading anything from another origin
(``Content-Security-Policy``): the page works offline and a stray external asset is an error.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import redis
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import URL, MutableHeaders
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models.errors import ModelError
from models.registry import Registry
from models.report import LiveHistory, VersionChange, render_report
from monitoring.findings import FINDING_KINDS
from streams.adapters.redis_client import AsyncClient, SyncClient
from streams.adapters.redis_history import read_slices
from streams.errors import StreamsError
from streams.ui import data
from streams.ui.feed import alert_events, start_after

STATIC = Path(__file__).parent / "static"
COOKIE = "driftline_ui_token"
POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)
READS = ("GET", "HEAD")
T = TypeVar("T")


@dataclass(frozen=True)
class Console:
    """What the application reads: the registry, a blocking Redis client for the requests
    (run in threads), an asyncio one for the feeds, and how many history points to keep."""

    registry: Registry
    client: SyncClient
    feed: AsyncClient
    max_points: int


class Guard:
    """Read-only, token-checking, no-foreign-origin wrapper around the application."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token or None

    def _given(self, request: Request) -> tuple[str | None, bool]:
        """The token the request carries, and whether it came in the query."""
        if "token" in request.query_params:
            return request.query_params["token"], True
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip(), False
        return request.cookies.get(COOKIE), False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        answer: Response | None = None
        if request.method not in READS:
            answer = PlainTextResponse(
                "the console is read-only", 405, headers={"Allow": ", ".join(READS)}
            )
        elif self.token is not None:
            given, in_query = self._given(request)
            if given is None or not hmac.compare_digest(given.encode(), self.token.encode()):
                answer = PlainTextResponse(
                    "this console needs its token (DRIFTLINE_UI_TOKEN): open it once as "
                    "/?token=<token>, or send Authorization: Bearer <token>",
                    401,
                )
            elif in_query:  # into a cookie, out of the address bar and the history
                answer = RedirectResponse(_without_token(request.url), 303)
                answer.set_cookie(COOKIE, given, httponly=True, samesite="strict", path="/")

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = POLICY
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "no-referrer"
            await send(message)

        await (answer or self.app)(scope, receive, secured)


def _without_token(url: URL) -> str:
    bare = url.remove_query_params("token")
    return bare.path + (f"?{bare.query}" if bare.query else "")


def _optional(request: Request, name: str) -> str | None:
    return request.query_params.get(name) or None


def _count(request: Request, name: str, default: int | None, most: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not 0 < int(raw) <= most:
        raise ValueError(f"{name} must be a whole number from 1 to {most}, got {raw!r}")
    return int(raw)


def build_app(console: Console, token: str | None = None) -> ASGIApp:
    """The console's application, read-only, behind ``token`` when one is given."""

    async def read(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | Response:
        try:
            return await run_in_threadpool(fn, *args, **kwargs)
        except ModelError as exc:
            return JSONResponse({"error": str(exc)}, 404)
        except (redis.RedisError, OSError, StreamsError) as exc:
            return JSONResponse({"error": f"Redis did not answer: {exc}"}, 503)

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def icon(request: Request) -> Response:
        # asked for by every page without an icon of its own (the report's)
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    async def models(request: Request) -> Response:
        found = await read(data.overview, console.registry, console.client)
        return found if isinstance(found, Response) else JSONResponse(found)

    async def model(request: Request) -> Response:
        try:
            points = _count(request, "points", console.max_points, console.max_points)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        name = request.path_params["name"]
        found = await read(data.model_detail, console.registry, console.client, name, points)
        return found if isinstance(found, Response) else JSONResponse(found)

    async def alerts(request: Request) -> Response:
        try:
            count = _count(request, "count", 50, data.MAX_ALERTS) or 50
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        found = await read(
            data.recent_alerts,
            console.client,
            model=_optional(request, "model"),
            kind=_optional(request, "kind"),
            count=count,
        )
        return found if isinstance(found, Response) else JSONResponse(found)

    async def stream(request: Request) -> Response:
        last = request.headers.get("last-event-id") or _optional(request, "after")
        try:
            after = await start_after(console.feed, last)
        except (redis.RedisError, OSError) as exc:
            return JSONResponse({"error": f"Redis did not answer: {exc}"}, 503)
        events = alert_events(
            console.feed, after, model=_optional(request, "model"), kind=_optional(request, "kind")
        )
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)

    async def report(request: Request) -> Response:
        page = await read(_report_page, console, request.path_params["name"])
        return HTMLResponse(page) if isinstance(page, str) else page

    routes = [
        Route("/", index),
        Route("/favicon.ico", icon),
        Route("/api/models", models),
        Route("/api/models/{name}", model),
        Route("/api/alerts", alerts),
        Route("/api/alerts/stream", stream),
        Route("/report/{name}", report),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Guard(Starlette(routes=routes), token)


def _report_page(console: Console, name: str) -> str:
    """``driftline report``'s page of the champion (else the latest version), live."""
    registry = console.registry
    _, version = registry.resolve(name)
    detail = data.model_detail(registry, console.client, name, None)
    champion = detail["aliases"].get("champion")
    history = LiveHistory(
        points=detail["points"],
        alerts=detail["alerts"],
        changes=[VersionChange(**c) for c in detail["changes"]],
        max_points=console.max_points,
        alert_kinds=FINDING_KINDS,
    )
    slices = read_slices(console.client, name)
    card = registry.card(f"{name}@{version}")
    return render_report([card], history, champion=champion, notes=[], slices=slices)


__all__ = ["COOKIE", "POLICY", "Console", "Guard", "build_app"]
