"""Middleware every route goes through: the request id and the request latency metric."""

from __future__ import annotations

import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.core.logs import REQUEST_ID
from services.core.metrics.definitions import (
    HTTP_REQUEST_DURATION,
    method_label,
    status_class,
)

REQUEST_ID_HEADER = "X-Request-Id"
_HEADER_KEY = REQUEST_ID_HEADER.lower().encode()
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id_of(scope: Scope) -> str:
    """The client's ``X-Request-Id`` when it is 1-128 characters of ``[A-Za-z0-9._:-]``,
    else a new uuid4 hex (an id with other characters could forge log lines or labels)."""
    for key, value in scope["headers"]:
        if key == _HEADER_KEY:
            text = value.decode("latin-1")
            return text if _SANE.fullmatch(text) else uuid.uuid4().hex
    return uuid.uuid4().hex


class RequestIds:
    """Give every HTTP request an id: ``REQUEST_ID`` holds it while the request is handled
    (every log line of the request carries it), ``request.state.request_id`` keeps it for the
    error handlers, and the response answers it in ``X-Request-Id``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != _HEADER_KEY]
                message["headers"] = [*headers, (_HEADER_KEY, request_id.encode())]
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)


def route_label(scope: Scope) -> str:
    """The matched route's template (``/v1/accounts/{account_id}/timeline``), or
    ``"unmatched"`` — never the raw path, whose ids would make a series per account."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) else "unmatched"


class RequestTimer:
    """Observe ``onevoice_http_request_duration_seconds{route,method,status}`` for every HTTP
    request, from its start to the end of its response (a request that raised counts as 5xx)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            HTTP_REQUEST_DURATION.labels(
                route_label(scope), method_label(scope["method"]), status_class(status)
            ).observe(time.perf_counter() - started)
