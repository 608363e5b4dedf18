"""HTTP errors of the read routes, in the one error shape (see ``core/problems.py``)."""

from __future__ import annotations

from fastapi import HTTPException


def invalid_query(param: str, problem: str, message: str | None = None) -> HTTPException:
    """422 naming the query parameter ``param`` and what is wrong with it."""
    return HTTPException(
        422,
        detail={"code": "invalid_query", "message": message or f"{param}: {problem}",
                "fields": [{"path": f"query.{param}", "problem": problem}]},
    )  # fmt: skip


def not_found(code: str, message: str) -> HTTPException:
    return HTTPException(404, detail={"code": code, "message": message})
