"""The one shape of every error body the HTTP services return.

``{"error": {"code": ..., "message": ..., "fields": [{"path": ..., "problem": ...}],
"request_id": ...}}``: ``code`` is stable for programs, ``message`` is for people, ``fields``
names each bad input, ``request_id`` (while a request is handled) finds its log lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.core.logs import REQUEST_ID


def error_body(
    code: str, message: str, fields: Sequence[dict[str, str]] = (), **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = list(fields)
    request_id = REQUEST_ID.get()
    if request_id is not None:
        body["request_id"] = request_id
    body.update({k: v for k, v in extra.items() if v is not None or k != "request_id"})
    return {"error": body}
