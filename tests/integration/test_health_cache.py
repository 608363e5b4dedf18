"""The health cache answers exactly what evaluating on the spot answers, for any clock.

The oracle is the per-request evaluation (``account_health.evaluate``, the rules the accounts
list and coverage report applied to every account on each request before the cache): over
random stories (``test_view_fold.history``: every event kind, future-dated events, related
accounts, renewals, offers with expiries, handoffs) and random clocks in three time zones, every
row the refresher stored must equal the oracle at every moment it claims to be valid for — in
particular at its last one (``valid_until_us - 1``), where a missed time-driven change would show
— and the lists and the coverage report read through the cache must equal the oracle's.

Runs on both backends (SQLite and PostgreSQL) through the ``db`` fixture.
"""

from __future__ import annotations

import json
import random
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select, update

from services.core.adapters.sql import Database
from services.core.codec import StoredEvent
from services.core.events import parse_event
from services.core.readmodels import (
    account_health,
    accounts,
    attention,
    coverage,
    health_cache,
    onevoice,
    timeline,
)
from services.core.readmodels.health_cache import Entry
from services.core.readmodels.timeline import to_micros
from services.core.view_rules import DAY_US, AsOf, Policy
from services.projections.health_refresh import HealthRefresher
from tests.integration.test_view_fold import ACCOUNTS, NOW, fold, history
from tests.samples import make_event

ZONES = ("UTC", "Asia/Seoul", "America/New_York")  # New York: DST moves its midnights


def _oracle(db: Database, as_of: AsOf) -> dict[str, Entry]:
    with db.reading() as conn:
        ids = [r.account_id for r in conn.execute(select(accounts.TABLES.accounts.c.account_id))]
        return account_health.evaluate(conn, ids, as_of)


def _same(row: Any, e: Entry) -> tuple[Any, ...]:
    sections = {c: getattr(row, c) for c in e.sections}
    return (row.score, row.value_cents, row.renews_us, row.coverage, sections) == \
        (e.score, e.value_cents, e.renews_us, e.coverage, e.sections), (row, e)  # fmt: skip


def _stale(conn: Connection, as_of: AsOf) -> list[str]:
    """The ids of the rows stale for ``as_of`` (claimed or not), in id order."""
    t = health_cache.TABLE.c
    return sorted(conn.execute(select(t.account_id).where(health_cache.stale(as_of))).scalars())


def _refresh(db: Database, as_of: AsOf) -> int:
    return HealthRefresher(db, lambda: as_of, batch=3).refresh_all(history=False)


def _all_pages(db: Database, as_of: AsOf, sort: accounts.Sort, **filters: Any) -> list[Any]:
    """Every page of the list (3 a page), concatenated: ``(account_id, score)``."""
    out, cursor = [], None
    while True:
        after = None if cursor is None else accounts.decode_cursor(sort, cursor)
        with db.reading() as conn:
            items, cursor = account_health.read_accounts(
                conn, accounts.AccountQuery(sort=sort, limit=3, after=after), as_of,
                below=60, **filters)  # fmt: skip
        out += [(i["account_id"], i["health"]["score"]) for i in items]
        if cursor is None:
            return out


def _expected_pages(db: Database, as_of: AsOf, oracle: dict[str, Entry], sort: accounts.Sort,
                    at_risk: bool | None = None,
                    renewal_within_us: int | None = None) -> list[Any]:  # fmt: skip
    a = accounts.TABLES.accounts.c
    with db.reading() as conn:
        last = {r.account_id: r.last_touch_us for r in conn.execute(
            select(a.account_id, a.last_touch_us))}  # fmt: skip
    horizon = as_of.now_us + (renewal_within_us or 0)
    keep = [x for x, e in oracle.items()
            if (at_risk is None or (e.score < 60) == at_risk)
            and (renewal_within_us is None or (e.renews_us is not None
                                               and e.renews_us <= horizon))]  # fmt: skip
    if sort == "health":
        keep.sort(key=lambda x: (oracle[x].score, x))
    elif sort == "value":
        keep.sort(key=lambda x: (-oracle[x].value_cents, x))
    else:
        keep.sort(key=lambda x: (-1 if last[x] is None else last[x], x), reverse=True)
    return [(x, oracle[x].score) for x in keep]


