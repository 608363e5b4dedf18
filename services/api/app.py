"""The FastAPI application factory: routes, error shape, body limit, NUL refusal, OpenAPI."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from prometheus_client.registry import Collector
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api import openapi
from services.api.auth import (
    NEEDS_ADMIN,
    NEEDS_READ,
    NEEDS_WRITE,
    Authenticate,
)
from services.api.disclosure import RESTRICTED_HEADER, Disclose
from services.api.middleware import REQUEST_ID_HEADER, RequestIds, RequestTimer
from services.api.routes import (
    accounts,
    admin,
    contacts,
    employees,
    health,
    keys,
    leaders,
    metrics,
    needs,
    rebuilds,
    reports,
    schemas,
    timeline,
)
from services.core.access import Grant
from services.core.consistency import STALE_HEADER, TOKEN_HEADER, LogEnds
from services.core.container import Container
from services.core.metrics.collectors import PipelineCollector
from services.core.metrics.rebuilds import RebuildCollector
from services.core.ports import StoreUnavailable
from services.core.problems import error_body

log = logging.getLogger(__name__)

DESCRIPTION = """Every customer touchpoint — from sales, marketing, support, customer success
and leadership — as an immutable event; every account's timeline in one place.

Errors always have the shape `{"error": {"code", "message", "fields"?: [{"path", "problem",
"kind"?}], "request_id"?}}` (`ErrorBody`): every operation lists the ones it can give.
"""


class _BodyTooLarge(Exception):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"request body is larger than {max_bytes} bytes")
        self.max_bytes = max_bytes


class BodyLimit:
    """Answer 413 for bodies over ``max_bytes`` before anything parses them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        await too_large(self.max_bytes)({"type": "http"}, _no_receive, send)


def too_large(max_bytes: int) -> JSONResponse:
    """413: the body is over ``max_bytes`` (``BodyLimit``; ``_http_error`` when a route read
    the body and FastAPI wrapped the limit's exception in its own 400)."""
    message = f"request body is larger than {max_bytes} bytes"
    return JSONResponse(error_body("body_too_large", message), status_code=413)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


NUL_PROBLEM = "must not contain the NUL character U+0000 (%00)"


def nul_fields(scope: Scope) -> list[dict[str, str]]:
    """``[{"path": "path" | "query.<name>", "problem"}]`` for each part of the request line
    that holds U+0000: the percent-decoded path, then each query parameter (name or value)."""
    fields = [{"path": "path", "problem": NUL_PROBLEM}] if "\x00" in scope["path"] else []
    # Decoded exactly as the routes will see them (Starlette's own query parsing).
    names = dict.fromkeys(
        name for name, value in QueryParams(scope["query_string"]).multi_items()
        if "\x00" in name or "\x00" in value
    )  # fmt: skip
    return fields + [{"path": f"query.{name}", "problem": NUL_PROBLEM} for name in names]


