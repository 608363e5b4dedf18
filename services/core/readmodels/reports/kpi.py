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

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from sqlalchemy import Connection, and_, select

from services.core.readmodels import accounts, health_cache, onevoice, state_history, view_facts
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
    """Who each account belongs to, for grouping."""

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


def _directory(conn: Connection) -> _Directory:
    a, o, f = accounts.TABLES.accounts, accounts.TABLES.owners, facts.TABLES.firsts
    segment, registered = {}, {}
    for r in conn.execute(select(a.c.account_id, a.c.segment, a.c.registered, a.c.reg_us)):
        segment[r.account_id] = r.segment
        registered[r.account_id] = r.reg_us if r.registered else None
    owners: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for o_row in conn.execute(select(o.c.account_id, o.c.department, o.c.employee_id)):
        owners[o_row.account_id].append((o_row.department, o_row.employee_id))
    firsts: dict[str, dict[str, int]] = defaultdict(dict)
    for f_row in conn.execute(select(f.c.account_id, f.c.department, f.c.first_us)):
        firsts[f_row.account_id][f_row.department] = f_row.first_us
    return _Directory(segment, owners, firsts, registered)


class _Figures:
    """One period's figures per group: counts, and the values averaged."""

    def __init__(self) -> None:
        self.counts: dict[Group, dict[str, int]] = defaultdict(lambda: dict.fromkeys(METRICS, 0))
        self.scores: dict[Group, list[int]] = defaultdict(list)

    def add(self, groups: Iterable[Group], metric: str, n: int = 1) -> None:
        for g in groups:
            self.counts[g][metric] += n

    def value(self, group: Group, metric: str) -> float | int | None:
        if metric == "csat_average":
            scores = self.scores.get(group)
            return round(statistics.fmean(scores), 2) if scores else None
        return self.counts[group][metric]


MAX_PERIODS = 26
"""At most this many periods per KPI report: each evaluates every account at its end."""


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
    directory = _directory(conn)
    targets = Targets.load(conn, query.group_by, query.period)
    known = _known_groups(query.group_by, directory, departments)
    out = []
    for span in periods:
        end = min(span.end_us, as_of.now_us)
        figures = _Figures()
        groups_of = _grouper(directory, query.group_by, span.end_us)
        _flows(conn, span, end, as_of, query, figures, groups_of)
        _states(
            conn, replace(as_of, now_us=end), query, directory, figures, groups_of, as_of.now_us
        )
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


def _known_groups(group_by: GroupBy, d: _Directory, departments: Sequence[str]) -> list[Group]:
    if group_by == "department":
        return list(departments)
    if group_by == "segment":
        return list(set(d.segment.values()))
    return list({e for owners in d.owners.values() for _, e in owners})


def _grouper(d: _Directory, group_by: GroupBy, end_us: int) -> Callable[[str], list[Group]]:
    cache: dict[str, list[Group]] = {}

    def groups_of(account_id: str) -> list[Group]:
        if account_id not in cache:
            cache[account_id] = d.groups(account_id, group_by, end_us)
        return cache[account_id]

    return groups_of


def _flows(conn: Connection, span: Span, end: int, as_of: AsOf, query: KpiQuery,
           fig: _Figures, groups_of: Callable[[str], list[Group]]) -> None:  # fmt: skip
    t = facts.TABLES.touches
    by_department = query.group_by == "department"
    touched: set[tuple[Group, str]] = set()
    executive: set[tuple[Group, str, str]] = set()
    rows = conn.execute(select(t.c.event_id, t.c.account_id, t.c.department, t.c.executive)
                        .where(and_(t.c.at_us >= span.start_us, t.c.at_us < end)))  # fmt: skip
    for r in rows:
        groups = [r.department] if by_department else groups_of(r.account_id)
        touched |= {(g, r.account_id) for g in groups}
        if r.executive:
            executive |= {(g, r.event_id, r.account_id) for g in groups}
    for g, _ in touched:
        fig.add([g], "accounts_touched")
    for g, _, _ in executive:
        fig.add([g], "executive_touches")
    _complaints(conn, span, end, as_of, fig, groups_of)
    _kept(conn, span, end, by_department, fig, groups_of)
    _handoffs(conn, span, end, as_of, fig, groups_of)
    c = onevoice.TABLES.csat
    in_span = and_(c.c.at_us >= span.start_us, c.c.at_us < end)
    for score in conn.execute(select(c.c.account_id, c.c.score).where(in_span)):
        for g in groups_of(score.account_id):
            fig.scores[g].append(score.score)


def _complaints(conn: Connection, span: Span, end: int, as_of: AsOf, fig: _Figures,
                groups_of: Callable[[str], list[Group]]) -> None:  # fmt: skip
    for c in complaints.opened_between(conn, span.start_us, end, as_of):
        groups = groups_of(c.account_id)
        fig.add(groups, "complaints_opened")
        if c.recurring:
            fig.add(groups, "complaints_recurring")


def _kept(conn: Connection, span: Span, end: int, by_department: bool, fig: _Figures,
          groups_of: Callable[[str], list[Group]]) -> None:  # fmt: skip
    t = onevoice.TABLES.commitments
    rows = conn.execute(
        select(t.c.account_id, t.c.department, t.c.due_us, t.c.closed_us).where(
            t.c.closed_state == "fulfilled", t.c.closed_us >= span.start_us, t.c.closed_us < end
        )
    )
    for r in rows:
        if r.due_us is None or r.closed_us <= r.due_us:
            fig.add([r.department] if by_department else groups_of(r.account_id),
                    "commitments_kept_on_time")  # fmt: skip


def _handoffs(conn: Connection, span: Span, end: int, as_of: AsOf, fig: _Figures,
              groups_of: Callable[[str], list[Group]]) -> None:  # fmt: skip
    """The period's signals followed up in time — up to now, so a signal of the period's last
    days followed up after the period ended still counts, in its own period."""
    for account_id, h in view_facts.handoffs_since(conn, span.start_us, as_of):
        if h.at_us < end and as_of.past(h.followed_us) and \
                (h.followed_us or 0) < handoffs.deadline(h, as_of):  # fmt: skip
            fig.add(groups_of(account_id), "handoffs_followed_up")


def _states(conn: Connection, as_of: AsOf, query: KpiQuery, d: _Directory, fig: _Figures,
            groups_of: Callable[[str], list[Group]], now_us: int) -> None:  # fmt: skip
    """The figures of the moment ``as_of``: the view's rules over every account's facts."""
    by_department = query.group_by == "department"
    since = as_of.since(NEGLECT_DAYS)
    for account_id, state in sorted(_states_at(conn, as_of, d, now_us).items()):
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


def _states_at(conn: Connection, as_of: AsOf, d: _Directory,
               now_us: int) -> dict[str, state_history.State]:  # fmt: skip
    """Every account's state at ``as_of``: a past period's end from the state history, now
    from the health cache, and the accounts either lacks evaluated here."""
    if as_of.now_us < now_us:
        found = state_history.read(conn, as_of.now_us, as_of)
    else:
        h = health_cache.TABLE.c
        found = {r.account_id: state_history.of_row(r) for r in conn.execute(
            select(h.account_id, h.last_touch_us, h.score, h.conflicts, h.overdue_by)
            .where(health_cache.valid(as_of)))}  # fmt: skip
    lacking = sorted((set(d.registered) | set(d.firsts)) - set(found))
    if lacking:
        found.update(state_history.evaluate(conn, lacking, as_of))
    return found