QUIET = "acct-quiet"


def _quiet_renewal() -> list[StoredEvent]:
    """An account nobody touches after scheduling its renewal: the renewal's reminder window
    opens on its own (``unattended_renewal``) 60 (or 10) days before it."""
    actor = {"id": "emp-jang", "department": "success"}
    bodies = [
        make_event("account.registered", account_id=QUIET, actor=actor,
                   occurred_at=(NOW - timedelta(days=50)).isoformat(),
                   payload={"name": "조용한 고객", "segment": "smb", "owners": {}}),
        make_event("success.renewal_scheduled", account_id=QUIET, actor=actor,
                   occurred_at=(NOW - timedelta(days=40)).isoformat(),
                   payload={"contract_id": "K-Q",
                            "renews_at": (NOW + timedelta(days=80)).isoformat()}),
    ]  # fmt: skip
    return [StoredEvent(parse_event(b), f"q-{n}", 0, 10_000 + n, NOW)
            for n, b in enumerate(bodies)]  # fmt: skip


def _story(seed: int) -> list[StoredEvent]:
    return [e for log in history(seed) for e in log] + _quiet_renewal()


def _moments(db: Database) -> list[int]:
    """Every moment in the story's facts where something may change by time alone."""
    found: set[int] = set()
    with db.reading() as conn:
        for table, columns in ((onevoice.TABLES.commitments, ("due_us", "made_us", "closed_us")),
                               (onevoice.TABLES.messages, ("valid_until_us",)),
                               (timeline.TABLES.entries, ("occurred_us",))):  # fmt: skip
            for column in columns:
                found |= {v for (v,) in conn.execute(select(table.c[column])) if v is not None}
        c = onevoice.TABLES.contracts.c
        for row in conn.execute(select(c.renews_us, c.next_renews_us)):
            for renews in row:
                if renews is not None:
                    found |= {renews, renews + 1, renews - 60 * DAY_US, renews - 10 * DAY_US}
    return sorted(found)


# The rules and their SQL are the same on both backends; PostgreSQL runs fewer stories to keep
# the suite short.
SEEDS = {"embedded": (1, 2, 3), "kafka": (1,)}
ZONES_ON = {"embedded": ZONES, "kafka": ("America/New_York",)}


def test_every_cached_row_equals_the_evaluation_for_every_clock_it_claims(
    db: Database, backend: str
) -> None:
    for seed in SEEDS[backend]:
        _every_cached_row_equals_the_evaluation(db, seed)


def _every_cached_row_equals_the_evaluation(db: Database, seed: int) -> None:
    fold(db, [_story(seed)])
    rng = random.Random(seed)
    with db.transaction() as conn:
        health_cache.touch_all(conn)  # fold() bypasses the runner
    checked = 0
    # Clocks anywhere, and clocks just before the moments where facts change on their own
    # (within a day of them, so no local midnight comes first).
    edges = _moments(db)
    starts = [to_micros(NOW + timedelta(hours=rng.uniform(-24 * 100, 24 * 60))) for _ in range(4)]
    starts += [m - rng.randrange(1, 20 * 3600 * 10**6) for m in rng.sample(edges, 10)]
    reminders = [to_micros(NOW + timedelta(days=80 - d)) for d in (60, 10)]
    starts += [m - rng.randrange(1, 20 * 3600 * 10**6) for m in reminders]
    for start_us in starts:
        tz = ZoneInfo(rng.choice(ZONES))
        policy = Policy(renewal_days=rng.choice([60, 10]), handoff_days=rng.choice([7, 2]))
        start = AsOf(start_us, tz, policy)
        assert _refresh(db, start) >= len(ACCOUNTS)
        with db.reading() as conn:
            rows = {r.account_id: r for r in conn.execute(select(health_cache.TABLE))}
        assert all(r.valid_from_us == start.now_us < r.valid_until_us for r in rows.values())
        # The moments each row claims: its first, its last, and a few between.
        moments = {start.now_us}
        for r in rows.values():
            moments |= {r.valid_until_us - 1, rng.randrange(start.now_us, r.valid_until_us)}
        for moment in sorted(moments):
            at = AsOf(moment, tz, policy)
            oracle = _oracle(db, at)
            with db.reading() as conn:
                valid = health_cache.valid_rows(conn, list(rows), at)
            for account_id, row in valid.items():
                same, detail = _same(row, oracle[account_id])
                assert same, (account_id, moment - start.now_us, detail)
                checked += 1
    assert checked > 100


