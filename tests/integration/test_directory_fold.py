"""AccountDirectory is a pure fold: any interleaving, batching or re-delivery gives one result."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from services.core.adapters.sql import Database
from services.core.codec import StoredEvent
from services.core.events import parse_event
from services.core.readmodels import accounts
from services.core.readmodels.reports import roster
from services.projections.directory import AccountDirectory
from tests.samples import make_event

BASE = datetime(2026, 6, 1, tzinfo=UTC)
KINDS = ["sales.call_logged", "support.csat_recorded", "leadership.meeting_held",
         "marketing.event_attended", "commitment.made"]  # fmt: skip


def history(seed: int) -> list[StoredEvent]:
    """120 events over 6 accounts and 4 partitions: equal times, re-registrations."""
    rng = random.Random(seed)
    offsets = [0, 0, 0, 0]
    out = []
    for i in range(120):
        account = f"acct-{rng.randrange(6)}"
        when = (BASE + timedelta(hours=rng.randrange(40))).isoformat()  # many equal times
        if rng.random() < 0.15:
            body = make_event("account.registered", account_id=account, occurred_at=when,
                              payload={"name": f"이름 {i}", "tier": f"t{i % 3}",
                                       # one person may own an account twice
                                       "owners": {"sales": f"emp-{i % 4}",
                                                  "success": f"emp-{i % 3}"}})  # fmt: skip
        else:
            related = [f"acct-{(int(account[-1]) + 1) % 6}"]
            body = make_event(rng.choice(KINDS), account_id=account, occurred_at=when,
                              related_account_ids=related)  # fmt: skip
        partition = rng.randrange(4)
        event = parse_event(body)
        out.append(StoredEvent(event, str(event.event_id), partition, offsets[partition], BASE))
        offsets[partition] += 1
    return out


def snapshot(db: Database) -> dict[str, list[tuple[object, ...]]]:
    t = accounts.TABLES
    with db.reading() as conn:
        return {
            table.name: sorted(tuple(r) for r in conn.execute(select(table)))
            for table in (t.accounts, t.touches, t.owners)
        }


def fold(
    db: Database, events: list[StoredEvent], batch: int
) -> dict[str, list[tuple[object, ...]]]:
    projection = AccountDirectory()
    with db.transaction() as conn:
        projection.clear(conn)
    for start in range(0, len(events), batch):
        with db.transaction() as conn:
            projection.apply(conn, events[start : start + batch])
    return snapshot(db)


def test_any_interleaving_and_redelivery_gives_the_same_directory(db: Database) -> None:
    log = history(seed=7)
    expected = fold(db, log, batch=1000)
    assert len(expected["account_directory_accounts"]) == 6
    # Someone owns an account in two departments (the roster counts it once).
    owned = expected["account_directory_owners"]
    pairs = {(e, acc) for acc, _, e in owned}
    assert len(owned) > len(pairs)
    with db.reading() as conn:
        assert roster.owner_ids(conn) == {e for e, _ in pairs}
        assert roster.owned_counts(conn, ["emp-0", "emp-1", "nobody"]) == {
            "emp-0": len({acc for e, acc in pairs if e == "emp-0"}),
            "emp-1": len({acc for e, acc in pairs if e == "emp-1"}),
            "nobody": 0,
        }
    rng = random.Random(11)
    for _ in range(4):
        shuffled = log[:]
        rng.shuffle(shuffled)
        redelivered = shuffled + rng.sample(log, 30)
        assert fold(db, redelivered, batch=rng.randrange(1, 40)) == expected


def test_the_directory_records_the_latest_by_sort_key(db: Database) -> None:
    log = history(seed=3)
    fold(db, log, batch=17)
    latest: dict[str, StoredEvent] = {}
    for e in log:
        if e.type == "account.registered":
            key = (e.event.occurred_at, e.partition, e.offset)
            seen = latest.get(e.event.account_id)
            if seen is None or (seen.event.occurred_at, seen.partition, seen.offset) < key:
                latest[e.event.account_id] = e
    t = accounts.TABLES.accounts
    with db.reading() as conn:
        names = dict(conn.execute(select(t.c.account_id, t.c.name).where(t.c.registered)).all())
    assert names == {a: e.event.payload.name for a, e in latest.items()}  # type: ignore[attr-defined]
