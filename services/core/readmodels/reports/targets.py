"""KPI targets: every ``kpi.target_set`` event is kept (``report_facts_targets``); the target of
a metric, group and period at a moment is the newest set at or before it (by occurred_at, then
log position). A figure meets its target when it is at least the target, or — for the metrics
where less is better (``LOWER_IS_BETTER``) — at most the target."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from services.core.events import KpiMetric
from services.core.readmodels.reports import facts
from services.core.view_rules import iso

METRICS: tuple[str, ...] = tuple(m.value for m in KpiMetric)
LOWER_IS_BETTER = frozenset({
    "accounts_neglected", "accounts_at_risk", "accounts_never_contacted", "complaints_opened",
    "complaints_recurring", "commitments_overdue", "conflicting_offers",
})  # fmt: skip


@dataclass(frozen=True)
class Target:
    target: float
    at_us: int
    event_id: str
    set_by: dict[str, Any]


@dataclass(frozen=True)
class Targets:
    """The targets of one grouping and period kind: ``(metric, group) -> targets, oldest
    first``."""

    by_key: dict[tuple[str, str], list[Target]]

    @classmethod
    def load(cls, conn: Connection, group_by: str, period: str) -> Targets:
        t = facts.TABLES.targets
        rows = conn.execute(
            select(t).where(t.c.group_by == group_by, t.c.period == period)
            .order_by(t.c.at_us, t.c.partition, t.c.offset)
        )  # fmt: skip
        found: dict[tuple[str, str], list[Target]] = {}
        for r in rows:
            found.setdefault((r.metric, r.group_name), []).append(
                Target(r.target, r.at_us, r.event_id, json.loads(r.set_by))
            )
        return cls(found)

    def at(self, metric: str, group: str | None, moment_us: int) -> Target | None:
        """The target in force at ``moment_us``."""
        if group is None:
            return None
        chosen = None
        for target in self.by_key.get((metric, group), []):
            if target.at_us <= moment_us:
                chosen = target
        return chosen

    def judge(self, metric: str, group: str | None, value: float | None,
              moment_us: int) -> dict[str, Any]:  # fmt: skip
        """``{value, target, met}``: ``target`` and ``met`` are null without a target (and
        ``met`` when there is no value)."""
        target = self.at(metric, group, moment_us)
        if target is None:
            return {"value": value, "target": None, "met": None}
        met = (
            None
            if value is None
            else (value <= target.target if metric in LOWER_IS_BETTER else value >= target.target)
        )
        return {"value": value, "target": target.target, "met": met,
                "target_event_id": target.event_id}  # fmt: skip


def read_targets(conn: Connection, now_us: int) -> list[dict[str, Any]]:
    """Every target in force now (the newest per metric, grouping, group and period)."""
    t = facts.TABLES.targets
    rows = conn.execute(select(t).where(t.c.at_us <= now_us)
                        .order_by(t.c.at_us, t.c.partition, t.c.offset))  # fmt: skip
    latest: dict[tuple[str, str, str, str], Any] = {}
    for r in rows:
        latest[(r.metric, r.group_by, r.group_name, r.period)] = r
    return [{"metric": r.metric, "group_by": r.group_by, "group": r.group_name,
             "period": r.period, "target": r.target,
             "lower_is_better": r.metric in LOWER_IS_BETTER, "set_at": iso(r.at_us),
             "set_by": json.loads(r.set_by), "event_id": r.event_id}
            for _, r in sorted(latest.items())]  # fmt: skip