def _look_alikes() -> list[StoredEvent]:
    """Registered, never touched: equal scores, values and last touches, so the order among
    them is the ids' — mixed case, punctuation and Korean, which collations order apart."""
    actor = {"id": "emp-park", "department": "sales"}
    return [StoredEvent(parse_event(make_event(
        "account.registered", account_id=account_id, actor=actor, payload={"name": "같은 이름"},
        occurred_at=(NOW - timedelta(days=3)).isoformat())), f"l-{n}", 1, 20_000 + n, NOW)
        for n, account_id in enumerate(("ab", "a-c", "B", "b", "a c", "고객", "Ab"))]  # fmt: skip


def _keys_against_ids() -> list[StoredEvent]:
    """Accounts whose coverage keys run against their ids: never contacted with names in
    reverse id order (Korean and Latin: code points, not a collation), neglected with the
    oldest last touch on the highest id — a section's first items are not its first ids."""
    actor = {"id": "emp-park", "department": "sales"}
    bodies = [make_event("account.registered", account_id=f"nc-{n}", actor=actor,
                         payload={"name": name}, occurred_at=(NOW - timedelta(days=2)).isoformat())
              for n, name in enumerate(("하늘", "가람", "Zeta", "Alpha"))]  # fmt: skip
    bodies += [make_event("sales.call_logged", account_id=f"ng-{n}", actor=actor,
                          occurred_at=(NOW - timedelta(days=40 + 7 * n)).isoformat())
               for n in range(4)]  # fmt: skip
    return [StoredEvent(parse_event(b), f"k-{n}", 2, 30_000 + n, NOW)
            for n, b in enumerate(bodies)]  # fmt: skip


def test_lists_and_coverage_through_the_cache_equal_the_evaluation(
    db: Database, backend: str
) -> None:
    for zone in ZONES_ON[backend]:
        _lists_and_coverage_equal_the_evaluation(db, zone)


