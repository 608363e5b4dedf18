"""The KPI report's groups and figures: which groups an account belongs to at a period's end
(``segment``: its current segment; ``owner``: each current owner, in any department;
``department``: the departments that own it or touched it before the end — none: the ``null``
group), in Python (``Directory``) and in SQL (``group_rows``), and the figures a period adds up
per group (``Figures``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, case, exists, func, select, union_all

from services.core.adapters.sql import among, id_chunks
from services.core.readmodels import accounts
from services.core.readmodels.reports import facts
from services.core.readmodels.reports.periods import Period
from services.core.readmodels.reports.targets import METRICS

GroupBy = Literal["department", "segment", "owner"]
Group = str | None


@dataclass(frozen=True)
class KpiQuery:
    from_us: int
    to_us: int
    group_by: GroupBy = "department"
    period: Period = "week"
    at_risk_below: int = 60


@dataclass
class Directory:
    """Who some accounts belong to, for grouping what is counted in Python."""

    segment: dict[str, Group]
    owners: dict[str, list[tuple[str, str]]]  # account -> [(department, employee)]
    firsts: dict[str, dict[str, int]]  # account -> department (or "*") -> first touch
    registered: dict[str, int | None]  # account -> registration time (None: not registered)

    def groups(self, account_id: str, group_by: GroupBy, end_us: int) -> list[Group]:
        if group_by == "segment":
            return [self.segment.get(account_id)]
        owners = self.owners.get(account_id, [])
        found: list[Group] = []
        if group_by == "owner":
            found += sorted({e for _, e in owners})
            return found or [None]
        touched = {d for d, at in self.firsts.get(account_id, {}).items() if at < end_us}
        found += sorted(({d for d, _ in owners} | touched) - {"*"})
        return found or [None]  # no department owns or touched it: the null group


def directory(conn: Connection, account_ids: Iterable[str],
               group_by: GroupBy | None = None) -> Directory:  # fmt: skip
    """The directory rows of ``account_ids``: those grouping by ``group_by`` needs (segments;
    owners; owners and first touches), or all of them."""
    a, o, f = accounts.TABLES.accounts, accounts.TABLES.owners, facts.TABLES.firsts
    d = Directory({}, defaultdict(list), defaultdict(dict), {})
    for chunk in id_chunks(conn, sorted(set(account_ids))):
        if group_by in (None, "segment"):
            for account_id, segment, registered, reg_us in conn.execute(
                    select(a.c.account_id, a.c.segment, a.c.registered, a.c.reg_us)
                    .where(among(conn, a.c.account_id, chunk))):  # fmt: skip
                d.segment[account_id] = segment
                d.registered[account_id] = reg_us if registered else None
        if group_by != "segment":
            for account_id, department, employee_id in conn.execute(
                    select(o.c.account_id, o.c.department, o.c.employee_id)
                    .where(among(conn, o.c.account_id, chunk))):  # fmt: skip
                d.owners[account_id].append((department, employee_id))
        if group_by in (None, "department"):
            stmt = select(f.c.account_id, f.c.department, f.c.first_us).where(
                among(conn, f.c.account_id, chunk))  # fmt: skip
            if group_by == "department":  # "*" (anyone) is no group
                stmt = stmt.where(f.c.department != "*")
            for account_id, department, first_us in conn.execute(stmt):
                d.firsts[account_id][department] = first_us
    return d


class Figures:
    """One period's figures per group: counts, and the CSAT scores' sum and count."""

    def __init__(self) -> None:
        self.counts: dict[Group, dict[str, int]] = defaultdict(lambda: dict.fromkeys(METRICS, 0))
        self.scores: dict[Group, list[int]] = defaultdict(lambda: [0, 0])

    def add(self, groups: Iterable[Group], metric: str, n: int = 1) -> None:
        for g in groups:
            self.counts[g][metric] += n

    def value(self, group: Group, metric: str) -> float | int | None:
        if metric == "csat_average":
            total, n = self.scores.get(group, (0, 0))
            return round(total / n, 2) if n else None  # = statistics.fmean of the scores
        return self.counts[group][metric]


def group_rows(group_by: GroupBy, end_us: int) -> Any:
    """``(account_id, grp)`` of every account with a group at a period ending at ``end_us``
    (``Directory.groups`` in SQL; an account with none is left out: joined from the left, it
    falls in the ``null`` group)."""
    a, o, f = accounts.TABLES.accounts.c, accounts.TABLES.owners.c, facts.TABLES.firsts.c
    if group_by == "segment":
        return select(a.account_id, a.segment.label("grp")).subquery("g")
    if group_by == "owner":
        return select(o.account_id, o.employee_id.label("grp")).distinct().subquery("g")
    # The departments that touched it before the end and do not own it (a UNION would sort
    # both sides to drop the duplicates).
    owns = exists().where(o.account_id == f.account_id, o.department == f.department)
    touched = select(f.account_id, f.department.label("grp")).where(
        f.first_us < end_us, f.department != "*", ~owns)  # fmt: skip
    return union_all(select(o.account_id, o.department.label("grp")), touched).subquery("g")


def grouper(d: Directory, group_by: GroupBy, end_us: int) -> Callable[[str], list[Group]]:
    cache: dict[str, list[Group]] = {}

    def groups_of(account_id: str) -> list[Group]:
        if account_id not in cache:
            cache[account_id] = d.groups(account_id, group_by, end_us)
        return cache[account_id]

    return groups_of


def count_if(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)
