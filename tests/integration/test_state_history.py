"""The state history answers exactly what evaluating every account at a period's end answers,
whatever arrives late.

The oracle is ``state_history.evaluate`` over the current facts (what the KPI report computed for
every account and period before the history). Random stories (``test_view_fold.history``: every
event kind, lifecycle ids used again — a commitment made twice, a renewal rescheduled — related
accounts, future-dated events) arrive in random batches, so most batches hold events older than
ends already kept. The batches go through the projector's own marking (``derived``); between
them the refresher fills the history part way or fully. After every batch, every kept state must
equal the oracle, and the KPI report read through the history and the health cache must equal
the report computed with neither.

Runs on both backends (SQLite and PostgreSQL) through the ``db`` fixture.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Connection, select

from services.bootstrap import migrate, projections
from services.core.adapters.sql import Database
from services.core.codec import StoredEvent
from services.core.events import parse_event
from services.core.readmodels import accounts, health_cache, state_figures, state_history
from services.core.readmodels.reports import kpi, kpi_states
from services.core.readmodels.timeline import to_micros
from services.core.view_rules import AsOf, Policy
from services.projections import derived
from services.projections.health_refresh import HealthRefresher
from tests.integration.test_view_fold import NOW, fold, history
from tests.samples import make_event

DEPARTMENTS = ("sales", "marketing", "support", "success", "leadership")
CLOCK = NOW + timedelta(days=2, hours=5)


class _Rollback(Exception):
    pass


def _deliver(db: Database, views: list[Any], batch: list[StoredEvent]) -> None:
    """Apply ``batch`` as the live projector does: changes read first, marked after."""
    with db.transaction() as conn:
        changes = derived.read_changes(conn, batch)
        for view in views:
            view.apply(conn, batch)
        derived.mark(conn, changes)


def _kept(conn: Connection) -> dict[tuple[int, str], state_history.State]:
    return {(r.end_us, r.account_id): state_history.of_row(r)
            for r in conn.execute(select(state_history.TABLE))}  # fmt: skip


def _ids(conn: Connection) -> list[str]:
    return list(conn.execute(select(accounts.TABLES.accounts.c.account_id)).scalars())


def _check_kept(db: Database, as_of: AsOf) -> int:
    """Every kept state equals the oracle at its end; returns how many were checked."""
    with db.reading() as conn:
        kept = _kept(conn)
        by_end: dict[int, dict[str, state_history.State]] = {}
        for end, _ in kept:
            if end not in by_end:
                by_end[end] = state_history.evaluate(conn, _ids(conn),
                                                     replace(as_of, now_us=end))  # fmt: skip
        for (end, account_id), state in kept.items():
            assert state == by_end[end][account_id], (end, account_id, state)
    return len(kept)


def _check_figures(db: Database, as_of: AsOf) -> int:
    """The kept sums per group at the latest and the oldest end kept equal the sums over the
    oracle's states there (every end checked costs an evaluation of every account per grouping;
    a change at or before an end changes every later one, so the latest is the one a missed
    forget shows at first); returns how many were checked."""
    with db.reading() as conn:
        kept = [(r.end_us, r.group_by, r.at_risk_below, state_figures.read(
            conn, r.end_us, r.group_by, r.policy, r.at_risk_below))
            for r in conn.execute(select(state_figures.TABLE))]  # fmt: skip
    if not kept:
        return 0
    ends = {min(e for e, *_ in kept), max(e for e, *_ in kept)}
    kept = [k for k in kept if k[0] in ends]
    try:
        with db.transaction() as conn:
            derived.mark_all(conn)  # nothing kept: every account evaluated
            for end, group_by, below, figures in kept:
                oracle = kpi_states.state_sums(conn, end, as_of, group_by, below,
                                               evaluate_up_to=10**6)  # fmt: skip
                assert dict(figures or []) == oracle, (end, group_by)
            raise _Rollback
    except _Rollback:
        pass
    return len(kept)


def _reports(conn: Connection, as_of: AsOf) -> list[Any]:
    start = to_micros(CLOCK - timedelta(days=120))
    end = to_micros(CLOCK + timedelta(days=1))
    return [kpi.read_kpi(conn, kpi.KpiQuery(start, end, group_by, period), as_of, DEPARTMENTS)
            for group_by in ("department", "segment", "owner")
            for period in ("week", "month")]  # fmt: skip


def _check_reports(db: Database, as_of: AsOf) -> None:
    """The KPI report through the history and the cache equals the one computed without."""
    with db.reading() as conn:
        through = _reports(conn, as_of)
    try:
        with db.transaction() as conn:
            derived.mark_all(conn)  # neither holds anything for as_of: every account evaluated
            oracle = _reports(conn, as_of)
            raise _Rollback
    except _Rollback:
        pass
    assert through == oracle


SEEDS = {"embedded": (1, 2, 3), "kafka": (1,)}
ZONES = {"embedded": ("UTC", "Asia/Seoul", "America/New_York"), "kafka": ("America/New_York",)}


def test_kept_states_equal_the_evaluation_whatever_arrives_late(db: Database,
                                                                backend: str) -> None:  # fmt: skip
    checked = forgotten = sums = 0
    for n, seed in enumerate(SEEDS[backend]):
        zone = ZONES[backend][n % len(ZONES[backend])]
        c, f, s = _kept_states_equal_the_evaluation(db, seed, zone)
        checked, forgotten, sums = checked + c, forgotten + f, sums + s
    assert checked > 300 and forgotten > 0 and sums > 20, (checked, forgotten, sums)


def _kept_states_equal_the_evaluation(db: Database, seed: int,
                                      zone: str) -> tuple[int, int, int]:  # fmt: skip
    rng = random.Random(seed)
    events = [e for log in history(seed) for e in log]
    rng.shuffle(events)
    cut = sorted(rng.sample(range(1, len(events)), 7))
    batches = [events[a:b] for a, b in zip([0, *cut], [*cut, len(events)], strict=True)]
    fold(db, [])  # empty views
    with db.transaction() as conn:
        derived.mark_all(conn)
    views = projections()
    policy = Policy(week_start=rng.randrange(7))
    as_of = AsOf(to_micros(CLOCK), ZoneInfo(zone), policy)
    refresher = HealthRefresher(db, lambda: as_of, batch=2, history=(6, 3))
    checked = forgotten = sums = 0
    for n, batch in enumerate(batches):
        _deliver(db, views, batch)
        if n % 3 == 2:
            refresher.refresh_all()
        else:  # part way: a few passes
            for _ in range(rng.randrange(4, 40)):
                refresher.refresh_once()
        checked += _check_kept(db, as_of)
        sums += _check_figures(db, as_of)
        if n + 1 < len(batches):  # the next batch's first event, alone, ahead of the rest
            with db.reading() as conn:
                before = len(_kept(conn))
            _deliver(db, views, batches[n + 1][:1])
            batches[n + 1] = batches[n + 1][1:]
            with db.reading() as conn:
                forgotten += max(0, before - len(_kept(conn)))
            checked += _check_kept(db, as_of)
            sums += _check_figures(db, as_of)
    refresher.refresh_all()
    with db.reading() as conn:
        kept = _kept(conn)
        ends = state_history.ends(as_of, 6, 3)
        assert {end for end, _ in kept} == set(ends)
        assert len(kept) == len(ends) * len(_ids(conn))
        assert state_figures.counts(conn) == len(ends) * len(kpi_states.GROUP_BYS)
    checked += _check_kept(db, as_of)
    sums += _check_figures(db, as_of)
    _check_reports(db, as_of)
    return checked, forgotten, sums


def test_a_batch_applied_while_the_history_is_evaluated_wins(db: Database) -> None:
    """The refresher read an account's stamp and its facts; a late event changed them before
    it stored: the state is not kept (a read evaluates the account, and the next pass keeps the
    new state)."""
    events = [e for log in history(4) for e in log]
    early = [e for e in events if e.event.occurred_at < NOW - timedelta(days=20)]
    late = [e for e in events if e not in early]
    views = projections()
    fold(db, [])
    _deliver(db, views, late)
    as_of = AsOf(to_micros(CLOCK), ZoneInfo("UTC"))
    refresher = HealthRefresher(db, lambda: as_of, history=(4, 0))
    refresher.refresh_all(history=False)
    end = state_history.ends(as_of, 4, 0)[-1]  # the oldest: early events change it
    with db.reading() as conn:
        stamps = state_history.missing(conn, end, as_of, 100)
        states = state_history.evaluate(conn, sorted(stamps), replace(as_of, now_us=end))
    assert stamps
    touched = set(state_history.changed_since(early)) & set(stamps)
    _deliver(db, views, early)  # every touched row was fresh: its stamp moves
    with db.transaction() as conn:
        kept = state_history.store(conn, end, as_of, states, stamps)
    assert kept == len(stamps) - len(touched)
    with db.reading() as conn:
        assert not touched & {a for e, a in _kept(conn) if e == end}
    refresher.refresh_all()
    with db.reading() as conn:
        every = len(_ids(conn))
    assert _check_kept(db, as_of) == len(state_history.ends(as_of, 4, 0)) * every


def test_a_state_kept_under_other_rules_is_not_read(db: Database) -> None:
    fold(db, [[e for log in history(5) for e in log]])
    with db.transaction() as conn:
        derived.mark_all(conn)
    as_of = AsOf(to_micros(CLOCK), ZoneInfo("UTC"))
    HealthRefresher(db, lambda: as_of, history=(2, 0)).refresh_all()
    other = replace(as_of, policy=Policy(recurring_days=30))
    end = state_history.ends(as_of, 2, 0)[0]
    with db.reading() as conn:
        assert state_history.read(conn, end, as_of)
        assert state_history.read(conn, end, other) == {}
    # The refresher under the other rules replaces them, and prunes ends no longer kept.
    HealthRefresher(db, lambda: other, history=(1, 0)).refresh_all()
    with db.reading() as conn:
        assert state_history.read(conn, end, as_of) == {}
        assert {e for e, _ in _kept(conn)} == {end}


def _event(n: int, kind: str, days_ago: float, payload: dict[str, Any]) -> StoredEvent:
    body = make_event(kind, account_id="acct-redo", payload=payload,
                      occurred_at=(NOW - timedelta(days=days_ago)).isoformat())  # fmt: skip
    return StoredEvent(parse_event(body), f"redo-{n}", 0, n, NOW)


def _overdue_commitment(db: Database) -> list[Any]:
    """Empty views, then an account whose commitment, made 30 days before NOW, fell due 25
    days before it; returns the views."""
    views = projections()
    fold(db, [])
    _deliver(db, views, [
        _event(0, "account.registered", 60, {"name": "약속한 고객"}),
        _event(1, "commitment.made", 30, {"commitment_id": "CM-1", "text": "보안 검토",
                                          "due_at": (NOW - timedelta(days=25)).isoformat()}),
    ])  # fmt: skip
    return views


def test_an_event_that_replaces_an_older_row_forgets_the_states_since_that_row(
    db: Database,
) -> None:
    """The view keeps each lifecycle side's latest event: a commitment made again today moves
    its making from 30 days ago to today, so at the ends between it was not made yet (and not
    overdue) — though the new event itself is not late."""
    views = _overdue_commitment(db)
    as_of = AsOf(to_micros(CLOCK), ZoneInfo("UTC"))
    refresher = HealthRefresher(db, lambda: as_of, history=(4, 0))
    refresher.refresh_all()
    with db.reading() as conn:
        before = _kept(conn)
    overdue = {end for (end, _), s in before.items() if s.overdue_by}
    assert overdue, before  # the commitment is overdue at the latest ends
    _deliver(db, views, [_event(2, "commitment.made", 0, {
        "commitment_id": "CM-1", "text": "보안 검토 (다시)",
        "due_at": (NOW + timedelta(days=5)).isoformat()})])  # fmt: skip
    with db.reading() as conn:
        assert not overdue & {end for end, _ in _kept(conn)}  # forgotten
    refresher.refresh_all()
    with db.reading() as conn:
        assert not any(s.overdue_by for s in _kept(conn).values())
    assert _check_kept(db, as_of) == 4


def test_a_ticket_opened_after_its_fix_forgets_the_states_since_the_fix(db: Database) -> None:
    """A prevention recorded without a cause takes its ticket's category, whenever the ticket
    was opened: the opening, dated after the end, changes the state at an end after the fix
    (a complaint of that category after the fix recurs)."""
    views = projections()
    fold(db, [])
    complaint = {"subject": "로그인 실패", "category": "sso", "severity": "high",
                 "complaint": True}  # fmt: skip
    _deliver(db, views, [
        _event(0, "account.registered", 60, {"name": "다시 불만인 고객"}),
        _event(1, "support.ticket_resolved", 27, {"ticket_id": "T-1",
                                                  "prevention": {"action": "인증서 자동 갱신"}}),
        _event(2, "support.ticket_opened", 24, {"ticket_id": "T-2", **complaint}),
    ])  # fmt: skip
    as_of = AsOf(to_micros(CLOCK), ZoneInfo("UTC"))
    refresher = HealthRefresher(db, lambda: as_of, history=(4, 0))
    refresher.refresh_all()
    with db.reading() as conn:
        before = _kept(conn)
    _deliver(db, views, [_event(3, "support.ticket_opened", 0, {"ticket_id": "T-1",
                                                                **complaint})])  # fmt: skip
    with db.reading() as conn:
        after = _kept(conn)
    assert len(after) < len(before)  # forgotten from the fix on
    assert _check_kept(db, as_of) == len(after)
    refresher.refresh_all()
    with db.reading() as conn:
        changed = {k for k, s in _kept(conn).items() if before[k] != s}
    assert changed  # the recurrence after the fix lowered the score at the ends between
    assert _check_kept(db, as_of) == 4


def test_an_account_that_cannot_be_evaluated_holds_back_no_other_and_no_end(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    fold(db, [[e for log in history(6) for e in log]])
    with db.transaction() as conn:
        derived.mark_all(conn)
    as_of = AsOf(to_micros(CLOCK), ZoneInfo("UTC"))
    refresher = HealthRefresher(db, lambda: as_of, batch=1, history=(3, 0))  # acct-0 alone
    refresher.refresh_all(history=False)
    real = state_history.evaluate

    def failing(conn: Connection, ids: Any, at: AsOf) -> dict[str, state_history.State]:
        if "acct-0" in ids:
            raise ValueError("a fact this release cannot read")
        return real(conn, ids, at)

    monkeypatch.setattr(state_history, "evaluate", failing)
    refresher.refresh_all()
    with db.reading() as conn:
        kept = _kept(conn)
        others = [a for a in _ids(conn) if a != "acct-0"]
    assert {a for _, a in kept} == set(others)
    assert len(kept) == 3 * len(others)  # every end, every other account


@pytest.mark.parametrize("backend", ["kafka"], indirect=True)
def test_a_state_kept_while_a_batch_began_with_none_kept_is_forgotten(db: Database) -> None:
    """PostgreSQL: the refresher keeps the first states while a batch runs that, finding none
    kept, did not look up the rows it replaces; the batch forgets all of its accounts' states."""
    views = _overdue_commitment(db)
    as_of = AsOf(to_micros(CLOCK), ZoneInfo("UTC"))
    HealthRefresher(db, lambda: as_of, history=(4, 0)).refresh_all(history=False)
    again = [
        _event(
            2,
            "commitment.made",
            0,
            {
                "commitment_id": "CM-1",
                "text": "다시",
                "due_at": (NOW + timedelta(days=5)).isoformat(),
            },
        )
    ]
    end = state_history.ends(as_of, 4, 0)[0]
    with db.transaction() as batch:
        changes = derived.read_changes(batch, again)
        assert not changes.looked_up  # nothing kept yet
        for view in views:
            view.apply(batch, again)
        # The refresher, meanwhile, from the facts before the batch:
        with db.reading() as conn:
            stamps = state_history.missing(conn, end, as_of, 10)
            states = state_history.evaluate(conn, list(stamps), replace(as_of, now_us=end))
        with db.transaction() as conn:
            assert state_history.store(conn, end, as_of, states, stamps) == 1
        derived.mark(batch, changes)
    assert _check_kept(db, as_of) == 0  # forgotten


