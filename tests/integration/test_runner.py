"""The projection runner on the embedded log + SQLite: idempotence, resume, failure, pure fold."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest
from sqlalchemy import Connection, select

from services.core import codec
from services.core.adapters.sql import Database
from services.core.codec import StoredEvent
from services.core.deadletters.store import parked_counts
from services.core.events import parse_event
from services.core.ports import (
    AssignListener,
    EventLog,
    LogConsumer,
    OutgoingRecord,
    StoreUnavailable,
)
from services.core.readmodels import checkpoints, copies, timeline
from services.projections.runner import ProjectionRunner
from services.projections.timeline import AccountTimeline
from tests import backends
from tests.samples import make_event


class Recording(AccountTimeline):
    """The real timeline projection, remembering which event ids it was handed; it fails its
    first ``fail_times`` applications (after writing) with ``failure``."""

    def __init__(self, fail_times: int = 0, failure: Exception | None = None) -> None:
        super().__init__()
        self.seen: list[str] = []
        self.fail_times = fail_times
        self.failure = failure or RuntimeError("projection failed mid-batch")

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        super().apply(conn, events)
        if self.fail_times:
            self.fail_times -= 1
            raise self.failure
        self.seen.extend(e.event_id for e in events)


class Rewinding(EventLog):
    """Wraps a log so its consumers ignore stored checkpoints and re-read from offset 0."""

    def __init__(self, inner: EventLog) -> None:
        self.inner = inner

    def ensure_topic(self, topic: str, partitions: int) -> int:
        return self.inner.ensure_topic(topic, partitions)

    def append(self, topic: str, records: Sequence[OutgoingRecord]) -> list[tuple[int, int]]:
        return self.inner.append(topic, records)

    def end_offsets(self, topic: str) -> dict[int, int]:
        return self.inner.end_offsets(topic)

    def consumer(self, topic: str, group: str, on_assign: AssignListener) -> LogConsumer:
        return self.inner.consumer(topic, group, lambda parts: (on_assign(parts), {})[1])

    def close(self) -> None:
        self.inner.close()


def post(log: EventLog, topic: str, count: int, **overrides: object) -> list[str]:
    bodies = [
        make_event(**{"account_id": f"acct-{i % 5}", "summary": f"event {i}", **overrides})
        for i in range(count)
    ]
    events = [parse_event(b) for b in bodies]
    log.append(topic, [codec.encode(e) for e in events])
    return [str(e.event_id) for e in events]


OPEN_RUNNERS: list[ProjectionRunner] = []
"""Runners made by ``runner``; the integration conftest closes them after each test (a runner
left open keeps a Kafka consumer heartbeating and refreshing metadata for the whole session)."""


def runner(
    log: EventLog, db: Database, topic: str, projection: AccountTimeline, batch: int = 4
) -> ProjectionRunner:
    group = backends.unique("runner")
    made = ProjectionRunner(
        log, db, topic, [projection], group=group, batch_size=batch, idle_s=0.05
    )
    OPEN_RUNNERS.append(made)
    return made


def consume(run: ProjectionRunner, count: int) -> int:
    """run_once until ``count`` records were consumed (bounded): for rewound consumers."""
    consumed, deadline = 0, time.monotonic() + 30
    while consumed < count and time.monotonic() < deadline:
        consumed += run.run_once()
    return consumed


def view(db: Database) -> list[tuple[str, str, int, int]]:
    entries = timeline.TABLES.entries
    with db.reading() as conn:
        rows = conn.execute(
            select(
                entries.c.account_id, entries.c.event_id, entries.c.partition, entries.c.offset
            ).order_by(entries.c.account_id, entries.c.event_id)
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def test_applies_everything_and_checkpoints_the_end(
    log: EventLog, db: Database, topic: str
) -> None:
    ids = post(log, topic, 23)
    projection = Recording()
    assert runner(log, db, topic, projection).catch_up(30) == 23
    assert sorted(projection.seen) == sorted(ids)
    with db.reading() as conn:
        assert checkpoints.load(conn, projection.name, 0, topic) == log.end_offsets(topic)
    assert len(view(db)) == 23


def test_restart_resumes_from_the_stored_checkpoint(
    log: EventLog, db: Database, topic: str
) -> None:
    post(log, topic, 10)
    assert runner(log, db, topic, Recording()).catch_up(30) == 10
    later = post(log, topic, 5)
    second = Recording()
    assert runner(log, db, topic, second).catch_up(30) == 5
    assert sorted(second.seen) == sorted(later)


def test_a_replayed_batch_is_rejected_by_the_checkpoint(
    log: EventLog, db: Database, topic: str
) -> None:
    post(log, topic, 12)
    runner(log, db, topic, Recording()).catch_up(30)
    before = view(db)
    again = Recording()
    # At least once each: a rebalance (or a restarted client) re-reads from 0 again.
    assert consume(runner(Rewinding(log), db, topic, again), 12) >= 12
    assert again.seen == []
    assert view(db) == before


def test_duplicate_copies_in_the_log_appear_once(log: EventLog, db: Database, topic: str) -> None:
    body = make_event(account_id="acme", related_account_ids=["acme-hq"])
    record = codec.encode(parse_event(body))
    log.append(topic, [record, record])
    runner(log, db, topic, Recording()).catch_up(30)
    log.append(topic, [record])
    runner(log, db, topic, Recording()).catch_up(30)
    eid = body["event_id"]
    assert [(a, e) for a, e, _, _ in view(db)] == [("acme", eid), ("acme-hq", eid)]


def test_a_batch_that_fails_transiently_rolls_back_and_is_retried(
    log: EventLog, db: Database, topic: str
) -> None:
    ids = post(log, topic, 9)
    projection = Recording(fail_times=1, failure=StoreUnavailable("database went away"))
    run = runner(log, db, topic, projection)
    with pytest.raises(StoreUnavailable):
        consume(run, 9)
    assert view(db) == []
    run.catch_up(30)
    assert sorted(projection.seen) == sorted(ids)
    assert len(view(db)) == 9
    with db.reading() as conn:
        assert parked_counts(conn, [projection.name])[projection.name]["total"] == 0


def test_a_batch_that_fails_once_for_no_transient_reason_is_split_and_loses_nothing(
    log: EventLog, db: Database, topic: str
) -> None:
    ids = post(log, topic, 9)
    projection = Recording(fail_times=1)  # the whole batch fails once; its halves succeed
    runner(log, db, topic, projection).catch_up(30)
    assert sorted(projection.seen) == sorted(ids)
    assert len(view(db)) == 9
    with db.reading() as conn:
        assert parked_counts(conn, [projection.name])[projection.name]["total"] == 0


def test_undecodable_records_are_parked_and_counted(
    log: EventLog, db: Database, topic: str
) -> None:
    junk = [OutgoingRecord(b"acme", b"not json"), OutgoingRecord(b"acme", b'{"type": "x"}')]
    log.append(topic, junk)
    good = post(log, topic, 1, account_id="acme")
    run = runner(log, db, topic, Recording())
    run.catch_up(30)
    assert run.parked == 2
    with db.reading() as conn:
        counts = parked_counts(conn, ["AccountTimeline"])["AccountTimeline"]
    assert counts == {"total": 2, "undecodable": 1, "invalid": 1}
    assert [e for _, e, _, _ in view(db)] == good
    with db.reading() as conn:
        assert sum(checkpoints.load(conn, "AccountTimeline", 0, topic).values()) == 3


def test_view_is_a_pure_fold_whatever_the_batching(log: EventLog, db: Database, topic: str) -> None:
    post(log, topic, 40)
    post(log, topic, 5, occurred_at="2020-01-01T00:00:00Z")
    views = []
    for batch in (1, 7, 1000):
        with db.transaction() as conn:
            AccountTimeline().clear(conn)
            checkpoints.reset(conn, ["AccountTimeline"], 0)
            copies.forget(conn, topic)
        runner(log, db, topic, Recording(), batch=batch).catch_up(60)
        views.append(view(db))
    assert views[0] == views[1] == views[2]
    assert len(views[0]) == 45


def test_wait_for_reports_applied_positions(log: EventLog, db: Database, topic: str) -> None:
    record = codec.encode(parse_event(make_event()))
    ((partition, offset),) = log.append(topic, [record])
    run = runner(log, db, topic, Recording())
    assert not run.wait_for({partition: offset}, 0.01)
    run.catch_up(30)
    assert run.wait_for({partition: offset}, 0.01)
    assert run.applied()[partition] == offset + 1
