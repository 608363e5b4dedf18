"""``GET /v1/reports/complaints``: complaint trends per week or month, by category, segment or
account owner.

Read from the OneVoiceView's tickets (complaints: tickets opened with ``complaint: true``) and
commitments (preventions), and the AccountDirectory (segment, owners), by indexed queries on
the time of opening and of resolution. Per period and group:

Only what happened up to now counts (an event dated later waits for its time).

- ``opened``: complaints opened in the period; ``accounts_affected``: the accounts they came from;
- ``resolved``: complaints resolved in the period; ``median_hours_to_resolve``: over those;
- ``recurring``: complaints opened in the period whose account had another complaint of the same
  category opened in the ``ONEVOICE_RECURRING_DAYS`` calendar days before (the view's window);
- ``recurrences_after_fix``: complaints opened in the period in a category for which a
  prevention had been recorded for the account before (the view's rule, ``view_rules.fixes``).

By owner, a complaint counts once for each owner of its account (in any department); accounts
without owners, and complaints without a category, count under ``null``.
"""

from __future__ import annotations

import statistics
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection, and_, func, select, tuple_

from services.core.readmodels import accounts, onevoice
from services.core.readmodels.reports.periods import Period, Span, spans
from services.core.view_rules import HOUR_US, AsOf, _window_start, iso

GroupBy = Literal["category", "segment", "owner"]
_CHUNK = 500


@dataclass(frozen=True)
class ComplaintQuery:
    from_us: int
    to_us: int
    group_by: GroupBy = "category"
    period: Period = "week"


@dataclass(slots=True)
class _Complaint:
    account_id: str
    ticket_id: str
    category: str | None
    category_key: str | None
    opened_us: int | None
    resolved_us: int | None
    event_id: str | None
    recurring: bool = False
    after_fix: bool = False


@dataclass
class _Cell:
    opened: list[_Complaint] = field(default_factory=list)
    resolved: list[_Complaint] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        hours = [(c.resolved_us - c.opened_us) / HOUR_US for c in self.resolved
                 if c.opened_us is not None and c.resolved_us is not None
                 and c.resolved_us >= c.opened_us]  # fmt: skip
        return {
            "opened": len(self.opened), "resolved": len(self.resolved),
            "median_hours_to_resolve": round(statistics.median(hours), 2) if hours else None,
            "recurring": sum(c.recurring for c in self.opened),
            "recurrences_after_fix": sum(c.after_fix for c in self.opened),
            "accounts_affected": len({c.account_id for c in self.opened}),
            "event_ids": [c.event_id for c in self.opened if c.event_id][:50],
        }  # fmt: skip


def _load(conn: Connection, lo: int, hi: int,
          lookback: int) -> tuple[dict[tuple[str, str], _Complaint], list[_Complaint]]:  # fmt: skip
    """Complaints opened or resolved in ``[lo, hi)``; and for each account and category of one
    opened in it, the latest complaint opened in ``[lookback, lo)`` — all ``_mark`` needs of
    the complaints before ``lo`` (only its time: the predecessor's), where every complaint
    opened since ``lookback`` was loaded before (thousands more rows for a 90-day window)."""
    t = onevoice.TABLES.tickets
    columns = (t.c.account_id, t.c.ticket_id, t.c.category, t.c.category_key, t.c.opened_us,
               t.c.resolved_us, t.c.opened_event_id)  # fmt: skip
    opened = select(*columns).where(and_(t.c.opened_us >= lo, t.c.opened_us < hi,
                                         t.c.complaint.is_(True)))  # fmt: skip
    resolved = select(*columns).where(and_(t.c.resolved_us >= lo, t.c.resolved_us < hi,
                                           t.c.complaint.is_(True)))  # fmt: skip
    found = {(r[0], r[1]): _Complaint(*r) for r in conn.execute(opened).all()}  # columns: fields
    for r in conn.execute(resolved).all():
        if (r[0], r[1]) not in found:
            found[(r[0], r[1])] = _Complaint(*r)
    if lookback >= lo:
        return found, []
    later = t.alias("later")
    recurs = tuple_(t.c.account_id, t.c.category_key).in_(
        select(later.c.account_id, later.c.category_key).where(
            later.c.opened_us >= lo, later.c.opened_us < hi, later.c.complaint.is_(True)
        )
    )
    before = conn.execute(
        select(t.c.account_id, t.c.category_key, func.max(t.c.opened_us))
        .where(t.c.opened_us >= lookback, t.c.opened_us < lo, t.c.complaint.is_(True),
               t.c.category_key.is_not(None), recurs)
        .group_by(t.c.account_id, t.c.category_key)
    ).all()  # fmt: skip
    return found, [_Complaint(a, "", None, key, at, None, None) for a, key, at in before]


