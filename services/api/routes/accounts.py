"""The accounts list (find accounts, and the ones nobody has been talking to) and the one-voice
view of one account."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse

from services.api.deps import ConsistentRead, ContainerDep, ReadConnDep, as_of, json_answer
from services.api.errors import invalid_query, not_found
from services.core.problems import answers
from services.core.readmodels import account_health, accounts, view
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
    at_risk: Annotated[
        bool | None,
        Query(
            description="true: health below ONEVOICE_AT_RISK_BELOW (default 60); false: the rest."
        ),
    ] = None,
    renewal_within: Annotated[
        str | None,
        Query(
            description="Accounts whose next renewal falls between now and this long after"
            " it (e.g. 30d)."
        ),
    ] = None,
    sort: Annotated[
        Literal["last_touch", "name", "health", "value"],
        Query(
            description="last_touch: newest first; name: A-Z; health: lowest score first;"
            " value: highest lifetime order value in ONEVOICE_VALUE_CURRENCY first."
        ),
    ] = "last_touch",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> dict[str, Any]:
    """Accounts, most recently touched first (never touched last) or by name; keyset pages.

    Each item has the registration (name, segment, tier, parent, owners), the last touch, the
    last touch per department (`{at, event_id, type, actor, summary}`) and `health: {score,
    at_risk}` (the view's score; its factors are in `GET /v1/accounts/{id}/view`).
    """
    departments = container.settings.department_list
    if silent_department is not None and silent_department not in departments:
        raise invalid_query("silent_department", f"must be one of: {', '.join(departments)}")
    if silent_for is not None and silent_department is None:
        raise invalid_query("silent_for", "needs silent_department")
    now = container.clock()
    neglect = _duration("neglected_for", neglected_for)
    silence = _duration("silent_for", silent_for)
    renewal = _duration("renewal_within", renewal_within)
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
    items, next_cursor = account_health.read_accounts(
        conn, query, as_of(container), at_risk=at_risk, below=container.settings.at_risk_below,
        renewal_within_us=None if renewal is None else int(renewal.total_seconds() * 1_000_000),
    )  # fmt: skip
    return {"items": items, "next_cursor": next_cursor}


# ``:path`` so an account id containing "/" (sent as %2F) is still addressable.
@router.get("/v1/accounts/{account_id:path}/view", response_model=None, responses=answers(404))
def account_view(
    conn: ReadConnDep,
    container: ContainerDep,
    response: Response,
    account_id: Annotated[str, Path(min_length=1, max_length=128)],
    include_children: Annotated[
        bool, Query(description="Roll in every account registered below this one.")
    ] = False,
) -> JSONResponse:
    """What every department said, promised and heard, in one glance.

    Sections: `account`, `last_touch` (overall and per department), `pressure` (touches per
    department in the last 7/30/90 days), `commitments` (open ones, counts), `support` (open
    tickets, open complaints, recurring complaints), `messaging` (campaigns in 30 days, live
    offers, conflicts), `relationships` (contacts and who touches them, breadth, single-threaded),
    `leadership` (last executive touch, concerns and complaints heard in 90 days), `health`
    (score 0-100 with factors citing event ids) and `as_of` (clock, time zone, log positions).
    Windows are calendar days in ONEVOICE_BUSINESS_TIME_ZONE. 404 for an account no event named.
    """
    children = accounts.descendants(conn, account_id) if include_children else None
    settings = container.settings
    found = view.read_view(
        conn, account_id, as_of(container), children=children,
        projections=container.projections, topic=settings.topic,
        at_risk_below=settings.at_risk_below, departments=settings.department_list,
    )  # fmt: skip
    if found is None:
        raise not_found("account_not_found", f"no event has named account '{account_id}'")
    return json_answer(found, response)
