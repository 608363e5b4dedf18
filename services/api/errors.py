"""HTTP errors of the read routes, in the one error shape (see ``core/problems.py``)."""

from __future__ import annotations

from fastapi import HTTPException

from services.core.readmodels import cursors


def invalid_query(param: str, problem: str, message: str | None = None) -> HTTPException:
    """422 naming the query parameter ``param`` and what is wrong with it."""
    return HTTPException(
        422,
        detail={"code": "invalid_query", "message": message or f"{param}: {problem}",
                "fields": [{"path": f"query.{param}", "problem": problem}]},
    )  # fmt: skip


def not_found(code: str, message: str) -> HTTPException:
    return HTTPException(404, detail={"code": code, "message": message})


def int_cursor(cursor: str | None) -> int | None:
    """The one integer a single-key list cursor holds (None for the first page); 422 naming
    ``query.cursor`` when it is not one of that list's cursors."""
    if cursor is None:
        return None
    try:
        (value,) = cursors.decode(cursor)
    except (cursors.BadCursor, ValueError) as exc:
        raise invalid_query("cursor", "not a cursor of this list") from exc
    if not cursors.is_int64(value):
        raise invalid_query("cursor", "not a cursor of this list")
    return int(value)
