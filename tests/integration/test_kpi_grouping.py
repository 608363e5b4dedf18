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
    """Each period's figures as the report made them before: per span, what fell in it up to
    its end (or now), counted under the directory's groups of its account at the span's end."""
    with db.reading() as conn:
        periods = [p for p in spans(lo, hi, "week", as_of) if p.start_us <= as_of.now_us]
        counted = kpi._Counted.load(conn, periods, as_of)
        accounts = (
            {c.account_id for c in counted.opened}
            | {h.account_id for h, _ in counted.signals}
            | {r.account_id for r in counted.csat}
        )
        d = directory(conn, accounts, group_by)
    out: list[dict] = []
    for span in periods:
        end, found = min(span.end_us, as_of.now_us), defaultdict(int)
        groups_of = grouper(d, group_by, span.end_us)
        for c in counted.opened:
            if span.start_us <= (c.opened_us or 0) < end:
                for g in groups_of(c.account_id):
                    found[(g, "complaints_opened")] += 1
                    found[(g, "complaints_recurring")] += c.recurring
        for h, due_us in counted.signals:
            if span.start_us <= h.at_us < end and as_of.past(h.followed_us) and \
                    (h.followed_us or 0) < due_us:  # fmt: skip
                for g in groups_of(h.account_id):
                    found[(g, "handoffs_followed_up")] += 1
        for r in counted.csat:
            if span.start_us <= r.at_us < end:
                for g in groups_of(r.account_id):
                    found[(g, kpi.CSAT)] += r.score
                    found[(g, "csat_n")] += 1
        out.append({k: v for k, v in found.items() if v})
    return out


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
    for tz, now in (("UTC", NOW), ("Asia/Seoul", NOW), ("UTC", NOW - timedelta(days=3))):
        as_of = AsOf(to_micros(now), ZoneInfo(tz))  # 3 days back: later events wait
        for group_by in ("department", "segment", "owner"):
            want = _oracle(db, group_by, as_of, lo, hi)
            assert _sql(db, group_by, as_of, lo, hi) == want, (tz, now, group_by)
            groups |= {(group_by, g) for period in want for g, _ in period}
    # The stories reach the null group (accounts no one owns), the departments that only
    # touched an account (the story's owners are all in sales) and each grouping's groups.
    assert ("owner", None) in groups and ("segment", None) in groups, groups
    assert ("segment", "smb") in groups and ("owner", "emp-park") in groups, groups
    assert {("department", d) for d in ("support", "success", "leadership")} <= groups, groups