class RefuseNul:
    """Answer 422 for a request whose path or query parameters contain U+0000, on every route.

    No identifier or filter of this API can legitimately hold NUL, and PostgreSQL refuses it in
    a text parameter (a 500 there, while SQLite quietly compares it), so it is refused before
    routing, the same on every backend. Bodies are the event contract's business
    (``core.events.parse_event`` refuses NUL in them).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fields = nul_fields(scope) if scope["type"] == "http" else []
        if not fields:
            await self.app(scope, receive, send)
            return
        message = "the request must not contain the NUL character U+0000: " + ", ".join(
            f["path"] for f in fields
        )
        response = JSONResponse(error_body("invalid_request", message, fields), 422)
        await response(scope, receive, send)


MALFORMED_JSON = "malformed_json"


def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.__cause__, _BodyTooLarge):  # a body without Content-Length, over it
        return too_large(exc.__cause__.max_bytes)
    if exc.status_code == 400 and not isinstance(exc.detail, dict):
        # FastAPI's answer to a body it could not read as text: the same as ingest's.
        why = "not UTF-8 text" if isinstance(exc.__cause__, UnicodeDecodeError) else "unreadable"
        return JSONResponse(error_body(MALFORMED_JSON, f"body is not valid JSON: {why}"), 400)
    if isinstance(exc.detail, dict):
        body = error_body(**exc.detail)
    else:
        body = error_body(f"http_{exc.status_code}", str(exc.detail))
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    broken = next((e for e in exc.errors() if e.get("type") == "json_invalid"), None)
    if broken is not None:  # not JSON at all: 400, as ingest answers it (a 422 is a bad value)
        at = broken["loc"][-1] if broken.get("loc") else "?"
        return JSONResponse(
            error_body(MALFORMED_JSON, f"body is not valid JSON (at character {at})"), 400
        )
    fields = [
        {"path": ".".join(str(p) for p in err["loc"]), "problem": err["msg"]}
        for err in exc.errors()
    ]
    return JSONResponse(error_body("invalid_request", "the request is not valid", fields), 422)


def _store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # The cause names hosts, ports and users: the log has it, the answer only the request id.
    request_id = getattr(request.state, "request_id", None)
    log.warning("database unavailable: %s", exc, extra={"request_id": request_id})
    body = error_body("store_unavailable", "the database is unavailable; retry",
                      request_id=request_id)  # fmt: skip
    return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Starlette answers this outside every middleware, after RequestIds let go of the id.
    request_id = getattr(request.state, "request_id", None)
    log.exception("unhandled error", exc_info=exc, extra={"request_id": request_id})
    headers = {REQUEST_ID_HEADER: request_id} if request_id else None
    body = error_body("internal_error", "unexpected server error", request_id=request_id)
    return JSONResponse(body, 500, headers)


Lifecycle = Callable[[], None]


def create_app(
    container: Container,
    extra_routers: Sequence[Any] = (),
    on_startup: Sequence[Lifecycle] = (),
    on_shutdown: Sequence[Lifecycle] = (),
    *,
    serve_queries: bool = True,
    metric_collectors: Sequence[Collector] = (),
) -> FastAPI:
    """Build the HTTP app; nothing connects until the lifespan starts.

    ``extra_routers`` (the ingest router) are mounted first; ``serve_queries=False`` leaves out
    the timeline and event routes (an ingest-only process still has health, schemas and
    metrics). ``/metrics`` is served by every app; ``metric_collectors`` are read at each scrape
    beside the pipeline's own (``PipelineCollector``): the place for more scrape-time gauges.
    Every response carries ``X-Request-Id``.
    """

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        for start in on_startup:
            start()
        try:
            yield
        finally:
            for stop in on_shutdown:
                stop()

    app = FastAPI(title="OneVoice", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.container = container
    app.state.log_ends = LogEnds(lambda: container.log.end_offsets(container.settings.topic))
    app.state.metric_collectors = [
        PipelineCollector(container),
        RebuildCollector(container),
        *metric_collectors,
    ]
    reads = (timeline.router, accounts.router, reports.router, needs.router, employees.router,
             leaders.router) if serve_queries else ()  # fmt: skip
    admins = (admin.router, rebuilds.router, keys.router, contacts.router) if serve_queries \
        else ()  # fmt: skip
    for routers, needs_scope in ((extra_routers, [NEEDS_WRITE]), (reads, [NEEDS_READ]),
                                 (admins, [NEEDS_ADMIN])):  # fmt: skip
        for router in routers:
            app.include_router(router, dependencies=needs_scope)
    for router in (schemas.router, health.router, metrics.router):  # metrics: any key
        app.include_router(router)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StoreUnavailable, _store_unavailable)
    app.add_exception_handler(Exception, _unexpected)
    app.add_middleware(BodyLimit, max_bytes=container.settings.max_body_bytes)
    app.add_middleware(Disclose, lookup=container.vault.keys)  # inside Authenticate: the grant
    app.add_middleware(RefuseNul)  # before any parsing or routing
    settings = container.settings
    disabled = Grant.everything("auth-disabled")
    app.add_middleware(Authenticate, keys=container.keys,
                       disabled=disabled if settings.auth == "disabled" else None)  # fmt: skip
    if settings.cors_origin_list:  # none unless configured: a web page may not post events
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origin_list),
                           allow_methods=["GET", "POST", "PUT", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "X-Request-Id",
                                          TOKEN_HEADER],
                           expose_headers=[TOKEN_HEADER, STALE_HEADER, REQUEST_ID_HEADER,
                                           RESTRICTED_HEADER])  # fmt: skip
    app.add_middleware(RequestTimer)  # times every answer, refusals included
    app.add_middleware(RequestIds)  # added last: the outermost, so every answer carries the id
    app.openapi = openapi.build(app)  # type: ignore[method-assign]
    return app
