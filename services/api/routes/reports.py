"""Reports across accounts: the leadership and coverage reports, and an employee's feed."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from services.api.csv_export import CSV_RESPONSE, FormatQuery, Rows, respond
from services.api.deps import ConsistentRead, ContainerDep, ReadConnDep, as_of
from services.api.errors import invalid_query
from services.api.windows import check_floor
from services.core.events import UtcDatetime
from services.core.readmodels import coverage, feed, leadership, timeline, view, view_facts
from services.core.readmodels.reports import roster
from services.core.readmodels.timeline import from_micros, to_micros

router = APIRouter(tags=["reports"], dependencies=[ConsistentRead])

_LONGEST = timedelta(days=366)


def _days_before(moment: datetime, days: int, param: str) -> datetime:
    """``moment`` minus ``days`` days; a 422 naming ``param`` (the value ``moment`` came from)
    when that falls before year 1, which Python cannot represent."""
    try:
        return moment - timedelta(days=days)
    except OverflowError:
        problem = f"must be at least {days} days after 0001-01-01T00:00:00Z (the default window)"
        raise invalid_query(param, problem) from None


@router.get("/v1/reports/leadership", response_model=None, responses=CSV_RESPONSE)
def leadership_report(
    request: Request,
    response: Response,
    conn: ReadConnDep,
    container: ContainerDep,
    from_: Annotated[
        UtcDatetime | None,
        Query(alias="from", description="Start (inclusive); default: 7 days before `to`."),
    ] = None,
    to: Annotated[UtcDatetime | None, Query(description="End (exclusive); default: now.")] = None,
    fmt: FormatQuery = None,
) -> Response:
    """The weekly leadership question in one call: which customers did each executive meet,
    what did they hear, what worries the customer, what did they complain about, and what did
    the executive promise. Every item names the event it came from. An executive is a person
    whose `executive` flag is true (ingest sets it from the title rule), or who has no flag and
    is in the leadership department; they count whether they made the event or took part.
    Every active executive of the roster (`GET /v1/employees?executive=true`) is listed, with
    zeros where they met nobody; `counts` beside `previous`: the same counts in the window of
    the same length just before. CSV: one row per executive with both."""
    end = to or container.clock()
    start = from_ or _days_before(end, 7, "to")
    if start >= end:
        raise invalid_query("from", "must be before 'to'")
    if end - start > _LONGEST:
        raise invalid_query("from", "the window may span at most 366 days")
    check_floor(start, "from" if from_ is not None else "to")
    from_us, to_us = to_micros(start), to_micros(end)
    report = {
        "from": from_micros(from_us),
        "to": from_micros(to_us),
        "previous": {"from": from_micros(2 * from_us - to_us), "to": from_micros(from_us)},
        "executives": leadership.read_report(
            conn, from_us, to_us, roster.load(conn, as_of(container))
        ),
    }
    return respond(request, response, fmt, report, "leadership", _leadership_rows)


def _leadership_rows(report: dict[str, Any]) -> Rows:
    counts = ["customers_met", "touches", "commitments", *leadership.HEARD_FIELDS]
    header = ["from", "to", "executive_id", "name", "department", "title", "active",
              *counts, *(f"previous_{c}" for c in counts), "accounts_met"]  # fmt: skip
    rows = [[report["from"], report["to"], e["executive"].get("id"), e["executive"].get("name"),
             e["executive"].get("department"), e["executive"].get("title"), e["active"],
             *(e["counts"][c] for c in counts), *(e["previous"][c] for c in counts),
             "; ".join(c["name"] or c["account_id"] for c in e["customers"])]
            for e in report["executives"]]  # fmt: skip
    return header, rows


@router.get("/v1/reports/coverage", response_model=None, responses=CSV_RESPONSE)
def coverage_report(
    request: Request,
    response: Response,
    conn: ReadConnDep,
    container: ContainerDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="Items per section.")] = 100,
    fmt: FormatQuery = None,
) -> Response:
    """Who needs attention: neglected accounts (touched before, not in the last 30 days),
    never-contacted accounts, single-threaded accounts, accounts with recurring complaints,
    overdue commitments, stale handoffs, recurrences after a fix, and silent executives and
    account owners. Each section has its total `count` and its first `limit` items, most
    urgent first; items cite the events behind them. CSV: one row per item shown, with its
    section."""
    report = coverage.read_coverage(conn, as_of(container), limit)
    return respond(request, response, fmt, report, "coverage", _coverage_rows)


def _coverage_rows(report: dict[str, Any]) -> Rows:
    """Each item: its section, account or person, the moment that matters, and the rest."""
    keys = ("account_id", "name", "employee", "last_touch_at", "due_at", "oldest_at",
            "opened_at", "last_customer_contact")  # fmt: skip
    rows = []
    for section, value in report.items():
        if not (isinstance(value, dict) and "items" in value):
            continue
        for item in value["items"]:
            rest = {k: v for k, v in item.items() if k not in keys}
            employee = item.get("employee") or {}
            at = next((item[k] for k in keys[3:7] if item.get(k)), None) or (
                (item.get("last_customer_contact") or {}).get("at"))  # fmt: skip
            rows.append([section, item.get("account_id"), item.get("name"),
                         employee.get("id"), at, rest])  # fmt: skip
    return ["section", "account_id", "account_name", "employee_id", "at", "details"], rows


@router.get("/v1/feed")
def employee_feed(
    conn: ReadConnDep,
    container: ContainerDep,
    employee: Annotated[str, Query(min_length=1, max_length=256, description="Employee id.")],
    since: Annotated[
        UtcDatetime | None, Query(description="occurred_at >= since; default: 7 days ago.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> dict[str, Any]:
    """A rep's morning read: events on the accounts this employee owns or has touched, made by
    other people since a time, newest first (each event once). `open_handoffs`: on the accounts
    this employee owns, the marketing signals nobody in sales or success has followed up yet
    (oldest first, with `age_days` and `stale`). `habit`: for an active executive or account
    owner, whether they recorded no customer contact in ONEVOICE_SILENT_EMPLOYEE_WEEKS weeks
    (`silent`) and their last one; null for anyone else."""
    start = since or container.clock() - timedelta(days=7)
    try:
        after = None if cursor is None else timeline.decode_cursor(cursor)
    except timeline.BadCursor as exc:
        raise invalid_query("cursor", str(exc)) from exc
    query = feed.FeedQuery(employee, to_micros(start), limit, after)
    account_ids, items, next_cursor = feed.read_feed(conn, query)
    moment = as_of(container)
    owned = feed.owned(conn, employee)
    handoffs = [{"account_id": account_id, **view.handoff_json(h, moment)}
                for account_id, h in view_facts.handoffs_of(conn, owned, moment)
                if not moment.past(h.followed_us) and moment.past(h.at_us)]  # fmt: skip
    handoffs.sort(key=lambda h: (h["at"], h["account_id"], h["event_id"]))
    person = roster.load(conn, moment, employee).get(employee, roster.Employee(employee))
    return {"employee": employee, "since": from_micros(to_micros(start)),
            "accounts": account_ids, "items": items, "next_cursor": next_cursor,
            "open_handoffs": handoffs,
            "habit": roster.habit(person, len(owned), moment)}  # fmt: skip