Fixes = dict[tuple[str, str], list[tuple[int, str]]]


def _fixes(conn: Connection, lo: int, hi: int) -> Fixes:
    """``(account, category key) -> (when, ticket)`` of its preventions (the cause's category,
    else the ticket's), for the accounts with a complaint opened in ``[lo, hi)`` (only theirs
    are counted after a fix): one query, whatever their number (a prevention made after ``hi``
    fixes nothing before it)."""
    c, t = onevoice.TABLES.commitments, onevoice.TABLES.tickets
    complained = select(t.c.account_id).where(
        t.c.opened_us >= lo, t.c.opened_us < hi, t.c.complaint.is_(True))  # fmt: skip
    rows = conn.execute(
        select(c.c.account_id, c.c.ticket_id, c.c.cause_key, c.c.made_us, t.c.category_key)
        .outerjoin(t, and_(t.c.account_id == c.c.account_id, t.c.ticket_id == c.c.ticket_id))
        .where(c.c.account_id.in_(complained), c.c.ticket_id.is_not(None),
               c.c.made_us.is_not(None), c.c.made_us < hi)
    ).all()  # fmt: skip
    found: Fixes = {}
    for r in rows:
        key = r.cause_key or r.category_key
        if key is not None:
            found.setdefault((r.account_id, key), []).append((r.made_us, r.ticket_id))
    return found


def _mark(complaints: Iterable[_Complaint], fixes: Fixes, as_of: AsOf,
          before: Iterable[_Complaint] = ()) -> None:  # fmt: skip
    """Mark ``recurring`` and ``after_fix`` (a prevention of another ticket, recorded before
    the complaint was opened: the view's rule); ``before`` (``_load``'s) only precede them."""
    by_key: dict[tuple[str, str], list[_Complaint]] = {}
    for c in (*before, *complaints):
        if c.category_key is not None and c.opened_us is not None:
            by_key.setdefault((c.account_id, c.category_key), []).append(c)
    days = as_of.policy.recurring_days
    for key, group in by_key.items():
        if len(group) > 1:
            group.sort(key=lambda c: (c.opened_us or 0, c.ticket_id))
        made = fixes.get(key, [])
        for i, c in enumerate(group):
            if i:  # the first of its account and category recurs nothing; the one before it
                # was opened last of those before it
                start = _window_start(c.opened_us or 0, as_of.tz, days)
                c.recurring = start <= (group[i - 1].opened_us or 0)
            if made:
                c.after_fix = any(at < (c.opened_us or 0) and ticket != c.ticket_id
                                  for at, ticket in made)  # fmt: skip


def opened_between(conn: Connection, from_us: int, to_us: int, as_of: AsOf) -> list[_Complaint]:
    """The complaints opened in ``[from_us, to_us)``, with ``recurring`` and ``after_fix``."""
    lookback = _window_start(from_us, as_of.tz, as_of.policy.recurring_days + 1)
    to_us = min(to_us, as_of.now_us + 1)  # up to now
    found, before = _load(conn, from_us, to_us, lookback)
    _mark(found.values(), _fixes(conn, from_us, to_us), as_of, before)
    return [c for c in found.values()
            if c.opened_us is not None and from_us <= c.opened_us < to_us]  # fmt: skip


def _groups(conn: Connection, group_by: GroupBy, account_ids: Sequence[str]) -> dict[
        str, list[str | None]]:  # fmt: skip
    """``account -> its groups`` for segment and owner."""
    a, o = accounts.TABLES.accounts, accounts.TABLES.owners
    found: dict[str, list[str | None]] = {}
    for start in range(0, len(account_ids), _CHUNK):
        chunk = account_ids[start : start + _CHUNK]
        if group_by == "segment":
            for r in conn.execute(select(a.c.account_id, a.c.segment)
                                  .where(a.c.account_id.in_(chunk))):  # fmt: skip
                found[r.account_id] = [r.segment]
        else:
            for r in conn.execute(select(o.c.account_id, o.c.employee_id)
                                  .where(o.c.account_id.in_(chunk)).distinct()):  # fmt: skip
                found.setdefault(r.account_id, []).append(r.employee_id)
    return found


