"""What leaders ask every week, across accounts: the voice of the customer, complaint trends,
handoff follow-through and the joint KPIs with their targets. Every report answers JSON, or CSV
(``csv_export``); windows and periods follow the business time zone. Targets are set with
``PUT /v1/kpi-targets`` (an ingest route: it appends an event)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from services.api.csv_export import CSV_RESPONSE, FormatQuery, respond
from services.api.deps import ConsistentRead, ContainerDep, ReadConnDep, as_of
from services.api.errors import invalid_query
from services.api.windows import window
from services.core.container import Container
from services.core.events import UtcDatetime
from services.core.readmodels.reports import complaints, handoffs, kpi, periods, targets, voice
from services.core.readmodels.timeline import to_micros

router = APIRouter(tags=["reports"], dependencies=[ConsistentRead])

FromQuery = Annotated[UtcDatetime | None, Query(alias="from", description="Start (inclusive).")]
ToQuery = Annotated[UtcDatetime | None, Query(description="End (exclusive); default: now.")]


def _department(container: Container, department: str | None) -> None:
    departments = container.settings.department_list
    if department is not None and department not in departments:
        raise invalid_query("department", f"must be one of: {', '.join(departments)}")


@router.get("/v1/reports/voice", response_model=None, responses=CSV_RESPONSE)
def voice_report(
    request: Request,
    response: Response,
    conn: ReadConnDep,
    container: ContainerDep,
    from_: FromQuery = None,
    to: ToQuery = None,
    segment: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    department: Annotated[str | None, Query(description="Who heard it.")] = None,
    category: Annotated[
        str | None, Query(min_length=1, max_length=256, description="A theme; any case.")
    ] = None,
    kind: Annotated[Literal[voice.KINDS] | None, Query()] = None,  # type: ignore[valid-type]
    items: Annotated[int, Query(ge=0, le=500, description="Items listed per group.")] = 20,
    fmt: FormatQuery = None,
) -> Response:
    """The voice of the customer across accounts and departments (default: the last 7 days):
    complaints by category, low CSAT scores (1-2) with comments, success risks, needs by
    category, churn reasons, the concerns and complaints executives heard, and sales next
    steps. Grouped by kind and theme, largest first, each group with `count`, `accounts`,
    `previous` (the window of the same length just before), `change`, `change_pct`, and its
    newest items, each citing its event and account. CSV: one row per item."""
    _department(container, department)
    from_us, to_us = window(container, from_, to, timedelta(days=7))
    query = voice.VoiceQuery(from_us, to_us, segment, department, category, kind, items)
    return respond(request, response, fmt, voice.read_voice(conn, query), "voice", voice.voice_rows)


@router.get("/v1/reports/complaints", response_model=None, responses=CSV_RESPONSE)
def complaints_report(
    request: Request,
    response: Response,
    conn: ReadConnDep,
    container: ContainerDep,
    from_: FromQuery = None,
    to: ToQuery = None,
    group_by: Annotated[Literal["category", "segment", "owner"], Query()] = "category",
    period: Annotated[Literal["week", "month"], Query()] = "week",
    fmt: FormatQuery = None,
) -> Response:
    """Complaint trends (default: the last 8 weeks): per week or month (business calendar;
    weeks start on ONEVOICE_WEEK_START) and per category, segment or account owner — opened,
    resolved, median hours to resolve, recurring (another complaint of the category on the
    account within ONEVOICE_RECURRING_DAYS before), recurrences after a fix, accounts
    affected; `total` per period. CSV: one row per period and group."""
    from_us, to_us = window(container, from_, to, timedelta(weeks=8), timedelta(days=731))
    query = complaints.ComplaintQuery(from_us, to_us, group_by, period)
    try:
        report = complaints.read_complaints(conn, query, as_of(container))
    except periods.TooManyPeriods as exc:
        raise invalid_query("from", str(exc)) from exc
    return respond(request, response, fmt, report, "complaints", complaints.complaint_rows)


@router.get("/v1/reports/handoffs", response_model=None, responses=CSV_RESPONSE)
def handoffs_report(
    request: Request,
    response: Response,
    conn: ReadConnDep,
    container: ContainerDep,
    from_: FromQuery = None,
    to: ToQuery = None,
    campaign_id: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    limit: Annotated[int, Query(ge=0, le=1000, description="Open handoffs listed.")] = 100,
    fmt: FormatQuery = None,
) -> Response:
    """Handoff follow-through for the marketing signals of a window (default: the last 30
    days): per campaign and per owner (the account's sales and success owners) — signals,
    followed up (up to now), followed up in time (within ONEVOICE_HANDOFF_DAYS), open, stale,
    median hours to follow-up, accounts left — and the handoffs left open (account, contact,
    signal event, age), oldest first. CSV: the total, then one row per campaign and owner."""
    from_us, to_us = window(container, from_, to, timedelta(days=30))
    query = handoffs.HandoffQuery(from_us, to_us, campaign_id, limit)
    report = handoffs.read_handoffs(conn, query, as_of(container))
    return respond(request, response, fmt, report, "handoffs", handoffs.handoff_rows)


@router.get("/v1/reports/kpi", response_model=None, responses=CSV_RESPONSE)
def kpi_report(
    request: Request,
    response: Response,
    conn: ReadConnDep,
    container: ContainerDep,
    from_: FromQuery = None,
    to: ToQuery = None,
    group_by: Annotated[Literal["department", "segment", "owner"], Query()] = "department",
    period: Annotated[Literal["week", "month"], Query()] = "week",
    fmt: FormatQuery = None,
) -> Response:
    """The joint KPIs (default: the last 4 weeks) per week or month and per department, segment
    or owner: accounts touched, neglected, at risk and never contacted; executive touches;
    complaints opened and recurring; commitments kept on time and overdue; handoffs followed
    up in time; the CSAT average; conflicting offers. Each figure is `{value, target, met}`:
    the target in force at the period's end (`PUT /v1/kpi-targets`), and whether the value
    meets it (`lower_is_better` lists the metrics where less is better). States (neglected,
    at risk, never contacted, overdue, conflicting offers) are as of the period's end, by the
    view's rules. CSV: one row per period and group, each metric beside its target."""
    from_us, to_us = window(container, from_, to, timedelta(weeks=4), timedelta(days=731))
    settings = container.settings
    query = kpi.KpiQuery(from_us, to_us, group_by, period, settings.at_risk_below)
    try:
        report = kpi.read_kpi(conn, query, as_of(container), settings.department_list)
    except periods.TooManyPeriods as exc:
        raise invalid_query("from", str(exc)) from exc
    return respond(request, response, fmt, report, "kpi", _kpi_rows)


def _kpi_rows(report: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    header = ["period", "from", "to", report["group_by"],
              *(f"{m}{s}" for m in targets.METRICS for s in ("", "_target", "_met"))]  # fmt: skip
    rows = []
    for p in report["periods"]:
        for g in p["groups"]:
            figures = g["figures"]
            cells = [figures[m][k] for m in targets.METRICS for k in ("value", "target", "met")]
            rows.append([p["period"], p["from"], p["to"], g["group"], *cells])
    return header, rows


@router.get("/v1/kpi-targets")
def kpi_targets(conn: ReadConnDep, container: ContainerDep) -> dict[str, Any]:
    """The KPI targets in force now: the newest per metric, grouping, group and period, with
    who set it, when, and the event."""
    return {"items": targets.read_targets(conn, to_micros(container.clock()))}
