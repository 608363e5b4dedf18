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

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Integer,
    Text,
    and_,
    case,
    cast,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
)

from services.core.adapters.sql import json_rows
from services.core.readmodels import (
    accounts,
    health_cache,
    kpi_figures,
    onevoice,
    state_figures,
    timeline,
)
from services.core.readmodels.reports import complaints, facts, handoffs
from services.core.readmodels.reports.kpi_groups import (
    Figures,
    Group,
    GroupBy,
    KpiQuery,
    group_rows,
)
from services.core.readmodels.reports.kpi_states import states
from services.core.readmodels.reports.periods import Span, TooManyPeriods, spans
from services.core.readmodels.reports.targets import LOWER_IS_BETTER, METRICS, Targets
from services.core.view_rules import AsOf, iso

__all__ = ["KpiQuery", "read_kpi"]


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
    ends = [min(span.end_us, as_of.now_us) for span in periods]
    rules = health_cache.policy_key(as_of)
    policy = state_figures.key(rules)
    kept = kpi_figures.read(conn, [(p.start_us, p.end_us) for p in periods], query.group_by,
                            kpi_figures.key(rules), query.at_risk_below, as_of.now_us)  # fmt: skip
    all_figures = [Figures() for _ in periods]
    todo = [i for i, p in enumerate(periods) if (p.start_us, p.end_us) not in kept]
    if todo:  # the flows of the periods no kept row answers for (one statement each)
        lo, hi = todo[0], todo[-1] + 1
        computed = flows(conn, query.group_by, periods[lo:hi], ends[lo:hi], as_of)
        for i in todo:
            all_figures[i] = computed[i - lo]
    out = []
    for span, end, figures in zip(periods, ends, all_figures, strict=True):
        row = kept.get((span.start_us, span.end_us))
        if row is not None:
            figures = row.figures
        if row is None or not row.has_states:
            _add_states(conn, span, end, as_of, query, policy, figures)
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


def flows(conn: Connection, group_by: GroupBy, periods: Sequence[Span], ends: Sequence[int],
          as_of: AsOf) -> list[Figures]:  # fmt: skip
    """The flows of consecutive ``periods`` (``ends``: theirs, up to now), each period's
    counted in one statement for all of them."""
    all_figures = [Figures() for _ in periods]
    groups = group_rows(group_by, periods[-1].end_us)  # not by department: any end
    _touches(conn, periods[0].start_us, ends, group_by, groups, all_figures)
    _kept(conn, periods[0].start_us, ends, group_by, groups, all_figures)
    counted = _Counted.load(conn, periods, as_of)
    _grouped(conn, group_by, periods, counted.items(periods, ends, as_of), all_figures)
    return all_figures


def _add_states(conn: Connection, span: Span, end: int, as_of: AsOf, query: KpiQuery,
                policy: str, figures: Figures) -> None:  # fmt: skip
    """The period's states at ``end`` (its end, or now): the sums kept at a past end, else
    summed here."""
    kept = None
    if end < as_of.now_us:  # a past end: its sums may be kept
        kept = state_figures.read(conn, end, query.group_by, policy, query.at_risk_below)
    if kept is None:
        states(conn, replace(as_of, now_us=end), query, span.end_us, as_of.now_us,
               group_rows(query.group_by, span.end_us), figures)  # fmt: skip
    for group, counts in kept or ():
        for metric, n in counts.items():
            figures.add([group], metric, n)


@dataclass(frozen=True)
class PeriodFigures:
    """One period's figures as ``kpi_figures`` keeps them (see there)."""

    figures: Figures
    has_states: bool
    until_us: int
    depends_until_us: int


def period_figures(conn: Connection, span: Span, as_of: AsOf, group_by: GroupBy,
                   at_risk_below: int) -> PeriodFigures:  # fmt: skip
    """One period's figures as a request at ``as_of`` counts them: its flows, and its states
    when it has not ended; the moment they may change with no new event, and the latest moment
    a new fact changes them. Raises ``kpi_states.TooManyLacking`` for a period that has not
    ended while some account lacks a valid health row (its next change is not known). For such
    a period the caller holds the health cache still (``health_cache.held_still``)."""
    now = as_of.now_us
    (figures,) = flows(conn, group_by, [span], [min(span.end_us, now)], as_of)
    # A follow-up counts up to the end of the window of the period's last signal.
    settles = handoffs.window_end(span.end_us - 1, as_of)
    until = kpi_figures.END_OF_TIME if now >= settles else _next_event_after(conn, now)
    if now >= span.end_us:
        return PeriodFigures(figures, False, until, settles)
    # The caller holds the health cache still (``health_cache.held_still``): in its READ
    # COMMITTED transaction a row another refresher stored or claimed between these reads
    # would be left out of the sums or of ``until``.
    until = min(until, health_cache.next_change_of_all(conn, as_of))
    query = KpiQuery(span.start_us, span.end_us, group_by, "week", at_risk_below)
    states(conn, as_of, query, span.end_us, now, group_rows(group_by, span.end_us), figures,
           evaluate_up_to=0)  # fmt: skip
    return PeriodFigures(figures, True, until, kpi_figures.END_OF_TIME)


