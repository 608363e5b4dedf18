"""Reports across accounts."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from services.api.deps import ConsistentRead, ContainerDep, ReadConnDep
from services.api.errors import invalid_query
from services.core.readmodels import leadership
from services.core.readmodels.timeline import from_micros, to_micros

router = APIRouter(tags=["reports"], dependencies=[ConsistentRead])

_LONGEST = timedelta(days=366)


@router.get("/v1/reports/leadership")
def leadership_report(
    conn: ReadConnDep,
    container: ContainerDep,
    from_: Annotated[
        AwareDatetime | None,
        Query(alias="from", description="Start (inclusive); default: 7 days before `to`."),
    ] = None,
    to: Annotated[AwareDatetime | None, Query(description="End (exclusive); default: now.")] = None,
) -> dict[str, Any]:
    """The weekly leadership question in one call: which customers did each executive meet,
    what did they hear, what worries the customer, what did they complain about, and what did
    the executive promise. Every item names the event it came from."""
    end = to or container.clock()
    start = from_ or end - timedelta(days=7)
    if start >= end:
        raise invalid_query("from", "must be before 'to'")
    if end - start > _LONGEST:
        raise invalid_query("from", "the window may span at most 366 days")
    from_us, to_us = to_micros(start), to_micros(end)
    return {
        "from": from_micros(from_us),
        "to": from_micros(to_us),
        "executives": leadership.read_report(conn, from_us, to_us),
    }
