"""The KPI report's kept period figures (``kpi_figures``) answer exactly as counting does: for
random stories (future-dated events included), every grouping, weeks and months, at clocks
from the refresher's moment to days later (across local midnights, a period's end, the
future-dated events coming due), before and after a late batch of backdated events, the
report read with the kept rows equals the report counted without them.

Runs on both backends (SQLite and PostgreSQL) through the ``db`` fixture.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from services.bootstrap import migrate, projections
from services.core.adapters.sql import Database
from services.core.codec import StoredEvent
from services.core.events import parse_event
from services.core.readmodels import health_cache, kpi_figures
from services.core.readmodels.reports import kpi
from services.core.readmodels.timeline import to_micros
from services.core.view_rules import AsOf
from services.projections import derived
from services.projections.health_refresh import HealthRefresher
from tests.integration.test_view_fold import NOW, fold, history
from tests.samples import make_event

DEPARTMENTS = ("sales", "marketing", "support", "success", "leadership")
TZ = ZoneInfo("Asia/Seoul")


def _apply(db: Database, batch: Sequence[StoredEvent]) -> None:
    """One batch as the runner applies it: changes read first, derived state marked after."""
    with db.transaction() as conn:
        changes = derived.read_changes(conn, batch)
        for projection in projections():
            projection.apply(conn, batch)
        derived.mark(conn, changes)


def _report(db: Database, at: datetime, group_by: kpi.GroupBy, period: Any) -> dict[str, Any]:
    as_of = AsOf(to_micros(at), TZ)
    query = kpi.KpiQuery(to_micros(NOW - timedelta(days=45)), to_micros(NOW + timedelta(days=12)),
                         group_by, period)  # fmt: skip
    with db.reading() as conn:
        return kpi.read_kpi(conn, query, as_of, DEPARTMENTS)


def _answering(db: Database, at: datetime) -> int:
    with db.reading() as conn:
        return sum(1 for row in conn.execute(kpi_figures.TABLE.select())
                   if row.as_of_us <= to_micros(at) < row.until_us)  # fmt: skip


def _compare(db: Database, clocks: Sequence[datetime], monkeypatch: pytest.MonkeyPatch) -> int:
    """Every report at every clock, read with the kept rows and counted without; returns how
    many rows answered over the clocks."""
    used = 0
    for at in clocks:
        used += _answering(db, at)
        for group_by in ("department", "segment", "owner"):
            for period in ("week", "month"):
                kept = _report(db, at, group_by, period)
                with monkeypatch.context() as m:
                    m.setattr(kpi_figures, "read", lambda *a, **k: {})
                    counted = _report(db, at, group_by, period)
                if kept != counted:  # name the period, group and figure that differ
                    for a, b in zip(kept["periods"], counted["periods"], strict=True):
                        ga = {g["group"]: g["figures"] for g in a["groups"]}
                        gb = {g["group"]: g["figures"] for g in b["groups"]}
                        assert ga == gb, (at, group_by, period, a["period"], a["as_of"])
                assert kept == counted, (at, group_by, period)
    return used


@pytest.mark.parametrize("seed", [12])
def test_kept_period_figures_equal_the_counted(
    db: Database, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = [e for log in history(seed, size=400) for e in log]
    rng = random.Random(seed)
    late = set(rng.sample(range(len(events)), 25))
    fold(db, [[e for i, e in enumerate(events) if i not in late]])
    clock = [NOW + timedelta(minutes=1)]  # the story has events at NOW: they count after it
    refresher = HealthRefresher(db, lambda: AsOf(to_micros(clock[0]), TZ), history=(3, 2),
                                periods_again_s=0)  # fmt: skip
    refresher.refresh_all()
    with db.reading() as conn:
        rows = list(conn.execute(kpi_figures.TABLE.select()))
    # The current week and month and the 3 + 2 before them (a month may end where a week
    # does), each grouping; the current ones with their states.
    assert len({(r.start_us, r.end_us) for r in rows}) >= 6, rows
    assert {r.group_by for r in rows} == {"department", "segment", "owner"}
    assert any(r.has_states for r in rows) and not all(r.has_states for r in rows)
    # NOW + 2 h and + 10 h: the story's events dated up to 9 h after NOW come due.
    clocks = [
        NOW - timedelta(hours=1),
        clock[0],
        NOW + timedelta(hours=2),
        NOW + timedelta(hours=10),
        NOW + timedelta(days=1, hours=3),
        NOW + timedelta(days=8),
    ]
    used = _compare(db, clocks, monkeypatch)
    assert used >= len(rows), "the kept rows were not read"

    # A late batch of backdated events: the rows it changes go, the others still answer.
    _apply(db, [e for i, e in enumerate(events) if i in late])
    assert _answering(db, clock[0]) < len(rows)
    _compare(db, clocks[1::2], monkeypatch)
    clock[0] = NOW + timedelta(hours=2)
    refresher.refresh_all()
    assert _answering(db, clock[0]) >= len({(r.start_us, r.end_us) for r in rows}) * 3 - 3
    assert _compare(db, clocks[2:4], monkeypatch) > 0


def _events(*specs: tuple[str, timedelta, dict[str, Any]]) -> list[StoredEvent]:
    """One partition's records: ``(type, age before NOW, payload)``."""
    found = []
    for offset, (kind, age, payload) in enumerate(specs):
        body = make_event(kind, account_id="acct-k", occurred_at=(NOW - age).isoformat(),
                          payload={**make_event(kind)["payload"], **payload})  # fmt: skip
        found.append(StoredEvent(parse_event(body), body["event_id"], 0, offset, NOW))
    return found


