"""What an answer may show its reader: sealed contacts opened or marked, sensitive values
hidden (``Disclose``, and ``disclosed`` for answers written as CSV).

Every JSON answer of a reading route passes through it on its way out:
- for a key with ``read_sensitive``: each sealed contact (``privacy``) is opened with its key,
  or reads ``[erased]`` when the key was destroyed;
- for any other key: each sealed contact's fields read ``[restricted]`` (nothing is opened),
  and every other sensitive value is hidden (``access.sensitive``); ``X-OneVoice-Restricted:
  true`` says so.
Not the admin routes: an operator re-driving a parked record needs it as the log holds it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.core.access import Grant
from services.core.access.sensitive import RESTRICTED, restrict
from services.core.ports import StoreUnavailable
from services.core.privacy.reveal import KeyLookup, reveal, reveal_json
from services.core.problems import error_body

log = logging.getLogger(__name__)

RESTRICTED_HEADER = "X-OneVoice-Restricted"
_SEALED = b'"sealed"'
_LARGE = 64 * 1024  # bytes: rewritten off the event loop


def disclosed(value: Any, grant: Grant, lookup: KeyLookup) -> tuple[Any, bool]:
    """``value`` as ``grant`` may see it (see the module docstring); whether anything was
    hidden from it. Raises ``StoreUnavailable`` when the keys cannot be read."""
    if grant.read_sensitive:
        return reveal(value, lookup)[0], False
    value, marked = reveal(value, None, RESTRICTED)
    value, hidden = restrict(value)
    return value, marked or hidden


class Disclose:
    """The middleware: rewrites a reading route's JSON answer (``disclosed``)."""

    def __init__(self, app: ASGIApp, lookup: KeyLookup) -> None:
        self.app = app
        self.lookup = lookup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        grant = scope.get("state", {}).get("grant") if scope["type"] == "http" else None
        if grant is None or not grant.read or scope["path"].startswith("/v1/admin/"):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def holding_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                if start is not None:  # anything but a body: pass on what was held
                    await send(start)
                    start = None
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            held, start = start, None
            await self._send(scope, receive, held, b"".join(chunks), send, grant)

        await self.app(scope, receive, holding_send)

    async def _send(self, scope: Scope, receive: Receive, start: Message, body: bytes,
                    send: Send, grant: Grant) -> None:  # fmt: skip
        headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
        media = next((v for k, v in headers if k == b"content-type"), b"").split(b";")[0]
        if b"json" in media.lower() and body and (not grant.read_sensitive or _SEALED in body):
            try:
                if grant.read_sensitive or len(body) > _LARGE:  # reads keys, or is large
                    body, changed = await run_in_threadpool(self._rewritten, body, grant)
                else:
                    body, changed = self._rewritten(body, grant)
            except StoreUnavailable:
                log.warning("contact keys unreadable: the database is unavailable",
                            exc_info=True)  # fmt: skip
                answer = error_body(
                    "store_unavailable",
                    "the database is unavailable; retry",
                    request_id=scope.get("state", {}).get("request_id"),
                )
                await JSONResponse(answer, 503, {"Retry-After": "1"})(scope, receive, send)
                return
            if changed:
                headers.append((RESTRICTED_HEADER.lower().encode(), b"true"))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    def _rewritten(self, body: bytes, grant: Grant) -> tuple[bytes, bool]:
        if grant.read_sensitive:
            return reveal_json(body, self.lookup) or body, False
        value, changed = disclosed(json.loads(body), grant, self.lookup)
        return (_dumped(value), True) if changed else (body, False)


def _dumped(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
