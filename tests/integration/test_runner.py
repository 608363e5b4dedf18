"""The projection runner on the embedded log + SQLite: idempotence, resume, failure, pure fold."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import Connection, select

from services.bootstrap import migrate
from services.core import codec
from services.core.adapters.embedded_log import EmbeddedLog
from services.core.adapters.sql import Database
from services.core.codec import StoredEvent
from services.core.events import parse_event
from services.core.ports import AssignListener, EventLog, LogConsumer, OutgoingRecord
from services.core.readmodels import checkpoints, timeline
from services.projections.runner import ProjectionRunner
from services.projections.timeline import AccountTimeline
from tests.samples import make_event

TOPIC = "runner.events"


class Recording(AccountTimeline):
    """The real timeline projection, remembering which event ids it was handed."""

    def __init__(self, fail_times: int = 0) -> None:
        super().__init__()
        self.seen: list[str] = []
        self.fail_times = fail_times

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        super().apply(conn, events)
        if self.fail_times:
            self.fail_times -= 1
            raise RuntimeError("projection failed mid-batch")
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


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'views.sqlite3'}")
    migrate(database)
    yield database
    database.dispose()


@pytest.fixture
def log(tmp_path: Path) -> Iterator[EmbeddedLog]:
    event_log = EmbeddedLog(tmp_path / "log.sqlite3")
    event_log.ensure_topic(TOPIC, 3)
    yield event_log
    event_log.close()


def post(log: EventLog, count: int, **overrides: object) -> list[str]:
    bodies = [make_event(**{"account_id": f"acct-{i % 5}", "summary": f"event {i}", **overrides})
              for i in range(count)]  # fmt: skip
    events = [parse_event(b) for b in bodies]
    log.append(TOPIC, [codec.encode(e) for e in events])
    return [str(e.event_id) for e in events]


def runner(
    log: EventLog, db: Database, projection: AccountTimeline, batch: int = 4
) -> ProjectionRunner:
    return ProjectionRunner(log, db, TOPIC, [projection], batch_size=batch, idle_s=0.01)


def view(db: Database) -> list[tuple[str, str, int, int]]:
    entries = timeline.TABLES.entries
    with db.reading() as conn:
        rows = conn.execute(
            select(
                entries.c.account_id, entries.c.event_id, entries.c.partition, entries.c.offset
            ).order_by(entries.c.account_id, entries.c.event_id)
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def test_applies_everything_and_checkpoints_the_end(log: EmbeddedLog, db: Database) -> None:
    ids = post(log, 23)
    projection = Recording()
    assert runner(log, db, projection).run_until_idle() == 23
    assert sorted(projection.seen) == sorted(ids)
    with db.reading() as conn:
        assert checkpoints.load(conn, projection.name, 0, TOPIC) == {
            p: o for p, o in log.end_offsets(TOPIC).items() if o > 0
        }
    assert len(view(db)) == 23


def test_restart_resumes_from_the_stored_checkpoint(log: EmbeddedLog, db: Database) -> None:
    post(log, 10)
    assert runner(log, db, Recording()).run_until_idle() == 10
    later = post(log, 5)
    second = Recording()
    assert runner(log, db, second).run_until_idle() == 5
    assert sorted(second.seen) == sorted(later)


def test_a_replayed_batch_is_rejected_by_the_checkpoint(log: EmbeddedLog, db: Database) -> None:
    post(log, 12)
    runner(log, db, Recording()).run_until_idle()
    before = view(db)
    again = Recording()
    assert runner(Rewinding(log), db, again).run_until_idle() == 12
    assert again.seen == []
    assert view(db) == before


def test_duplicate_copies_in_the_log_appear_once(log: EmbeddedLog, db: Database) -> None:
    body = make_event(account_id="acme", related_account_ids=["acme-hq"])
    record = codec.encode(parse_event(body))
    log.append(TOPIC, [record, record])
    runner(log, db, Recording()).run_until_idle()
    log.append(TOPIC, [record])
    runner(log, db, Recording()).run_until_idle()
    assert [(a, e) for a, e, _, _ in view(db)] == [("acme", body["event_id"]),
                                                   ("acme-hq", body["event_id"])]  # fmt: skip


def test_a_failed_batch_rolls_back_and_is_retried(log: EmbeddedLog, db: Database) -> None:
    ids = post(log, 9)
    projection = Recording(fail_times=1)
    run = runner(log, db, projection)
    with pytest.raises(RuntimeError):
        run.run_once()
    assert view(db) == []
    run.run_until_idle()
    assert sorted(projection.seen) == sorted(ids)
    assert len(view(db)) == 9


def test_undecodable_records_are_skipped_and_counted(log: EmbeddedLog, db: Database) -> None:
    log.append(TOPIC, [OutgoingRecord(b"acme", b"not json"),
                       OutgoingRecord(b"acme", json.dumps({"type": "x"}).encode())])  # fmt: skip
    good = post(log, 1, account_id="acme")
    run = runner(log, db, Recording())
    run.run_until_idle()
    assert run.rejected == 2
    assert [e for _, e, _, _ in view(db)] == good
    with db.reading() as conn:
        assert sum(checkpoints.load(conn, "AccountTimeline", 0, TOPIC).values()) == 3


def test_view_is_a_pure_fold_whatever_the_batching(log: EmbeddedLog, tmp_path: Path) -> None:
    post(log, 40)
    post(log, 5, occurred_at="2020-01-01T00:00:00Z")
    views = []
    for batch in (1, 7, 1000):
        database = Database(f"sqlite:///{tmp_path / f'fold-{batch}.sqlite3'}")
        migrate(database)
        runner(log, database, Recording(), batch=batch).run_until_idle()
        views.append(view(database))
        database.dispose()
    assert views[0] == views[1] == views[2]
    assert len(views[0]) == 45


def test_wait_for_reports_applied_positions(log: EmbeddedLog, db: Database) -> None:
    record = codec.encode(parse_event(make_event()))
    ((partition, offset),) = log.append(TOPIC, [record])
    run = runner(log, db, Recording())
    assert not run.wait_for({partition: offset}, 0.01)
    run.run_until_idle()
    assert run.wait_for({partition: offset}, 0.01)
    assert run.applied()[partition] == offset + 1