def test_kept_figures_end_at_midnight_and_follow_a_late_side(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No future-dated event: a current period's figures answer until the health cache's next
    change (the business day's end); a batch dated now that changes an ended period (a
    commitment's made side, dated after its close was recorded, whose due time judges that
    close) deletes that period's figures, and a batch that changes only the current week
    leaves the settled periods' rows answering."""
    fold(db, [_events(
        ("account.registered", timedelta(days=60), {"owners": {"sales": "u-park"}}),
        ("sales.meeting_held", timedelta(days=40), {}),
        ("commitment.fulfilled", timedelta(days=35), {"commitment_id": "CM-k"}),
        ("sales.meeting_held", timedelta(days=10), {}),
        ("sales.meeting_held", timedelta(days=2), {}),
    )])  # fmt: skip
    clock = [NOW + timedelta(minutes=1)]
    refresher = HealthRefresher(db, lambda: AsOf(to_micros(clock[0]), TZ), history=(6, 2),
                                periods_again_s=0)  # fmt: skip
    refresher.refresh_all()
    midnight = to_micros(datetime(2026, 11, 23, 15, 0, tzinfo=NOW.tzinfo))  # 00:00 in Seoul
    with db.reading() as conn:
        rows = list(conn.execute(kpi_figures.TABLE.select()))
    current = [r for r in rows if r.has_states]
    assert current and all(r.until_us <= midnight for r in current), current
    assert all(r.until_us == kpi_figures.END_OF_TIME for r in rows if not r.has_states)
    before, after = NOW + timedelta(hours=13, minutes=59), NOW + timedelta(hours=14, minutes=1)
    _compare(db, [clock[0], before, after], monkeypatch)
    assert _answering(db, after) == _answering(db, before) - len(current)

    # A touch dated now changes the current week and month, and the last week's follow-ups
    # (its window is open): those rows go, the settled ones stay.
    _apply(db, _events(("sales.meeting_held", -timedelta(minutes=1), {}))[-1:])
    touched = to_micros(NOW + timedelta(minutes=1))
    with db.reading() as conn:
        stayed = {
            (r.start_us, r.end_us, r.group_by) for r in conn.execute(kpi_figures.TABLE.select())
        }
    assert stayed == {(r.start_us, r.end_us, r.group_by) for r in rows
                      if r.depends_until_us < touched}  # fmt: skip
    assert len(stayed) == len(rows) - len(current) - 3  # the last week's three groupings
    _compare(db, [clock[0] + timedelta(minutes=5)], monkeypatch)
    # The commitment's made side arrives now, due before its close 35 days ago.
    made = _events(
        (
            "commitment.made",
            -timedelta(minutes=2),
            {"commitment_id": "CM-k", "due_at": (NOW - timedelta(days=50)).isoformat()},
        )
    )[-1:]
    _apply(db, made)
    at = clock[0] + timedelta(minutes=5)
    _compare(db, [at], monkeypatch)
    with db.reading() as conn:
        left = [r for r in conn.execute(kpi_figures.TABLE.select())
                if r.as_of_us <= to_micros(at) < r.until_us]  # fmt: skip
    closed = to_micros(NOW - timedelta(days=35))
    assert not [r for r in left if r.start_us <= closed < r.end_us], left
    assert left, "the periods before the close still answer"


def test_the_health_cache_is_held_still_while_a_current_period_is_summed(pg_url: str) -> None:
    """PostgreSQL only (SQLite's write transaction excludes other writers already): the
    refresher sums a current period's states in READ COMMITTED statements, so it holds the
    health cache still — or, when another refresher is writing it, leaves the period for
    later at once rather than wait."""
    db = Database(pg_url)
    migrate(db)
    try:
        with db.transaction() as writer:
            writer.execute(health_cache.TABLE.delete())  # another refresher, writing
            with db.transaction() as conn:
                assert not health_cache.held_still(conn)
                conn.execute(text("SELECT 1"))  # the transaction goes on
        with db.transaction() as conn:
            assert health_cache.held_still(conn)
            with db.engine.connect() as other:
                other.execute(text("SET lock_timeout = '300ms'"))
                with pytest.raises(OperationalError):
                    other.execute(health_cache.TABLE.delete())  # waits for conn: not here
    finally:
        db.dispose()