def _next_event_after(conn: Connection, now_us: int) -> int:
    """The earliest time at or after ``now_us`` of a fact a KPI figure counts or groups by
    (one at now counts once now has passed it; a later one is future-dated), or the end of
    time: every flow counts facts at their times, up to now. Each fact table is asked, not
    only the timeline: a read model may have parked an event another applied."""
    ov, rf = onevoice.TABLES, facts.TABLES
    columns = (timeline.TABLES.entries.c.occurred_us, rf.touches.c.at_us, rf.firsts.c.first_us,
               ov.commitments.c.made_us, ov.commitments.c.closed_us, ov.tickets.c.opened_us,
               ov.tickets.c.resolved_us, ov.csat.c.at_us, ov.signals.c.at_us,
               ov.contacts.c.at_us, accounts.TABLES.accounts.c.reg_us)  # fmt: skip
    found = [conn.execute(select(func.min(c)).where(c >= now_us)).scalar() for c in columns]
    return min((int(f) for f in found if f is not None), default=kpi_figures.END_OF_TIME)


def _known_groups(conn: Connection, group_by: GroupBy,
                  departments: Sequence[str]) -> list[Group]:  # fmt: skip
    """The groups shown with zeros when nothing is counted for them."""
    if group_by == "department":
        return list(departments)
    a, o = accounts.TABLES.accounts.c, accounts.TABLES.owners.c
    column = a.segment if group_by == "segment" else o.employee_id
    return list(conn.execute(select(column).distinct()).scalars())


def _period(column: Any, ends: Sequence[int]) -> Any:
    """The index of the period holding ``column``, of consecutive periods ending at ``ends``
    (a row before the first period's start is filtered out by the caller)."""
    return case(*((column < end, i) for i, end in enumerate(ends)), else_=None)


def _touches(conn: Connection, start_us: int, ends: Sequence[int], group_by: GroupBy,
             groups: Any, figures: Sequence[Figures]) -> None:  # fmt: skip
    """Accounts touched, and executive touches (event and account pairs), per period and
    group: by department, the touch's own department (``groups``: not by department, which
    are the same at every period's end)."""
    t = facts.TABLES.touches.c
    in_range = and_(t.at_us >= start_us, t.at_us < ends[-1])
    period = _period(t.at_us, ends).label("p")
    if group_by == "department":
        grp: Any = t.department
        source: Any = facts.TABLES.touches
    else:
        grp = groups.c.grp
        source = facts.TABLES.touches.outerjoin(groups, groups.c.account_id == t.account_id)
    # One scan for both: the executive touches as distinct "event account" pairs.
    pair = case((t.executive.is_(True), t.event_id + literal(" ") + t.account_id), else_=null())
    rows = select(period, grp.label("grp"), t.account_id, pair.label("pair")).select_from(
        source).where(in_range).subquery()  # fmt: skip
    for r in conn.execute(select(rows.c.p, rows.c.grp, func.count(rows.c.account_id.distinct()),
                                 func.count(rows.c.pair.distinct()))
                          .group_by(rows.c.p, rows.c.grp)):  # fmt: skip
        figures[r[0]].add([r[1]], "accounts_touched", int(r[2]))
        if r[3]:
            figures[r[0]].add([r[1]], "executive_touches", int(r[3]))


def _kept(conn: Connection, start_us: int, ends: Sequence[int], group_by: GroupBy,
          groups: Any, figures: Sequence[Figures]) -> None:  # fmt: skip
    """Commitments fulfilled in each period by their due time (or with none): by department,
    the committing department's."""
    t = onevoice.TABLES.commitments.c
    on_time = and_(t.closed_state == "fulfilled", t.closed_us >= start_us, t.closed_us < ends[-1],
                   or_(t.due_us.is_(None), t.closed_us <= t.due_us))  # fmt: skip
    period = _period(t.closed_us, ends).label("p")
    if group_by == "department":
        stmt = (select(period, t.department, func.count()).where(on_time)
                .group_by(period, t.department))  # fmt: skip
    else:
        stmt = (select(period, groups.c.grp, func.count())
                .select_from(onevoice.TABLES.commitments.outerjoin(
                    groups, groups.c.account_id == t.account_id))
                .where(on_time).group_by(period, groups.c.grp))  # fmt: skip
    for r in conn.execute(stmt):
        figures[r[0]].add([r[1]], "commitments_kept_on_time", int(r[2]))


