"""Every request's key (``Authenticate``) and the scope each route needs (``require``).

``Authenticate`` answers 401 before routing for a request without a known, active key, except
on ``OPEN_PATHS`` (the health probes and the API's own description, which hold no data); it
leaves the key's ``Grant`` in ``request.state.grant``. Routers then need a scope: ``read``,
``admin``, or ``write`` (any department; each event's department and type are checked by
ingest). With ``ONEVOICE_AUTH=disabled`` every request holds every scope.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from services.core.access import Grant, bearer
from services.core.access.store import KeyRing
from services.core.ports import StoreUnavailable
from services.core.problems import error_body

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json", "/docs",
                        "/docs/oauth2-redirect", "/redoc", "/v1/schemas"})  # fmt: skip
_AUTHORIZATION = b"authorization"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="onevoice"'}


class Authenticate:
    """401 without a valid key (see the module docstring). ``disabled`` (``ONEVOICE_AUTH=
    disabled``): every request holds that grant. Without ``keys`` and not disabled, every
    request is refused (closed, not open, when the wiring is incomplete)."""

    def __init__(self, app: ASGIApp, keys: KeyRing | None, disabled: Grant | None) -> None:
        self.app = app
        self.keys = keys
        self.disabled = disabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        if self.disabled is not None:
            scope.setdefault("state", {})["grant"] = self.disabled
            await self.app(scope, receive, send)
            return
        if self.keys is None:
            await _refuse(scope, receive, send, "this process has no key store")
            return
        header = next((v for k, v in scope["headers"] if k == _AUTHORIZATION), None)
        secret = bearer(None if header is None else header.decode("latin-1"))
        if secret is None:
            await _refuse(scope, receive, send, "missing key: send the header"
                          " 'Authorization: Bearer <key>' (README, Security)")  # fmt: skip
            return
        try:
            grant = self.keys.remembered(secret)
            if grant is False:
                grant = await run_in_threadpool(self.keys.grant, secret)
        except StoreUnavailable:
            log.warning("key lookup failed: the database is unavailable", exc_info=True)
            body = error_body("store_unavailable", "the database is unavailable; retry",
                              request_id=scope.get("state", {}).get("request_id"))  # fmt: skip
            await JSONResponse(body, 503, {"Retry-After": "1"})(scope, receive, send)
            return
        if grant is None:
            await _refuse(scope, receive, send, "unknown or revoked key")
            return
        scope.setdefault("state", {})["grant"] = grant
        await self.app(scope, receive, send)


async def _refuse(scope: Scope, receive: Receive, send: Send, message: str) -> None:
    await JSONResponse(error_body("unauthenticated", message), 401, _CHALLENGE)(
        scope, receive, send)  # fmt: skip


def grant_of(request: Request) -> Grant:
    """The request's grant (set by ``Authenticate``)."""
    grant: Grant = request.state.grant
    return grant


def _needs(scope: str) -> Any:
    async def check(request: Request) -> None:
        grant = grant_of(request)
        held = {"read": grant.read, "admin": grant.admin, "write": grant.writes}[scope]
        if not held:
            raise HTTPException(403, detail={
                "code": "forbidden",
                "message": f"the key {grant.name!r} lacks the {scope!r} scope",
                "fields": [{"path": "header.Authorization",
                            "problem": f"needs a key with the {scope!r} scope"}]})  # fmt: skip

    return Depends(check)


NEEDS_READ = _needs("read")
NEEDS_ADMIN = _needs("admin")
NEEDS_WRITE = _needs("write")
