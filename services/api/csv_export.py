"""Every report also answers ``text/csv``: ``?format=csv``, or an Accept header that names
``text/csv`` (``format`` wins when both are given).

The CSV is UTF-8 with a byte-order mark, so spreadsheet software opens Korean text correctly, one
header row, and RFC 4180 quoting. A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return is prefixed with ``'``, so a customer's words are never run as a formula.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any, Literal

from fastapi import Query, Request
from fastapi.responses import Response

from services.api.auth import grant_of
from services.api.deps import json_answer
from services.api.disclosure import RESTRICTED_HEADER, disclosed

Rows = tuple[Sequence[str], Iterable[Sequence[Any]]]
"""A report as a table: the header, then the rows."""

FormatQuery = Annotated[
    Literal["json", "csv"] | None,
    Query(alias="format", description="csv: the report as a CSV table (UTF-8 with BOM); default"
          " json, or csv when the Accept header names text/csv."),
]  # fmt: skip

CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}},
          "description": "JSON, or CSV when asked for (format=csv or Accept: text/csv)."},
}  # fmt: skip

_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def wants_csv(request: Request, fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "csv"
    return "text/csv" in request.headers.get("accept", "")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return value


def csv_body(rows: Rows) -> bytes:
    header, body = rows
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([_cell(v) for v in row] for row in body)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def respond(
    request: Request, response: Response, fmt: str | None, report: dict[str, Any], name: str,
    table: Callable[[dict[str, Any]], Rows],
) -> Response:  # fmt: skip
    """``report`` as JSON (plain JSON types only: FastAPI's jsonable_encoder is skipped, which
    cost more than the report's own read for large ones), or as the CSV ``table(report)`` when
    the caller asked for CSV; either keeps the headers dependencies set on ``response`` (e.g.
    X-OneVoice-Stale)."""
    if not wants_csv(request, fmt):
        return json_answer(report, response)  # disclosed by ``disclosure.Disclose``
    extra = {k: v for k, v in response.headers.items()
             if k not in ("content-length", "content-type")}  # fmt: skip
    report, changed = disclosed(report, grant_of(request),
                                request.app.state.container.vault.keys)  # fmt: skip
    if changed:
        extra[RESTRICTED_HEADER] = "true"
    return Response(
        csv_body(table(report)), media_type="text/csv; charset=utf-8",
        headers={**extra, "content-disposition": f'attachment; filename="{name}.csv"'},
    )  # fmt: skip