@dataclass
class _Counted:
    """What is counted in Python, loaded once for every period: complaints opened (and
    recurring), handoffs with their first follow-ups, and CSAT scores."""

    opened: list[Any]  # complaints._Complaint
    signals: list[tuple[handoffs.Signal, int]]  # with their first follow-ups; deadlines
    csat: list[Any] = field(default_factory=list)  # rows: account_id, score, at_us

    @classmethod
    def load(cls, conn: Connection, periods: Sequence[Span], as_of: AsOf) -> _Counted:
        lo, hi = periods[0].start_us, min(periods[-1].end_us, as_of.now_us)
        opened = complaints.opened_between(conn, lo, hi, as_of)
        c = onevoice.TABLES.csat.c
        csat = conn.execute(select(c.account_id, c.score, c.at_us)
                            .where(c.at_us >= lo, c.at_us < hi)).all()  # fmt: skip
        signals = sorted(handoffs.signals_between(conn, lo, hi + 1, as_of, details=False),
                         key=lambda h: h.at_us)  # fmt: skip
        deadline = handoffs.Deadlines(as_of)
        return cls(opened, [(h, deadline(h)) for h in signals], list(csat))

    def items(self, periods: Sequence[Span], ends: Sequence[int],
              as_of: AsOf) -> list[tuple[int, str, str, int]]:  # fmt: skip
        """``(period, account, metric, value)`` of what is counted here, in the period it fell
        in (periods are consecutive; ``ends``: theirs, up to now): each complaint opened (and
        recurring), each signal followed up in time, each CSAT score (its value)."""
        starts = [span.start_us for span in periods]

        def period_of(at_us: int) -> int | None:
            i = bisect_right(starts, at_us) - 1
            return i if i >= 0 and at_us < ends[i] else None

        found: list[tuple[int, str, str, int]] = []
        for c in self.opened:
            i = period_of(c.opened_us or 0)
            if i is not None:
                found.append((i, c.account_id, "complaints_opened", 1))
                if c.recurring:
                    found.append((i, c.account_id, "complaints_recurring", 1))
        # The period's signals followed up in time — up to now, so a signal of the period's
        # last days followed up after the period ended still counts, in its own period.
        for h, due_us in self.signals:
            i = period_of(h.at_us)
            if i is not None and as_of.past(h.followed_us) and (h.followed_us or 0) < due_us:
                found.append((i, h.account_id, "handoffs_followed_up", 1))
        for r in self.csat:
            i = period_of(r.at_us)
            if i is not None:
                found.append((i, r.account_id, CSAT, int(r.score)))
        return found


CSAT = "csat"
_ITEMS = (("k", Integer), ("p", Integer), ("a", Text), ("m", Text), ("n", Integer),
          ("v", BigInteger), ("e", BigInteger))  # fmt: skip


def _grouped(conn: Connection, group_by: GroupBy, periods: Sequence[Span],
             items: Sequence[tuple[int, str, str, int]],
             figures: Sequence[Figures]) -> None:  # fmt: skip
    """Add ``items`` (``_Counted.items``) to each period's figures per group of its account at
    the period's end (``Directory.groups`` in SQL: an account in none is in the ``null``
    group), in one statement: the items, summed per period, account and metric, travel as one
    JSON parameter and come back summed per period, group and metric, where a directory read
    for their accounts and a Python loop per item and group cost more than the rest of the
    report."""
    summed: dict[tuple[int, str, str], list[int]] = {}
    for p, account, metric, value in items:
        counts = summed.setdefault((p, account, metric), [0, 0])
        counts[0] += 1
        counts[1] += value
    if not summed:
        return
    j = json_rows(conn, _ITEMS, [(k, p, a, m, n, v, periods[p].end_us) for k, ((p, a, m), (n, v))
                                 in enumerate(summed.items())])  # fmt: skip
    i = j.c
    a, o, f = accounts.TABLES.accounts.c, accounts.TABLES.owners.c, facts.TABLES.firsts.c
    always = cast(null(), BigInteger).label("since")
    if group_by == "segment":
        g: Any = select(a.account_id, a.segment.label("grp"), always)
    elif group_by == "owner":
        g = select(o.account_id, o.employee_id.label("grp"), always)
    else:  # its owners' departments, and those that touched it before the period's end
        g = union_all(select(o.account_id, o.department.label("grp"), always),
                      select(f.account_id, f.department, f.first_us)
                      .where(f.department != "*"))  # fmt: skip
    g = g.subquery("g")
    member = and_(g.c.account_id == i.a, or_(g.c.since.is_(None), g.c.since < i.e))
    # Each group of an item once (an owning department may have touched it too).
    x = (select(i.k, i.p, i.m, i.n, i.v, g.c.grp).select_from(j.outerjoin(g, member))
         .distinct().subquery("x").c)  # fmt: skip
    by_group = select(x.p, x.grp, x.m, func.sum(x.n), func.sum(x.v)).group_by(x.p, x.grp, x.m)
    for p, grp, metric, n, total in conn.execute(by_group):
        if metric == CSAT:
            figures[p].scores[grp][0] += int(total)
            figures[p].scores[grp][1] += int(n)
        else:
            figures[p].add([grp], metric, int(n))