def read_complaints(conn: Connection, query: ComplaintQuery, as_of: AsOf) -> dict[str, Any]:
    periods = spans(query.from_us, query.to_us, query.period, as_of)
    lo, hi = periods[0].start_us, min(periods[-1].end_us, as_of.now_us + 1)  # up to now
    lookback = _window_start(lo, as_of.tz, as_of.policy.recurring_days + 1)
    complaints, before = _load(conn, lo, hi, lookback)
    account_ids = sorted({c.account_id for c in complaints.values()})
    _mark(complaints.values(), _fixes(conn, lo, hi), as_of, before)
    groups = {} if query.group_by == "category" else _groups(conn, query.group_by, account_ids)
    names: dict[str | None, str | None] = {}
    ordered = sorted(complaints.values(),
                     key=lambda c: (c.opened_us or 0, c.account_id, c.ticket_id))  # fmt: skip

    def keys(c: _Complaint) -> list[str | None]:
        if query.group_by == "category":
            return [c.category_key]
        return sorted(set(groups.get(c.account_id) or [None]), key=lambda k: (k is None, k))

    starts = [span.start_us for span in periods]  # periods are consecutive

    def period_of(at_us: int | None) -> int | None:  # up to now, as the rows were loaded
        if at_us is None or not starts[0] <= at_us < hi:
            return None
        return bisect_right(starts, at_us) - 1

    cells: list[dict[str | None, _Cell]] = [{} for _ in periods]
    totals = [_Cell() for _ in periods]
    members: list[list[_Complaint]] = [[] for _ in periods]  # each period's, in ``ordered``
    for c in ordered:  # each complaint once, into the periods it was opened and resolved in
        for at_us, kind in ((c.opened_us, "opened"), (c.resolved_us, "resolved")):
            i = period_of(at_us)
            if i is not None:
                if not members[i] or members[i][-1] is not c:
                    members[i].append(c)
                for cell in (totals[i], *(_cell(cells[i], k) for k in keys(c))):
                    getattr(cell, kind).append(c)
    for c in (c for period in members for c in period):  # a category is named as written by
        names.setdefault(c.category_key, c.category)  # its first complaint of the first period
    out = [_period_json(span, cells[i], totals[i], query.group_by, names)
           for i, span in enumerate(periods)]  # fmt: skip
    return {"from": iso(query.from_us), "to": iso(query.to_us), "period": query.period,
            "group_by": query.group_by, "time_zone": as_of.tz.key,
            "recurring_days": as_of.policy.recurring_days, "periods": out}  # fmt: skip


def _cell(cells: dict[str | None, _Cell], key: str | None) -> _Cell:
    if key not in cells:
        cells[key] = _Cell()
    return cells[key]


def _period_json(span: Span, cells: dict[str | None, _Cell], total: _Cell, group_by: GroupBy,
                 names: dict[str | None, str | None]) -> dict[str, Any]:  # fmt: skip
    groups = [
        {"group": names.get(k, k) if group_by == "category" else k, **cell.figures()}
        for k, cell in sorted(cells.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
    ]
    return {"period": span.label, "from": iso(span.start_us), "to": iso(span.end_us),
            "total": total.figures(), "groups": groups}  # fmt: skip


FIGURES = ("opened", "resolved", "median_hours_to_resolve", "recurring", "recurrences_after_fix",
           "accounts_affected")  # fmt: skip


def complaint_rows(report: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """The CSV: one row per period and group (and a ``(total)`` row per period)."""
    header = ["period", "from", "to", report["group_by"], *FIGURES]
    rows = []
    for p in report["periods"]:
        for name, figures in [("(total)", p["total"]), *((g["group"], g) for g in p["groups"])]:
            rows.append([p["period"], p["from"], p["to"], name, *(figures[f] for f in FIGURES)])
    return header, rows
