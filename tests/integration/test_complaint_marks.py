"""The complaint reports mark a complaint ``recurring`` and ``after_fix`` from what they load:
since 2026-12-02 only the complaints of the range and, per account and category, the latest one
opened in the window before it (not every complaint of that window). An oracle over every
complaint of the table says what the marks must be, for random stories, ranges and windows.

Runs on both backends (SQLite and PostgreSQL) through the ``db`` fixture.
"""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Connection, select

from services.core.adapters.sql import Database
from services.core.readmodels import onevoice
from services.core.readmodels.reports import complaints
from services.core.readmodels.timeline import to_micros
from services.core.view_rules import AsOf, Policy, _window_start
from tests.integration.test_view_fold import NOW, fold, history

Marks = dict[tuple[str, str], tuple[bool, bool]]


def oracle(conn: Connection, lo: int, hi: int, as_of: AsOf) -> Marks:
    """The marks of the complaints opened in ``[lo, hi)``, from every complaint there is: one
    recurs when another of its account and category was opened before it (on a tie, with a
    lower ticket id) since the start of its window; one comes after a fix when a prevention of
    another ticket of that account and category was recorded before it opened (made before
    ``hi``)."""
    hi = min(hi, as_of.now_us + 1)  # up to now
    t, c = onevoice.TABLES.tickets.c, onevoice.TABLES.commitments.c
    every = [r for r in conn.execute(select(t.account_id, t.ticket_id, t.category_key,
                                            t.opened_us).where(t.complaint.is_(True)))
             if r.opened_us is not None]  # fmt: skip
    key_of = {(r.account_id, r.ticket_id): r.category_key for r in every}
    fixes = [(r.account_id, r.cause_key or key_of.get((r.account_id, r.ticket_id)), r.made_us,
              r.ticket_id)
             for r in conn.execute(select(c.account_id, c.ticket_id, c.cause_key, c.made_us)
                                   .where(c.ticket_id.is_not(None), c.made_us.is_not(None),
                                          c.made_us < hi))]  # fmt: skip
    marks: Marks = {}
    for r in every:
        if not lo <= r.opened_us < hi:
            continue
        if r.category_key is None:
            marks[(r.account_id, r.ticket_id)] = (False, False)
            continue
        start = _window_start(r.opened_us, as_of.tz, as_of.policy.recurring_days)
        recurs = any(o.account_id == r.account_id and o.category_key == r.category_key
                     and (o.opened_us, o.ticket_id) < (r.opened_us, r.ticket_id)
                     and o.opened_us >= start for o in every)  # fmt: skip
        after = any(a == r.account_id and key == r.category_key and at < r.opened_us
                    and ticket != r.ticket_id for a, key, at, ticket in fixes)  # fmt: skip
        marks[(r.account_id, r.ticket_id)] = (recurs, after)
    return marks


@pytest.mark.parametrize("seed", [4, 5])
def test_the_marks_equal_those_of_every_complaint(db: Database, seed: int) -> None:
    logs = history(seed, size=400)
    fold(db, [[e for log in logs for e in log]])
    seen: dict[str, int] = {"recurring": 0, "after_fix": 0, "not": 0}
    with db.reading() as conn:
        for days, now in ((7, NOW), (30, NOW), (90, NOW), (30, NOW - timedelta(days=3))):
            for tz in ("UTC", "Asia/Seoul"):  # 3 days back, the story's last events are later
                as_of = AsOf(to_micros(now), ZoneInfo(tz), Policy(recurring_days=days))
                for back in (1, 8, 31, 60, 100, 250):
                    lo = to_micros(NOW - timedelta(days=back))
                    hi = to_micros(NOW + timedelta(days=1))
                    want = oracle(conn, lo, hi, as_of)
                    got = {(x.account_id, x.ticket_id): (x.recurring, x.after_fix)
                           for x in complaints.opened_between(conn, lo, hi, as_of)}  # fmt: skip
                    assert got == want, (days, tz, back)
                    for recurs, after in want.values():
                        seen["recurring"] += recurs
                        seen["after_fix"] += after
                        seen["not"] += not recurs and not after
                    _report_agrees(conn, lo, hi, as_of)
    assert all(seen.values()), seen  # the stories exercise every mark


def _report_agrees(conn: Connection, lo: int, hi: int, as_of: AsOf) -> None:
    """The complaints report's totals count the marks the oracle gives for its periods."""
    report: dict[str, Any] = complaints.read_complaints(
        conn, complaints.ComplaintQuery(lo, hi, "category", "month"), as_of)  # fmt: skip
    periods = report["periods"]
    want = oracle(conn, _micros(periods[0]["from"]), _micros(periods[-1]["to"]), as_of)
    totals = [p["total"] for p in periods]
    assert sum(x["opened"] for x in totals) == len(want)
    assert sum(x["recurring"] for x in totals) == sum(r for r, _ in want.values())
    assert sum(x["recurrences_after_fix"] for x in totals) == sum(a for _, a in want.values())
    # Resolutions count in their period, up to now only (a later one waits for its time).
    t = onevoice.TABLES.tickets.c
    every = conn.execute(select(t.opened_us, t.resolved_us).where(
        t.complaint.is_(True), t.resolved_us.is_not(None))).all()  # fmt: skip
    for p in periods:
        lo, hi = _micros(p["from"]), min(_micros(p["to"]), as_of.now_us + 1)
        mine = [(o, r) for o, r in every if lo <= r < hi]
        hours = [(r - o) / 3_600_000_000 for o, r in mine if o is not None and r >= o]
        median = round(statistics.median(hours), 2) if hours else None
        assert (p["total"]["resolved"], p["total"]["median_hours_to_resolve"]) == (
            len(mine), median), p["period"]  # fmt: skip


def _micros(text: str) -> int:
    return to_micros(datetime.fromisoformat(text.replace("Z", "+00:00")))
