"""The KPI report's states at a moment — accounts never contacted, neglected and at risk,
conflicting offers, overdue commitments — per group: the view's rules over every account's
state, read from the state history (a past end) or the health cache (now) and summed in SQL,
the accounts neither holds evaluated here; and the sums the refresher keeps at past ends
(``state_figures``) computed the same way (``state_sums``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, and_, exists, func, or_, select, union

from services.core.readmodels import accounts, health_cache, state_history
from services.core.readmodels.reports import facts
from services.core.readmodels.reports.kpi_groups import (
    Figures,
    Group,
    GroupBy,
    KpiQuery,
    count_if,
    directory,
    group_rows,
    grouper,
)
from services.core.view_rules import NEGLECT_DAYS, AsOf

STATE_METRICS = ("accounts_never_contacted", "accounts_neglected", "accounts_at_risk",
                 "conflicting_offers", "commitments_overdue")  # fmt: skip
GROUP_BYS: tuple[GroupBy, ...] = ("department", "segment", "owner")


class TooManyLacking(Exception):
    """More accounts lack a kept state than the caller would evaluate."""


def state_sums(
    conn: Connection, end_us: int, as_of: AsOf, group_by: GroupBy, at_risk_below: int, *,
    evaluate_up_to: int,
) -> dict[Group, dict[str, int]]:  # fmt: skip
    """The state figures per group at the past end ``end_us`` (what ``state_figures`` keeps):
    raises ``TooManyLacking`` rather than evaluate more than ``evaluate_up_to`` accounts."""
    fig = Figures()
    query = KpiQuery(end_us, end_us, group_by, "week", at_risk_below)
    states(conn, replace(as_of, now_us=end_us), query, end_us, as_of.now_us,
            group_rows(group_by, end_us), fig, evaluate_up_to=evaluate_up_to)  # fmt: skip
    return {g: {m: counts[m] for m in STATE_METRICS} for g, counts in fig.counts.items()}


def states(conn: Connection, as_of: AsOf, query: KpiQuery, end_us: int, now_us: int,
            groups: Any, fig: Figures, *, evaluate_up_to: int | None = None) -> None:  # fmt: skip
    """The figures of the moment ``as_of``: the view's rules over every account's state (kept
    ones aggregated in SQL, the others evaluated here)."""
    rows, kept = _state_rows(as_of, now_us)
    a, f = accounts.TABLES.accounts, facts.TABLES.firsts.alias("anyone")
    anyone = and_(f.c.account_id == rows.c.account_id, f.c.department == "*")
    joined = rows.outerjoin(a, a.c.account_id == rows.c.account_id).outerjoin(f, anyone)
    existed = or_(and_(a.c.registered.is_(True), a.c.reg_us <= as_of.now_us),
                  f.c.first_us <= as_of.now_us)  # fmt: skip
    registered = and_(a.c.registered.is_(True), a.c.reg_us.is_not(None))
    last = rows.c.last_touch_us
    by_department = query.group_by == "department"
    stmt = select(
        groups.c.grp,
        count_if(and_(last.is_(None), registered)).label("never"),
        count_if(last < as_of.since(NEGLECT_DAYS)).label("neglected"),
        count_if(rows.c.score < query.at_risk_below).label("at_risk"),
        func.coalesce(func.sum(rows.c.conflicts), 0).label("conflicts"),
        func.coalesce(func.sum(rows.c.overdue), 0).label("overdue"),
    ).select_from(joined.outerjoin(groups, groups.c.account_id == rows.c.account_id)) \
        .where(existed).group_by(groups.c.grp)  # fmt: skip
    for r in conn.execute(stmt):
        g = [r.grp]
        fig.add(g, "accounts_never_contacted", int(r.never))
        fig.add(g, "accounts_neglected", int(r.neglected))
        fig.add(g, "accounts_at_risk", int(r.at_risk))
        fig.add(g, "conflicting_offers", int(r.conflicts))
        if not by_department:
            fig.add(g, "commitments_overdue", int(r.overdue))
    if by_department:  # the committing department's
        for (by,) in conn.execute(select(rows.c.overdue_by).select_from(joined)
                                  .where(existed, rows.c.overdue > 0)):  # fmt: skip
            for department, n in state_history.load_by(by).items():
                fig.add([department], "commitments_overdue", n)
    # The accounts neither the history nor the cache holds for this moment.
    x, d = accounts.TABLES.accounts.c, facts.TABLES.firsts.c
    lacking = sorted(set(conn.execute(union(
        select(x.account_id).where(~kept(x.account_id)),
        select(d.account_id).where(d.department == "*", ~kept(d.account_id)),  # every touched
    )).scalars()))  # fmt: skip
    if evaluate_up_to is not None and len(lacking) > evaluate_up_to:
        raise TooManyLacking(f"{len(lacking)} accounts lack a kept state")
    if lacking:
        _evaluated(conn, as_of, query, end_us, lacking, fig)


def _state_rows(as_of: AsOf, now_us: int) -> tuple[Any, Callable[[Any], Any]]:
    """The kept states at ``as_of`` (a past period's end: the state history; now: the health
    cache's valid rows), and a condition: an account has one."""
    if as_of.now_us < now_us:
        t: Any = state_history.TABLE
        ours: Any = and_(t.c.end_us == as_of.now_us,
                         t.c.policy == health_cache.policy_key(as_of))  # fmt: skip
    else:
        t, ours = health_cache.TABLE, health_cache.valid(as_of)
    rows = select(t.c.account_id, t.c.last_touch_us, t.c.score, t.c.conflicts, t.c.overdue,
                  t.c.overdue_by).where(ours).subquery("s")  # fmt: skip
    return rows, lambda account_id: exists().where(t.c.account_id == account_id, ours)


def _evaluated(conn: Connection, as_of: AsOf, query: KpiQuery, end_us: int,
               account_ids: list[str], fig: Figures) -> None:  # fmt: skip
    """The states of ``account_ids`` evaluated here, counted as the SQL above counts."""
    d = directory(conn, account_ids)
    groups_of = grouper(d, query.group_by, end_us)
    by_department = query.group_by == "department"
    since = as_of.since(NEGLECT_DAYS)
    for account_id, state in sorted(state_history.evaluate(conn, account_ids, as_of).items()):
        registered = d.registered.get(account_id)
        first = d.firsts.get(account_id, {}).get("*")
        if not ((registered is not None and registered <= as_of.now_us)
                or (first is not None and first <= as_of.now_us)):  # fmt: skip
            continue  # the account did not exist yet
        groups = groups_of(account_id)
        if state.last_touch_us is None:
            if registered is not None:
                fig.add(groups, "accounts_never_contacted")
        elif state.last_touch_us < since:
            fig.add(groups, "accounts_neglected")
        if state.score < query.at_risk_below:
            fig.add(groups, "accounts_at_risk")
        fig.add(groups, "conflicting_offers", state.conflicts)
        for department, n in state.overdue_by.items():
            fig.add([department] if by_department else groups, "commitments_overdue", n)