def test_an_idle_refresher_does_not_look_for_missing_states_on_every_pass(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    views = _overdue_commitment(db)
    as_of = AsOf(to_micros(CLOCK), ZoneInfo("UTC"))
    refresher = HealthRefresher(db, lambda: as_of, history=(4, 0))
    refresher.refresh_all()
    calls: list[int] = []
    real = state_history.missing

    def counted(conn: Connection, end: int, at: AsOf, limit: int,
                after: str = "") -> dict[str, int]:  # fmt: skip
        calls.append(end)
        return real(conn, end, at, limit, after)

    monkeypatch.setattr(state_history, "missing", counted)
    assert [refresher.refresh_once() for _ in range(5)] == [0] * 5
    assert calls == []  # complete, and nothing changed
    _deliver(db, views, [_event(2, "commitment.fulfilled", 27, {"commitment_id": "CM-1"})])
    refresher.refresh_all()  # the account changed: its forgotten states are kept again
    assert calls
    assert _check_kept(db, as_of) == 4


def test_a_history_fill_reads_on_from_its_last_batch(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each lookup of missing accounts starts after the previous batch (a lookup from the
    first account every time passed every account already kept again: quadratic, and at
    100,000 accounts the fill did not finish in ten minutes); an account changed behind the
    reading point gets its states back when the lookup starts over."""
    views = projections()
    fold(db, [])
    names = [f"acct-{c}" for c in "abcdefghi"]
    _deliver(db, views, [
        StoredEvent(parse_event(make_event("account.registered", account_id=a,
                                           occurred_at=(NOW - timedelta(days=40)).isoformat(),
                                           payload={"name": f"고객 {a}"})), f"reg-{i}", 0, i, NOW)
        for i, a in enumerate(names)
    ])  # fmt: skip
    as_of = AsOf(to_micros(CLOCK), ZoneInfo("UTC"))
    refresher = HealthRefresher(db, lambda: as_of, batch=2, history=(2, 0))
    refresher.refresh_all(history=False)
    calls: list[tuple[int, str, list[str]]] = []
    real = state_history.missing

    def recorded(conn: Connection, end: int, at: AsOf, limit: int,
                 after: str = "") -> dict[str, int]:  # fmt: skip
        found = real(conn, end, at, limit, after)
        calls.append((end, after, list(found)))
        return found

    monkeypatch.setattr(state_history, "missing", recorded)
    assert refresher.refresh_once() == 2
    assert refresher.refresh_once() == 2
    (end, first_after, first), (same_end, second_after, second) = calls
    assert (same_end, first_after, second_after) == (end, "", first[-1])
    assert not set(first) & set(second)
    changed = StoredEvent(parse_event(make_event(
        "support.ticket_opened", account_id=first[0],
        occurred_at=(NOW - timedelta(days=1)).isoformat(),
        payload={"ticket_id": "T-9", "subject": "로그인 오류", "category": "login",
                 "severity": "high"})), "late-1", 0, 99, NOW)  # fmt: skip
    _deliver(db, views, [changed])
    refresher.refresh_all()
    with db.reading() as conn:
        kept = _kept(conn)
    assert {(e, a) for e, a in kept} == {(e, a) for e in state_history.ends(as_of, 2, 0)
                                         for a in names}  # fmt: skip
    assert _check_kept(db, as_of) == 2 * len(names)
    starts = [after for e, after, _ in calls if e == end]
    # One lookup from the first account, one per batch after it, one finding nothing after
    # the last, one starting over (the changed account), then one finding nothing at all.
    assert starts.count("") <= 4 < len(starts), starts


def test_a_registration_regroups_the_kept_sums_of_every_end(db: Database) -> None:
    """The KPI groups accounts by their *current* segment and owners, so a registration dated
    now (after every kept end: no state changes) still changes every past end's sums per
    segment and owner: they are forgotten, and the report shows the account under its new
    segment and owner in every period."""
    views = _overdue_commitment(db)  # acct-redo: registered 60 days ago, no segment
    as_of = AsOf(to_micros(CLOCK), ZoneInfo("UTC"))
    refresher = HealthRefresher(db, lambda: as_of, history=(3, 0))
    refresher.refresh_all()
    with db.reading() as conn:
        assert state_figures.counts(conn) == 3 * len(kpi_states.GROUP_BYS)
    moved = _event(2, "account.registered", -2, {  # occurred at CLOCK, after every end
        "name": "약속한 고객", "segment": "enterprise",
        "owners": {"sales": "emp-kim"}})  # fmt: skip
    moved = replace(moved, event=moved.event.model_copy(update={"occurred_at": CLOCK}))
    _deliver(db, views, [moved])
    assert _check_figures(db, as_of) == 0  # all forgotten
    refresher.refresh_all()
    assert _check_figures(db, as_of) == 2 * len(kpi_states.GROUP_BYS)  # the latest and oldest ends
    start, stop = to_micros(CLOCK - timedelta(days=21)), to_micros(CLOCK)
    with db.reading() as conn:
        report = kpi.read_kpi(conn, kpi.KpiQuery(start, stop, "segment"), as_of, DEPARTMENTS)
    for period in report["periods"]:
        overdue = {g["group"]: g["figures"]["commitments_overdue"]["value"]
                   for g in period["groups"]}  # fmt: skip
        assert overdue == {"enterprise": 1}, period["period"]


def _kept_on_postgres(pg_url: str) -> tuple[Database, list[Any], AsOf, HealthRefresher]:
    """A migrated PostgreSQL database holding ``_overdue_commitment``'s story, with the states
    and sums of the last three weeks' ends kept; its views and the refresher that kept them."""
    db = Database(pg_url)
    migrate(db)
    views = _overdue_commitment(db)
    as_of = AsOf(to_micros(CLOCK), ZoneInfo("UTC"))
    refresher = HealthRefresher(db, lambda: as_of, history=(3, 0))
    refresher.refresh_all()
    return db, views, as_of, refresher


def test_no_sums_are_computed_while_their_inputs_change(pg_url: str) -> None:
    """PostgreSQL only (SQLite serialises every writer): the refresher would sum an end's
    states from the facts before a batch that is changing them — and that batch, having found
    no sums to forget, would leave the stale ones; or from states another refresher is halfway
    storing. It computes nothing while either is in flight, and the next pass sums what they
    committed."""
    db, views, as_of, refresher = _kept_on_postgres(pg_url)
    ends = state_history.ends(as_of, 3, 0)
    with db.transaction() as conn:
        state_figures.forget(conn, ends[0])  # the latest end's sums, to compute again
    fulfilled = _event(2, "commitment.fulfilled", 0, {"commitment_id": "CM-1"})
    at = datetime.fromtimestamp(ends[0] / 1e6, UTC) - timedelta(hours=1)
    late = [replace(fulfilled, event=fulfilled.event.model_copy(update={"occurred_at": at}))]
    with db.transaction() as batch:
        changes = derived.read_changes(batch, late)
        for view in views:
            view.apply(batch, late)
        derived.mark(batch, changes)  # no overdue commitment at ends[0] any more
        assert refresher._keep_figures(as_of, ends) == 0  # the batch is in flight
    with db.transaction() as other:  # another refresher storing states (none new here)
        state_history.store(other, ends[0], as_of, {}, {})
        assert refresher._keep_figures(as_of, ends) == 0
    with db.transaction() as other:  # or pruning them
        state_history.prune(other, ends, as_of)
        assert refresher._keep_figures(as_of, ends) == 0
    refresher.refresh_all()
    assert _check_figures(db, as_of) == 2 * len(kpi_states.GROUP_BYS)  # the latest and oldest ends
    with db.reading() as conn:
        key = state_figures.key(health_cache.policy_key(as_of))
        sums = dict(state_figures.read(conn, ends[0], "segment", key, 60) or [])
    assert sums[None]["commitments_overdue"] == 0
    db.dispose()


def test_sums_left_for_lack_of_the_lock_are_kept_on_the_next_pass(pg_url: str) -> None:
    """PostgreSQL only: a pass that could not take the lock (a batch in flight) does not
    count the history as done — the next pass keeps the sums, not one a minute later."""
    db, views, as_of, refresher = _kept_on_postgres(pg_url)
    fulfilled = _event(2, "commitment.fulfilled", 10, {"commitment_id": "CM-1"})
    _deliver(db, views, [fulfilled])  # late: the two latest ends' states and sums forgotten
    with db.transaction() as batch:
        state_figures.hold(batch)  # another batch, in flight
        refresher.refresh_all()  # the health rows and the states, not the sums
        with db.reading() as conn:
            assert state_figures.counts(conn) == len(kpi_states.GROUP_BYS)  # the oldest end's
    assert refresher.refresh_once() == 3  # the latest end's three groupings, at once
    with db.reading() as conn:
        assert state_figures.counts(conn) == 2 * len(kpi_states.GROUP_BYS)
    assert _check_figures(db, as_of) == 2 * len(kpi_states.GROUP_BYS)
    db.dispose()
