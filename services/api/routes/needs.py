"""``GET /v1/needs``: what customers need, across accounts (for product teams)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from services.api.deps import ConsistentRead, ContainerDep, ReadConnDep
from services.api.errors import invalid_query
from services.core.readmodels import cursors, needs
from services.core.readmodels.timeline import to_micros

router = APIRouter(tags=["needs"], dependencies=[ConsistentRead])


@router.get("/v1/needs")
def list_needs(
    conn: ReadConnDep,
    container: ContainerDep,
    status: Annotated[
        Literal["open", "addressed", "all"],
        Query(description="open: not addressed yet; addressed: addressed up to now; all."),
    ] = "open",
    category: Annotated[
        str | None, Query(min_length=1, max_length=256, description="Case-insensitive.")
    ] = None,
    department: Annotated[
        str | None, Query(description="The department of whoever identified the need.")
    ] = None,
    account_id: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    on_site: Annotated[
        bool | None, Query(description="true: solved on site; false: addressed otherwise.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> dict[str, Any]:
    """Customer needs (`customer.need_identified` / `customer.need_addressed`) across accounts,
    newest identification first: each with its account, text, category, priority, who
    identified it (department, person, event) and, once addressed, how, whether on site, by
    whom and the event. Keyset pages: pass `next_cursor` back as `cursor`."""
    departments = container.settings.department_list
    if department is not None and department not in departments:
        raise invalid_query("department", f"must be one of: {', '.join(departments)}")
    try:
        after = None if cursor is None else needs.decode_cursor(cursor)
    except cursors.BadCursor as exc:
        raise invalid_query("cursor", str(exc)) from exc
    query = needs.NeedQuery(status, category, department, account_id, on_site, limit, after)
    items, next_cursor = needs.read_needs(conn, query, to_micros(container.clock()))
    return {"items": items, "next_cursor": next_cursor}
