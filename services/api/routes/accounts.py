"""The accounts list: find accounts, and the ones nobody has been talking to."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from services.api.deps import ConsistentRead, ContainerDep, ReadConnDep
from services.api.errors import invalid_query
from services.core.events import DEPARTMENTS
from services.core.readmodels import accounts
from services.core.readmodels.timeline import to_micros

router = APIRouter(tags=["accounts"], dependencies=[ConsistentRead])

_DURATION = re.compile(r"^(\d{1,5})([hdw])$")
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def _duration(name: str, text: str | None) -> timedelta | None:
    if text is None:
        return None
    match = _DURATION.match(text)
    if match is None:
        raise invalid_query(name, "a duration like 30d, 12h or 8w")
    return int(match.group(1)) * _UNITS[match.group(2)]


@router.get("/v1/accounts")
def list_accounts(
    conn: ReadConnDep,
    container: ContainerDep,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            pattern="^[^\x00]*$",
            description="Case-insensitive substring of the name (Korean too) or the id.",
        ),
    ] = None,
    owner: Annotated[str | None, Query(max_length=256, description="Owner employee id.")] = None,
    segment: Annotated[str | None, Query(max_length=256)] = None,
    neglected_for: Annotated[
        str | None, Query(description="No touch for at least this long (e.g. 30d, 12h, 8w).")
    ] = None,
    never_contacted: Annotated[
        bool | None, Query(description="true: registered and never touched; false: the rest.")
    ] = None,
    silent_department: Annotated[
        str | None, Query(description="No touch from this department within silent_for.")
    ] = None,
    silent_for: Annotated[
        str | None, Query(description="Window for silent_department (default: ever).")
    ] = None,
    sort: Annotated[Literal["last_touch", "name"], Query()] = "last_touch",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> dict[str, Any]:
    """Accounts, most recently touched first (never touched last) or by name; keyset pages.

    Each item has the registration (name, segment, tier, parent, owners), the last touch and
    the last touch per department (`{at, event_id, type, actor, summary}`).
    """
    if silent_department is not None and silent_department not in DEPARTMENTS:
        raise invalid_query("silent_department", f"must be one of: {', '.join(DEPARTMENTS)}")
    if silent_for is not None and silent_department is None:
        raise invalid_query("silent_for", "needs silent_department")
    now = container.clock()
    neglect = _duration("neglected_for", neglected_for)
    silence = _duration("silent_for", silent_for)
    try:
        after = None if cursor is None else accounts.decode_cursor(sort, cursor)
    except accounts.BadCursor as exc:
        raise invalid_query("cursor", str(exc)) from exc
    query = accounts.AccountQuery(
        q=q, owner=owner, segment=segment,
        touched_before_us=None if neglect is None else to_micros(now - neglect),
        never_contacted=never_contacted, silent_department=silent_department,
        silent_since_us=None if silence is None else to_micros(now - silence),
        sort=sort, limit=limit, after=after,
    )  # fmt: skip
    items, next_cursor = accounts.read_accounts(conn, query)
    return {"items": items, "next_cursor": next_cursor}