def _lists_and_coverage_equal_the_evaluation(db: Database, zone: str) -> None:
    fold(db, [[e for log in history(4) for e in log] + _look_alikes() + _keys_against_ids()])
    tz = ZoneInfo(zone)
    with db.transaction() as conn:
        health_cache.touch_all(conn)
    refreshed = AsOf(to_micros(NOW), tz)
    _refresh(db, refreshed)
    # Some rows valid, some stale (their facts "changed"), some past their end, and a clock
    # the refresher never saw: every mix must read the same as evaluating everything.
    with db.transaction() as conn:
        health_cache.touch(conn, ACCOUNTS[:2])
    for moment in (refreshed.now_us, refreshed.now_us + 3 * DAY_US + 7,
                   refreshed.now_us - DAY_US):  # fmt: skip
        at = AsOf(moment, tz)
        oracle = _oracle(db, at)
        assert len({e.score for e in oracle.values()}) > 1  # the order is not trivial
        for sort in ("health", "value", "last_touch", "name"):
            got = _all_pages(db, at, sort, at_risk=None)
            if sort != "name":  # the name order is the database's collation
                assert got == _expected_pages(db, at, oracle, sort), sort
            assert sorted(got) == sorted((x, e.score) for x, e in oracle.items())
        for at_risk in (True, False):
            assert _all_pages(db, at, "last_touch", at_risk=at_risk) == \
                _expected_pages(db, at, oracle, "last_touch", at_risk=at_risk)  # fmt: skip
            assert _all_pages(db, at, "health", at_risk=at_risk) == \
                _expected_pages(db, at, oracle, "health", at_risk=at_risk)  # fmt: skip
        within = 30 * DAY_US
        assert _all_pages(db, at, "value", at_risk=None, renewal_within_us=within) == \
            _expected_pages(db, at, oracle, "value", renewal_within_us=within)  # fmt: skip
        # Each section's first items come from its index over the valid rows: small limits
        # show whether they are the first in report order, as evaluating everything gives.
        limits = (1, 2, 3, 50)
        with db.reading() as conn:
            cached = {n: coverage.read_coverage(conn, at, n) for n in limits}
        with db.transaction() as conn:
            conn.execute(update(health_cache.TABLE).values(valid_until_us=0))  # all stale
        with db.reading() as conn:
            assert {n: coverage.read_coverage(conn, at, n) for n in limits} == cached
        _totals_follow_the_rows(db)
        expected_items = {x: json.loads(e.coverage) for x, e in oracle.items() if e.coverage}
        listed = {s: cached[50][s]["count"] for s in attention.SECTIONS}
        assert listed == {s: sum(len(i.get(s, [])) for i in expected_items.values())
                          for s in listed}  # fmt: skip
        assert sum(listed.values()) > len(listed)  # the counts are not trivial
        firsts = {s: [i["account_id"] for i in cached[2][s]["items"]]
                  for s in ("never_contacted", "neglected")}  # fmt: skip
        assert firsts == {"never_contacted": ["nc-3", "nc-2"], "neglected": ["ng-3", "ng-2"]}
        _refresh(db, refreshed)  # back to rows valid at the first clock
        _totals_follow_the_rows(db)


def _totals_follow_the_rows(db: Database) -> None:
    """The per-policy item totals (kept by triggers) equal a recount of the rows."""
    recount: dict[str, dict[str, int]] = {}
    with db.reading() as conn:
        for row in conn.execute(select(health_cache.TABLE)):
            mine = recount.setdefault(row.policy, dict.fromkeys(attention.SECTIONS, 0))
            for section, n in health_cache.items_of(row).items():
                mine[section] += n
        kept = {r.policy: {s: r._mapping[s] for s in attention.SECTIONS}
                for r in conn.execute(select(health_cache.TOTALS))}  # fmt: skip
    empty = dict.fromkeys(attention.SECTIONS, 0)
    assert {p: n for p, n in kept.items() if n != empty} == \
        {p: n for p, n in recount.items() if n != empty}  # fmt: skip


def test_a_batch_applied_while_the_refresher_evaluates_wins(db: Database) -> None:
    fold(db, [_story(5)])
    as_of = AsOf(to_micros(NOW), ZoneInfo("UTC"))
    with db.transaction() as conn:
        claimed = health_cache.claim(conn, as_of, 100)
    assert sorted(claimed.stamps) == sorted([*ACCOUNTS, QUIET])
    with db.transaction() as conn:  # a second refresher finds nothing to do meanwhile
        assert not health_cache.claim(conn, as_of, 100).stamps
    with db.reading() as conn:
        found = account_health.evaluate(conn, list(claimed.stamps), as_of)
    with db.transaction() as conn:  # the projector applies a batch for one account meanwhile
        health_cache.touch(conn, [ACCOUNTS[0]])
    with db.transaction() as conn:
        stored = health_cache.store(conn, claimed, found, as_of)
    assert stored == len(found) - 1
    with db.reading() as conn:
        assert _stale(conn, as_of) == [ACCOUNTS[0]]
        assert not health_cache.valid_rows(conn, [ACCOUNTS[0]], as_of)
    # A refresher that dies after claiming: its rows stay stale, and another takes them over
    # when the lease ends.
    with db.transaction() as conn:
        assert list(health_cache.claim(conn, as_of, 100).stamps) == [ACCOUNTS[0]]
    assert _refresh(db, as_of) == 0
    later = AsOf(as_of.now_us + health_cache.LEASE_US, as_of.tz)
    assert _refresh(db, later) == 1
    with db.reading() as conn:
        assert not _stale(conn, later)
    _totals_follow_the_rows(db)


