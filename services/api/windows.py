"""Report windows: ``[from, to)`` from the query, with defaults and the bounds every report
shares (422 naming the parameter)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.api.errors import invalid_query
from services.core.container import Container
from services.core.readmodels.timeline import to_micros

_LONGEST = timedelta(days=366)


def window(container: Container, from_: datetime | None, to: datetime | None,
           default: timedelta, longest: timedelta = _LONGEST) -> tuple[int, int]:  # fmt: skip
    """``[from, to)`` in µs: ``to`` defaults to now, ``from`` to ``default`` before ``to``;
    422 naming ``from`` when it is not before ``to`` or the window is too long."""
    end = to or container.clock()
    try:
        start = from_ or end - default
    except OverflowError:
        raise invalid_query("to", f"must be at least {default.days} days after year 1") from None
    if start >= end:
        raise invalid_query("from", "must be before 'to'")
    if end - start > longest:
        raise invalid_query("from", f"the window may span at most {longest.days} days")
    check_floor(start, "from" if from_ is not None else "to")
    return to_micros(start), to_micros(end)


EARLIEST = datetime(10, 1, 1, tzinfo=UTC)
"""Reports look back before their window (the previous window, the recurring window, the
neglect window): a window starting before this could reach before year 1."""


def check_floor(start: datetime, param: str) -> None:
    if start < EARLIEST:
        raise invalid_query(param, "the window must start on or after 0010-01-01T00:00:00Z"
                            " (a report looks back before its window)")  # fmt: skip
