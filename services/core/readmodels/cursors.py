"""Keyset cursors: a page's last sort key as an opaque, URL-safe string.

``decode`` refuses anything this module did not produce (``BadCursor``); each read model then
checks the shape of the key it expects.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any


class BadCursor(ValueError):
    """The cursor was not produced by this API (or was altered)."""


INT64 = range(-(2**63), 2**63)


def encode(key: list[Any]) -> str:
    raw = json.dumps(key, ensure_ascii=False, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str, max_length: int = 4096) -> list[Any]:
    # 4096: room for the longest key a page can end on (a 256-character Korean name or id,
    # case-folded, as UTF-8 in base64), and a bound on what a client can make us parse.
    """The key list inside ``cursor``; ``BadCursor`` for anything else."""
    try:
        if len(cursor) > max_length:
            raise ValueError("too long")
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, RecursionError) as exc:
        raise BadCursor("cursor is not valid; use next_cursor from a previous page") from exc
    if not isinstance(value, list):
        raise BadCursor("cursor is not valid; use next_cursor from a previous page")
    return value


def is_int64(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value in INT64