def test_touching_a_row_nobody_evaluates_writes_nothing(db: Database) -> None:
    """A catch-up touches the same accounts batch after batch: only the first write counts."""
    fold(db, [_story(5)])
    with db.transaction() as conn:
        health_cache.touch_all(conn)
    as_of = AsOf(to_micros(NOW), ZoneInfo("UTC"))

    def stamps() -> dict[str, int]:
        with db.reading() as conn:
            t = health_cache.TABLE.c
            return {r.account_id: r.stamp for r in conn.execute(select(t.account_id, t.stamp))}

    before = stamps()
    with db.transaction() as conn:
        health_cache.touch(conn, ACCOUNTS)
    assert stamps() == before  # stale and unclaimed: left alone
    _refresh(db, as_of)
    with db.transaction() as conn:
        health_cache.touch(conn, ACCOUNTS[:2])  # valid rows: bumped and stale
    after = stamps()
    assert {a for a in after if after[a] != before[a]} == set(ACCOUNTS[:2])
    with db.reading() as conn:
        assert _stale(conn, as_of) == ACCOUNTS[:2]


def test_rows_evaluated_under_other_rules_are_stale(db: Database) -> None:
    fold(db, [_story(6)])
    with db.transaction() as conn:
        health_cache.touch_all(conn)
    utc = AsOf(to_micros(NOW), ZoneInfo("UTC"))
    _refresh(db, utc)
    for other in (AsOf(utc.now_us, ZoneInfo("Asia/Seoul")),
                  AsOf(utc.now_us, utc.tz, Policy(handoff_days=3))):  # fmt: skip
        with db.reading() as conn:
            assert not health_cache.valid_rows(conn, [*ACCOUNTS, QUIET], other)
            assert len(_stale(conn, other)) == len(ACCOUNTS) + 1


def test_the_refresher_adopts_an_account_that_reached_the_directory_another_way(
    db: Database,
) -> None:
    fold(db, [_story(7)])
    with db.transaction() as conn:  # as if a path had written the directory without marking
        conn.execute(health_cache.TABLE.delete().where(health_cache.TABLE.c.account_id == QUIET))
    as_of = AsOf(to_micros(NOW), ZoneInfo("UTC"))
    _totals_follow_the_rows(db)  # a row deleted
    assert _refresh(db, as_of) == len(ACCOUNTS) + 1  # its first pass adopts, then evaluates
    _totals_follow_the_rows(db)
    with db.reading() as conn:
        assert QUIET in health_cache.valid_rows(conn, [QUIET], as_of)


def test_an_account_the_directory_lost_counts_nowhere(db: Database) -> None:
    """A cache row whose account is not in the directory (a switch left it behind, or the
    directory parked the account's first event) is never evaluated: it stays stale, and
    neither the lists nor the coverage counts hold it."""
    fold(db, [_story(1)])
    as_of = AsOf(to_micros(NOW), ZoneInfo("UTC"))
    lost = ACCOUNTS[0]
    assert _oracle(db, as_of)[lost].coverage is not None  # it has items to count
    _refresh(db, as_of)
    with db.transaction() as conn:
        a = accounts.TABLES.accounts
        conn.execute(a.delete().where(a.c.account_id == lost))
        health_cache.touch_all(conn)
    _refresh(db, as_of)
    with db.reading() as conn:
        assert _stale(conn, as_of) == [lost]
        got = coverage.read_coverage(conn, as_of, 50)
    expected_items = [json.loads(e.coverage) for e in _oracle(db, as_of).values() if e.coverage]
    assert {s: got[s]["count"] for s in attention.SECTIONS} == \
        {s: sum(len(i.get(s, [])) for i in expected_items) for s in attention.SECTIONS}  # fmt: skip
    assert lost not in {i["account_id"] for s in attention.SECTIONS for i in got[s]["items"]}
    _totals_follow_the_rows(db)
