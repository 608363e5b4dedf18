"""The one shape of every error body the HTTP services return.

``{"error": {"code": ..., "message": ..., "fields": [{"path": ..., "problem": ...}],
"request_id": ...}}``: ``code`` is stable for programs, ``message`` is for people, ``fields``
names each bad input, ``request_id`` (while a request is handled) finds its log lines.
``ErrorBody`` is that shape for the API's description; a route documents the errors only it
gives with ``answers`` (``api.openapi`` adds those every operation of its kind can give).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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


class ErrorField(BaseModel):
    """One bad input."""

    model_config = ConfigDict(extra="allow")

    path: str = Field(description="Where: `occurred_at`, `payload.amount`, `query.limit`, "
                      "`header.Authorization`, `events[3].type`, ...")  # fmt: skip
    problem: str = Field(description="What is wrong with it.")
    kind: str | None = Field(
        default=None,
        description="For programs, when the contract names the rule: "
        "`too_far_ahead`, `fanout_too_large`, `server_only`, a validation error's type, ...",
    )


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")  # some errors say more (e.g. a refused batch item)

    code: str = Field(description="Stable, for programs: `invalid_event`, `account_not_found`, "
                      "`unauthenticated`, `forbidden`, `store_unavailable`, ...")  # fmt: skip
    message: str = Field(description="For people.")
    fields: list[ErrorField] | None = Field(
        default=None, description="Each bad input, when the error is about inputs."
    )
    request_id: str | None = Field(
        default=None, description="The request's `X-Request-Id`: finds its log lines."
    )


class ErrorBody(BaseModel):
    """Every error answer of the API."""

    error: ErrorDetail


ERROR_REF = "#/components/schemas/ErrorBody"

_WHY = {
    400: "The body is not valid JSON.",
    401: "No key, or an unknown or revoked one (`Authorization: Bearer <key>`).",
    403: "The key lacks the scope (or the department or type) this needs.",
    404: "Not found: `error.code` says what.",
    409: "Conflicts with the current state: `error.message` says how.",
    413: "The body is larger than `ONEVOICE_MAX_BODY_BYTES`.",
    415: "Not `application/json`.",
    422: "A parameter or the body is not valid (`error.fields` names each), or the request line "
         "holds U+0000.",
    429: "Over the key's write rate: retry after `Retry-After` seconds.",
    503: "The database, the log or the key store is unavailable: retry after `Retry-After`.",
}  # fmt: skip


def error_answer(status: int, why: str | None = None) -> dict[str, Any]:
    """An OpenAPI response object: ``status`` answers an ``ErrorBody``."""
    return {"description": why or _WHY[status],
            "content": {"application/json": {"schema": {"$ref": ERROR_REF}}}}  # fmt: skip


def answers(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses=`` for the errors only it gives."""
    return {status: error_answer(status) for status in statuses}
