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

from services.bootstrap import projections
from services.core.adapters.sql import Database
from services.core.codec import StoredEvent
from services.core.readmodels import kpi_figures
from services.core.readmodels.reports import kpi
from services.core.readmodels.timeline import to_micros
from services.core.view_rules import AsOf
from services.projections import derived
from services.projections.health_refresh import HealthRefresher
from tests.integration.test_view_fold import NOW, fold, history

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
                        for ga, gb in zip(a["groups"], b["groups"], strict=True):
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
