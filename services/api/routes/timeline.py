"""Account timelines and single events."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from services.api.auth import grant_of
from services.api.deps import ConsistentRead, ContainerDep, ReadConnDep, json_answer
from services.api.errors import invalid_query, not_found
from services.core.events import EVENT_TYPES
from services.core.problems import answers
from services.core.readmodels import accounts, timeline
from services.core.readmodels.reports import facts

router = APIRouter(tags=["timeline"], dependencies=[ConsistentRead])


def _split(values: list[str] | None, allowed: tuple[str, ...], name: str) -> list[str]:
    """Accept repeated and comma-separated values; refuse unknown ones by name."""
    items = [v.strip() for value in values or [] for v in value.split(",") if v.strip()]
    unknown = [v for v in items if v not in allowed]
    if unknown:
        raise invalid_query(
            name, f"must be one of: {', '.join(allowed)}", f"unknown {name}: {', '.join(unknown)}"
        )
    return items


# ``:path`` so an account id containing "/" (sent as %2F) is still addressable.
@router.get("/v1/accounts/{account_id:path}/timeline", response_model=None, responses=answers(404))
def get_timeline(
    request: Request,
    response: Response,
    conn: ReadConnDep,
    container: ContainerDep,
    account_id: Annotated[str, Path(min_length=1, max_length=128)],
    department: Annotated[
        list[str] | None,
        Query(
            description="Filter: departments (repeat or comma-separate); an event matches when"
            " its actor or one of its participants is in one of them."
        ),
    ] = None,
    type: Annotated[
        list[str] | None, Query(description="Filter: event types (repeat or comma-separate).")
    ] = None,
    since: Annotated[
        AwareDatetime | None, Query(description="occurred_at >= since (RFC 3339, with zone).")
    ] = None,
    until: Annotated[
        AwareDatetime | None, Query(description="occurred_at < until (RFC 3339, with zone).")
    ] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="Case-insensitive substring of the summary or payload text (needs a"
            " key with read-sensitive: the text searched holds sensitive fields).",
        ),
    ] = None,
    order: Annotated[Literal["desc", "asc"], Query(description="desc = newest first.")] = "desc",
    limit: Annotated[int, Query(ge=1, le=500, description="Items per page.")] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
    include_children: Annotated[
        bool, Query(description="Merge in the timelines of every account registered below it.")
    ] = False,
) -> JSONResponse:
    """One page of an account's timeline, ordered by occurred_at (ties by log position).

    Includes events whose `related_account_ids` name this account. Pages are keyset-paginated:
    pass `next_cursor` back as `cursor` (with the same filters and order); `null` means the last
    page. 404 when no event has ever named the account.
    """
    if q is not None and not grant_of(request).read_sensitive:
        # The searched text holds what this key may not read: a search would tell it.
        raise HTTPException(403, detail={
            "code": "forbidden", "message": "searching event text (q) needs the"
            " 'read-sensitive' scope", "fields": [{"path": "query.q", "problem":
                                                  "needs a key with read-sensitive"}]})  # fmt: skip
    children = accounts.descendants(conn, account_id) if include_children else []
    query = timeline.TimelineQuery(
        account_id=account_id,
        also=children,
        departments=_split(department, container.settings.department_list, "department"),
        types=_split(type, EVENT_TYPES, "type"),
        since=since,
        until=until,
        q=q,
        order=order,
        limit=limit,
        after=_cursor(cursor),
    )
    page = timeline.read_page(conn, query)
    # A page with items shows the account is known; only an empty one needs the lookup (it
    # was a tenth of a timeline GET's time).
    if not page.items and not timeline.account_known(conn, account_id, also=children):
        raise not_found("account_not_found", f"no event has named account '{account_id}'")
    body: dict[str, Any] = {"account_id": account_id}
    if include_children:
        body["included_accounts"] = children
    # Items are the stored JSON, parsed: plain JSON types, so FastAPI's jsonable_encoder (a
    # walk over every value of every item) is skipped.
    return json_answer({**body, "items": page.items, "next_cursor": page.next_cursor}, response)


def _cursor(cursor: str | None) -> timeline.SortKey | None:
    if cursor is None:
        return None
    try:
        return timeline.decode_cursor(cursor)
    except timeline.BadCursor as exc:
        raise invalid_query("cursor", str(exc), str(exc)) from exc


@router.get("/v1/events/{event_id}", responses=answers(404))
def get_event(conn: ReadConnDep, event_id: UUID) -> dict[str, Any]:
    """The stored event (with `recorded_at` and `position`) once it has been projected —
    customer events from the timelines, organisation events (`employee.*`,
    `kpi.target_set`) from the ReportFacts read model."""
    body = timeline.read_event(conn, str(event_id)) or facts.read_event(conn, str(event_id))
    if body is None:
        raise not_found("event_not_found", f"no event {event_id} has been projected (yet)")
    return body
