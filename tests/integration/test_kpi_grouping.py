"""The KPI report sums what it counts in Python (complaints opened and recurring, handoffs
followed up, CSAT scores) per group in one SQL statement (``kpi._grouped``); the directory's
own rule in Python (``Directory.groups``: segment, each owner, each department that owns the
account or touched it before the period's end, else the ``null`` group) is the oracle, for
random stories, every grouping and both backends.

Runs on both backends (SQLite and PostgreSQL) through the ``db`` fixture.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from services.core.adapters.sql import Database
from services.core.codec import StoredEvent
from services.core.events import parse_event
from services.core.readmodels.reports import kpi
from services.core.readmodels.reports.kpi_groups import Figures, directory, grouper
from services.core.readmodels.reports.periods import spans
from services.core.readmodels.timeline import to_micros
from services.core.view_rules import AsOf
from tests.integration.test_view_fold import NOW, fold, history
from tests.samples import make_event


def _oracle(db: Database, group_by: kpi.GroupBy, as_of: AsOf, lo: int, hi: int) -> list[dict]:
    with db.reading() as conn:
        periods = [p for p in spans(lo, hi, "week", as_of) if p.start_us <= as_of.now_us]
        ends = [min(p.end_us, as_of.now_us) for p in periods]
        items = kpi._Counted.load(conn, periods, as_of).items(periods, ends, as_of)
        d = directory(conn, {a for _, a, _, _ in items}, group_by)
        out: list[dict] = [defaultdict(int) for _ in periods]
        for p, account, metric, value in items:
            for g in grouper(d, group_by, periods[p].end_us)(account):
                out[p][(g, metric)] += value if metric == kpi.CSAT else 1
                if metric == kpi.CSAT:
                    out[p][(g, "csat_n")] += 1
        return [dict(x) for x in out]


def _sql(db: Database, group_by: kpi.GroupBy, as_of: AsOf, lo: int, hi: int) -> list[dict]:
    with db.reading() as conn:
        periods = [p for p in spans(lo, hi, "week", as_of) if p.start_us <= as_of.now_us]
        ends = [min(p.end_us, as_of.now_us) for p in periods]
        items = kpi._Counted.load(conn, periods, as_of).items(periods, ends, as_of)
        figures = [Figures() for _ in periods]
        kpi._grouped(conn, group_by, periods, items, figures)
    out: list[dict] = []
    for fig in figures:
        found = {(g, m): n for g, counts in fig.counts.items() for m, n in counts.items() if n}
        for g, (total, n) in fig.scores.items():
            found[(g, kpi.CSAT)], found[(g, "csat_n")] = total, n
        out.append(found)
    return out


@pytest.mark.parametrize("seed", [6, 7])
def test_sql_grouping_equals_the_directory_rule(db: Database, seed: int) -> None:
    logs = history(seed, size=400)
    # An account no one registered (no segment, no owner): the null group of both.
    for days, kind, payload in (
        (9, "support.ticket_opened", {"ticket_id": "T-x", "subject": "s", "category": "sso",
                                      "severity": "low", "complaint": True}),
        (3, "support.csat_recorded", {"score": 2}),
    ):  # fmt: skip
        when = (NOW - timedelta(days=days)).isoformat()
        event = parse_event(make_event(kind, account_id="acct-x", payload=payload,
                                       actor={"id": "emp-kim", "department": "support"},
                                       occurred_at=when))  # fmt: skip
        logs[0].append(StoredEvent(event, str(event.event_id), 0, len(logs[0]), NOW))
    fold(db, [[e for log in logs for e in log]])
    lo, hi = to_micros(NOW - timedelta(days=120)), to_micros(NOW + timedelta(days=1))
    groups: set[object] = set()
    for tz in ("UTC", "Asia/Seoul"):
        as_of = AsOf(to_micros(NOW), ZoneInfo(tz))
        for group_by in ("department", "segment", "owner"):
            want = _oracle(db, group_by, as_of, lo, hi)
            assert _sql(db, group_by, as_of, lo, hi) == want, (tz, group_by)
            groups |= {(group_by, g) for period in want for g, _ in period}
    # The stories reach the null group (accounts no one owns), the departments that only
    # touched an account (the story's owners are all in sales) and each grouping's groups.
    assert ("owner", None) in groups and ("segment", None) in groups, groups
    assert ("segment", "smb") in groups and ("owner", "emp-park") in groups, groups
    assert {("department", d) for d in ("support", "success", "leadership")} <= groups, groups
