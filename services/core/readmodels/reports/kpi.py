"""``GET /v1/reports/kpi``: the joint KPIs per week or month, by department, segment or owner,
each beside its target.

Two kinds of figure:

- **Flows** count what happened in the period, from indexed time-range reads: accounts touched,
  executive touches, complaints opened and recurring (``complaints``), commitments kept on time
  (fulfilled in the period, by their due time or with none), handoffs followed up in time
  (signals of the period, ``handoffs``), the CSAT average.
- **States** are the view's own rules (``state_history.of_facts``: ``health`` and the offer and
  commitment rules) at the period's end (for the current period: now), so a figure equals what
  the accounts list and the coverage report show for that moment: accounts neglected, at risk
  and never contacted, overdue commitments and conflicting offers. They are read from the
  state history (past ends) and the health cache (now), which the refresher keeps; an account
  neither holds is evaluated in the request, so an end older than the history kept
  (``ONEVOICE_KPI_HISTORY_WEEKS`` / ``_MONTHS``) costs one evaluation of every account.

Groups: ``segment`` (the account's current segment), ``owner`` (each current owner of the
account, in any department) and ``department``. A department's accounts are those it owns or
touched before the period's end (an account none owns or touched is in the ``null`` group); its
touches and executive touches are its own people's, and its commitments those its people made.
Groups with no accounts show zeros.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from sqlalchemy import Connection, and_, case, exists, func, or_, select, union, union_all

from services.core.adapters.sql import among, id_chunks
from services.core.readmodels import (
    accounts,
    health_cache,
    onevoice,
    state_figures,
    state_history,
)
from services.core.readmodels.reports import complaints, facts, handoffs
from services.core.readmodels.reports.periods import Period, Span, TooManyPeriods, spans
from services.core.readmodels.reports.targets import LOWER_IS_BETTER, METRICS, Targets
from services.core.view_rules import NEGLECT_DAYS, AsOf, iso

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
class _Directory:
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


def _directory(conn: Connection, account_ids: Iterable[str],
               group_by: GroupBy | None = None) -> _Directory:  # fmt: skip
    """The directory rows of ``account_ids``: those grouping by ``group_by`` needs (segments;
    owners; owners and first touches), or all of them."""
    a, o, f = accounts.TABLES.accounts, accounts.TABLES.owners, facts.TABLES.firsts
    d = _Directory({}, defaultdict(list), defaultdict(dict), {})
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
            for account_id, department, first_us in conn.execute(
                    select(f.c.account_id, f.c.department, f.c.first_us)
                    .where(among(conn, f.c.account_id, chunk))):  # fmt: skip
                d.firsts[account_id][department] = first_us
    return d


class _Figures:
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


MAX_PERIODS = 26
"""At most this many periods per KPI report."""


def read_kpi(conn: Connection, query: KpiQuery, as_of: AsOf,
             departments: Sequence[str]) -> dict[str, Any]:  # fmt: skip
    """Raises ``TooManyPeriods`` past ``MAX_PERIODS``."""
    periods = [
        p
        for p in spans(query.from_us, query.to_us, query.period, as_of)
        if p.start_us <= as_of.now_us
    ]  # a period that has not begun has no figures
    if len(periods) > MAX_PERIODS:
        raise TooManyPeriods(
            f"at most {MAX_PERIODS} periods per KPI report (got"
            f" {len(periods)} {query.period}s); choose a shorter range"
        )
    targets = Targets.load(conn, query.group_by, query.period)
    known = _known_groups(conn, query.group_by, departments)
    counted = _Counted.load(conn, periods, as_of) if periods else _Counted([], [])
    directory = _directory(conn, counted.accounts(), query.group_by)
    out = []
    for span in periods:
        end = min(span.end_us, as_of.now_us)
        figures = _Figures()
        groups = _group_rows(query.group_by, span.end_us)
        groups_of = _grouper(directory, query.group_by, span.end_us)
        _touches(conn, span, end, query.group_by, groups, figures)
        _kept(conn, span, end, query.group_by, groups, figures)
        counted.add(span, end, as_of, figures, groups_of)
        kept = None
        if end < as_of.now_us:  # a past end: its sums may be kept
            kept = state_figures.read(conn, end, query.group_by,
                                      state_figures.key(health_cache.policy_key(as_of)),
                                      query.at_risk_below)  # fmt: skip
        if kept is None:
            _states(conn, replace(as_of, now_us=end), query, span.end_us, as_of.now_us, groups,
                    figures)  # fmt: skip
        for group, counts in kept or ():
            for metric, n in counts.items():
                figures.add([group], metric, n)
        names = sorted(set(known) | set(figures.counts) | set(figures.scores),
                       key=lambda g: (g is None, g or ""))  # fmt: skip
        out.append({
            "period": span.label, "from": iso(span.start_us), "to": iso(span.end_us),
            "as_of": iso(end),
            "groups": [{"group": g, "figures": {
                m: targets.judge(m, g, figures.value(g, m), end) for m in METRICS}}
                for g in names],
        })  # fmt: skip
    return {"from": iso(query.from_us), "to": iso(query.to_us), "period": query.period,
            "group_by": query.group_by, "time_zone": as_of.tz.key,
            "lower_is_better": sorted(LOWER_IS_BETTER), "periods": out}  # fmt: skip


def _known_groups(conn: Connection, group_by: GroupBy,
                  departments: Sequence[str]) -> list[Group]:  # fmt: skip
    """The groups shown with zeros when nothing is counted for them."""
    if group_by == "department":
        return list(departments)
    a, o = accounts.TABLES.accounts.c, accounts.TABLES.owners.c
    column = a.segment if group_by == "segment" else o.employee_id
    return list(conn.execute(select(column).distinct()).scalars())


def _group_rows(group_by: GroupBy, end_us: int) -> Any:
    """``(account_id, grp)`` of every account with a group at a period ending at ``end_us``
    (``_Directory.groups`` in SQL; an account with none is left out: joined from the left, it
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


def _grouper(d: _Directory, group_by: GroupBy, end_us: int) -> Callable[[str], list[Group]]:
    cache: dict[str, list[Group]] = {}

    def groups_of(account_id: str) -> list[Group]:
        if account_id not in cache:
            cache[account_id] = d.groups(account_id, group_by, end_us)
        return cache[account_id]

    return groups_of


def _count(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _touches(conn: Connection, span: Span, end: int, group_by: GroupBy, groups: Any,
             fig: _Figures) -> None:  # fmt: skip
    """Accounts touched, and executive touches (event and account pairs), per group: by
    department, the touch's own department."""
    t = facts.TABLES.touches.c
    in_span = and_(t.at_us >= span.start_us, t.at_us < end)
    if group_by == "department":
        grp: Any = t.department
        source: Any = facts.TABLES.touches
    else:
        grp = groups.c.grp
        source = facts.TABLES.touches.outerjoin(groups, groups.c.account_id == t.account_id)
    touched = (select(grp.label("grp"), t.account_id).select_from(source).where(in_span)
               .distinct().subquery())  # fmt: skip
    for r in conn.execute(select(touched.c.grp, func.count()).group_by(touched.c.grp)):
        fig.add([r[0]], "accounts_touched", int(r[1]))
    executive = (select(grp.label("grp"), t.event_id, t.account_id).select_from(source)
                 .where(in_span, t.executive.is_(True)).distinct().subquery())  # fmt: skip
    for r in conn.execute(select(executive.c.grp, func.count()).group_by(executive.c.grp)):
        fig.add([r[0]], "executive_touches", int(r[1]))


def _kept(conn: Connection, span: Span, end: int, group_by: GroupBy, groups: Any,
          fig: _Figures) -> None:  # fmt: skip
    """Commitments fulfilled in the period by their due time (or with none): by department,
    the committing department's."""
    t = onevoice.TABLES.commitments.c
    on_time = and_(t.closed_state == "fulfilled", t.closed_us >= span.start_us, t.closed_us < end,
                   or_(t.due_us.is_(None), t.closed_us <= t.due_us))  # fmt: skip
    if group_by == "department":
        stmt = select(t.department, func.count()).where(on_time).group_by(t.department)
    else:
        stmt = (select(groups.c.grp, func.count())
                .select_from(onevoice.TABLES.commitments.outerjoin(
                    groups, groups.c.account_id == t.account_id))
                .where(on_time).group_by(groups.c.grp))  # fmt: skip
    for r in conn.execute(stmt):
        fig.add([r[0]], "commitments_kept_on_time", int(r[1]))


@dataclass
class _Counted:
    """What is counted in Python, loaded once for every period: complaints opened (and
    recurring), handoffs with their first follow-ups, and CSAT scores."""

    opened: list[Any]  # complaints._Complaint
    signals: list[handoffs.Signal]  # with their first follow-ups
    csat: list[Any] = field(default_factory=list)  # rows: account_id, score, at_us

    @classmethod
    def load(cls, conn: Connection, periods: Sequence[Span], as_of: AsOf) -> _Counted:
        lo, hi = periods[0].start_us, min(periods[-1].end_us, as_of.now_us)
        opened = complaints.opened_between(conn, lo, hi, as_of)
        c = onevoice.TABLES.csat.c
        csat = conn.execute(select(c.account_id, c.score, c.at_us)
                            .where(c.at_us >= lo, c.at_us < hi)).all()  # fmt: skip
        return cls(opened, handoffs.signals_between(conn, lo, hi + 1, as_of), list(csat))

    def accounts(self) -> set[str]:
        return {c.account_id for c in self.opened} | {h.account_id for h in self.signals} | \
            {r.account_id for r in self.csat}  # fmt: skip

    def add(self, span: Span, end: int, as_of: AsOf, fig: _Figures,
            groups_of: Callable[[str], list[Group]]) -> None:  # fmt: skip
        for c in self.opened:
            if span.start_us <= (c.opened_us or 0) < end:
                fig.add(groups_of(c.account_id), "complaints_opened")
                if c.recurring:
                    fig.add(groups_of(c.account_id), "complaints_recurring")
        # The period's signals followed up in time — up to now, so a signal of the period's
        # last days followed up after the period ended still counts, in its own period.
        for h in self.signals:
            if span.start_us <= h.at_us < end and as_of.past(h.followed_us) and \
                    (h.followed_us or 0) < handoffs.deadline(h, as_of):  # fmt: skip
                fig.add(groups_of(h.account_id), "handoffs_followed_up")
        for r in self.csat:
            if span.start_us <= r.at_us < end:
                for g in groups_of(r.account_id):
                    fig.scores[g][0] += r.score
                    fig.scores[g][1] += 1


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
    fig = _Figures()
    query = KpiQuery(end_us, end_us, group_by, "week", at_risk_below)
    _states(conn, replace(as_of, now_us=end_us), query, end_us, as_of.now_us,
            _group_rows(group_by, end_us), fig, evaluate_up_to=evaluate_up_to)  # fmt: skip
    return {g: {m: counts[m] for m in STATE_METRICS} for g, counts in fig.counts.items()}


def _states(conn: Connection, as_of: AsOf, query: KpiQuery, end_us: int, now_us: int,
            groups: Any, fig: _Figures, *, evaluate_up_to: int | None = None) -> None:  # fmt: skip
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
        _count(and_(last.is_(None), registered)).label("never"),
        _count(last < as_of.since(NEGLECT_DAYS)).label("neglected"),
        _count(rows.c.score < query.at_risk_below).label("at_risk"),
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
        select(d.account_id).where(~kept(d.account_id)),
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
               account_ids: list[str], fig: _Figures) -> None:  # fmt: skip
    """The states of ``account_ids`` evaluated here, counted as the SQL above counts."""
    d = _directory(conn, account_ids)
    groups_of = _grouper(d, query.group_by, end_us)
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
