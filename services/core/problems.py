"""The one shape of every error body the HTTP services return.

``{"error": {"code": ..., "message": ..., "fields": [{"path": ..., "problem": ...}]}}``:
``code`` is stable for programs, ``message`` is for people, ``fields`` names each bad input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def error_body(
    code: str, message: str, fields: Sequence[dict[str, str]] = (), **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = list(fields)
    body.update(extra)
    return {"error": body}
