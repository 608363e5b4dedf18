"""``GET /v1/employees``: the roster (registered people and people seen in customer events)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.api.deps import ConsistentRead, ContainerDep, ReadConnDep, as_of
from services.api.errors import invalid_query
from services.core.readmodels import cursors
from services.core.readmodels.reports import roster

router = APIRouter(tags=["employees"], dependencies=[ConsistentRead])


@router.get("/v1/employees")
def list_employees(
    conn: ReadConnDep,
    container: ContainerDep,
    executive: Annotated[bool | None, Query(description="true: executives only.")] = None,
    department: Annotated[str | None, Query(description="One configured department.")] = None,
    active: Annotated[
        bool | None, Query(description="Default true: people not marked inactive.")
    ] = True,
    silent: Annotated[
        bool | None,
        Query(description="true: no customer contact in ONEVOICE_SILENT_EMPLOYEE_WEEKS weeks."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> dict[str, Any]:
    """Our people, by id: each registered employee (`employee.registered`, then
    `employee.updated`) and everyone who appeared in a customer event without being registered
    (`registered: false`, as the latest event showed them). Each with department, title,
    whether an executive (flag, else the leadership department), accounts owned, the latest
    customer contact (event, account, time) and `silent`. `count`: all that match the filters.
    Keyset pages: pass `next_cursor` back as `cursor`."""
    departments = container.settings.department_list
    if department is not None and department not in departments:
        raise invalid_query("department", f"must be one of: {', '.join(departments)}")
    after = None
    if cursor is not None:
        try:
            (after,) = cursors.decode(cursor)
        except (cursors.BadCursor, ValueError) as exc:
            raise invalid_query("cursor", "not a cursor of this list") from exc
        if not isinstance(after, str):
            raise invalid_query("cursor", "not a cursor of this list")
    moment = as_of(container)
    people = roster.load(conn, moment)
    matching = [
        p for _, p in sorted(people.items())
        if (executive is None or p.executive == executive)
        and (department is None or p.department == department)
        and (active is None or p.active == active)
        and (silent is None or roster.is_silent(p, moment) == silent)
    ]  # fmt: skip
    chosen = [p for p in matching if after is None or p.employee_id > after]
    page = chosen[:limit]
    owned = roster.owned_counts(conn, [p.employee_id for p in page])
    items = [roster.employee_json(p, owned[p.employee_id], moment) for p in page]
    more = len(chosen) > limit
    return {"items": items, "count": len(matching),
            "next_cursor": cursors.encode([page[-1].employee_id]) if more else None}  # fmt: skip
