"""The runner refuses to skip: gaps re-seek, checkpoints past the log's end stop it, replays
fence it, and commits stay within their bounds (both backends)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence

import pytest
from sqlalchemy import text

from services.bootstrap import build, migrate, projections
from services.core import codec
from services.core.adapters import kafka_log
from services.core.adapters.kafka_log import KafkaLog
from services.core.adapters.sql import Database
from services.core.deadletters import store
from services.core.events import parse_event
from services.core.metrics.definitions import LOG_CONSUMER_RESTARTS
from services.core.ports import AssignListener, EventLog, LogConsumer, LogRecord, OutgoingRecord
from services.core.readmodels import checkpoints
from services.core.settings import Settings
from services.projections.chunks import Chunk
from services.projections.runner import CheckpointAhead, ProjectionRunner
from tests import backends
from tests.integration.test_runner import Recording, post, runner, view
from tests.samples import make_event


class Skipping(EventLog):
    """A log whose consumers skip the records at ``drop`` positions. ``stale``: on its first
    assignment the consumer starts one past them (a position out of step with the checkpoints),
    and reads faithfully once re-seeked. Otherwise every read passes over them, as readers pass
    over transaction markers: a hole in the log."""

    def __init__(self, inner: EventLog, drop: set[tuple[int, int]], *, stale: bool) -> None:
        self.inner, self.drop, self.stale = inner, drop, stale

    def ensure_topic(self, topic: str, partitions: int) -> int:
        return self.inner.ensure_topic(topic, partitions)

    def append(self, topic: str, records: Sequence[OutgoingRecord]) -> list[tuple[int, int]]:
        return self.inner.append(topic, records)

    def end_offsets(self, topic: str) -> dict[int, int]:
        return self.inner.end_offsets(topic)

    def consumer(self, topic: str, group: str, on_assign: AssignListener) -> LogConsumer:
        drop, stale = self.drop, self.stale

        def out_of_step(partitions: Sequence[int]) -> Mapping[int, int]:
            start = dict(on_assign(partitions))
            if stale:
                start.update({p: o + 1 for p, o in start.items() if (p, o) in drop})
            return start

        inner = self.inner.consumer(topic, group, out_of_step)

        class Skipper(LogConsumer):
            def poll(self, max_records: int, timeout_s: float) -> list[LogRecord]:
                records = inner.poll(max_records, timeout_s)
                if stale:
                    return records
                return [r for r in records if (r.partition, r.offset) not in drop]

            def assignment(self) -> frozenset[int]:
                return inner.assignment()

            def positions(self) -> dict[int, int]:
                return inner.positions()

            def seek(self, partition: int, offset: int) -> None:
                inner.seek(partition, offset)

            def close(self) -> None:
                inner.close()

        return Skipper()

    def close(self) -> None:
        self.inner.close()


def first_offsets(log: EventLog, topic: str) -> set[tuple[int, int]]:
    """The first record of each non-empty partition."""
    return {(p, 0) for p, end in log.end_offsets(topic).items() if end > 0}


def test_a_consumer_that_skips_records_is_re_seeked_and_nothing_is_lost(
    log: EventLog, db: Database, topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    ids = post(log, topic, 20)
    lossy = Skipping(log, first_offsets(log, topic), stale=True)
    projection = Recording()
    with caplog.at_level(logging.INFO, logger="services.projections.runner"):
        runner(lossy, db, topic, projection).catch_up(60)
    assert "re-seeking to the checkpoints" in caplog.text
    assert sorted(projection.seen) == sorted(ids)
    with db.reading() as conn:
        assert checkpoints.load(conn, projection.name, 0, topic) == log.end_offsets(topic)


def test_a_hole_that_stays_after_re_seeking_is_accepted(
    log: EventLog, db: Database, topic: str
) -> None:
    ids = post(log, topic, 20)
    holes = first_offsets(log, topic)
    projection = Recording()
    runner(Skipping(log, holes, stale=False), db, topic, projection).catch_up(30)
    # Only the records no reader can see are missing; the checkpoints reach the end.
    assert len(projection.seen) == len(ids) - len(holes)
    with db.reading() as conn:
        assert checkpoints.load(conn, projection.name, 0, topic) == log.end_offsets(topic)


def test_a_checkpoint_past_the_log_end_stops_the_runner(
    log: EventLog, db: Database, topic: str
) -> None:
    post(log, topic, 3)
    ends = log.end_offsets(topic)
    partition = next(p for p, o in ends.items() if o > 0)
    with db.transaction() as conn:
        checkpoints.advance(conn, "AccountTimeline", 0, topic, {partition: ends[partition] + 5})
    run = runner(log, db, topic, Recording())
    stop = threading.Event()
    worker = threading.Thread(target=run.run_forever, args=(stop,))
    worker.start()
    worker.join(timeout=60)
    stop.set()
    assert not worker.is_alive(), "the runner kept going past an impossible checkpoint"
    assert run.failure is not None
    expected = (f"partition {partition} up to offset {ends[partition] + 5}, but the log ends at"
                f" {ends[partition]}")  # fmt: skip
    assert expected in run.failure and topic in run.failure
    with pytest.raises(CheckpointAhead):
        runner(log, db, topic, Recording()).run_once()


def test_a_replay_beside_a_live_runner_leaves_nothing_out(
    log: EventLog, db: Database, topic: str
) -> None:
    first = post(log, topic, 10)
    live = runner(log, db, topic, Recording())
    live.catch_up(30)
    # A replay elsewhere: fence, clear, reset (as services.projections.replay does).
    with db.transaction() as conn:
        checkpoints.bump(conn, ["AccountTimeline"], 0)
        Recording().clear(conn)
        checkpoints.reset(conn, ["AccountTimeline"], 0)
    later = post(log, topic, 5)
    # The live runner resumed before the replay; whether the fence or the continuity check
    # stops its next commit, it must resume from the reset checkpoints and rebuild everything
    # instead of leaving the first ten out (the fence alone: the test after this one).
    live.catch_up(30)
    assert sorted(e for _, e, _, _ in view(db)) == sorted(first + later)
    with db.reading() as conn:
        assert checkpoints.load(conn, "AccountTimeline", 0, topic) == log.end_offsets(topic)


class Chunks(ProjectionRunner):
    """Records the size of every commit."""

    commits: list[tuple[int, int]]

    def _commit(self, chunk: Chunk, read_from: Mapping[int, int]) -> dict[int, int]:
        self.commits.append((len(chunk.records), chunk.size))
        return super()._commit(chunk, read_from)


def test_a_commit_holds_at_most_the_batch_bytes(log: EventLog, db: Database, topic: str) -> None:
    ids = post(log, topic, 12, summary="가" * 300)  # about 1.6 kB per record
    run = Chunks(log, db, topic, [Recording()], group=backends.unique("bytes"),
                 batch_size=1000, batch_bytes=4000)  # fmt: skip
    run.commits = []
    run.catch_up(30)
    assert sum(n for n, _ in run.commits) == len(ids)
    assert all(size <= 4000 for _, size in run.commits), run.commits
    assert max(n for n, _ in run.commits) == 2


def test_commits_lock_only_their_partitions(pg_url: str) -> None:
    """PostgreSQL only: SQLite serialises every writer by design."""
    db = Database(pg_url)
    migrate(db)
    with db.transaction() as conn:
        checkpoints.advance(conn, "P", 0, "t", {0: 1, 1: 1})
    with db.transaction() as holder:
        checkpoints.load(holder, "P", 0, "t", lock=True, partitions=[0])
        with db.transaction() as other:
            other.execute(text("SET LOCAL lock_timeout = '2s'"))
            # Another projector's batch on partition 1 is not blocked by partition 0's lock.
            assert checkpoints.load(other, "P", 0, "t", lock=True, partitions=[1]) == {1: 1}
    db.dispose()


def test_every_read_model_keeps_the_first_copy_of_an_event_id(
    log: EventLog, db: Database, topic: str
) -> None:
    first = make_event("commitment.made", account_id="copy-고객", summary="첫 번째",
                       occurred_at="2026-11-20T10:00:00+09:00",
                       payload={"commitment_id": "C-1", "text": "견적 송부"})  # fmt: skip
    # A foreign producer re-sends the id later with another body (later time, other text).
    second = {**first, "summary": "두 번째", "occurred_at": "2026-11-21T10:00:00+09:00",
              "payload": {"commitment_id": "C-1", "text": "다른 약속"}}  # fmt: skip
    log.append(topic, [codec.encode(parse_event(b)) for b in (first, second)])
    ProjectionRunner(log, db, topic, projections(), group=backends.unique("copies")).catch_up(30)
    ((p1, o1),) = {(p, 0) for p, end in log.end_offsets(topic).items() if end > 0}
    with db.reading() as conn:
        touch = conn.execute(
            text(
                "SELECT last_touch_partition, last_touch_offset FROM account_directory_accounts"
                " WHERE account_id = 'copy-고객'"
            )
        ).one()
        made = conn.execute(
            text(
                "SELECT text, made_offset FROM one_voice_view_commitments"
                " WHERE account_id = 'copy-고객'"
            )
        ).one()
        summary = conn.execute(
            text("SELECT body FROM account_timeline_events WHERE event_id = :e"),
            {"e": first["event_id"]},
        ).scalar_one()
    assert tuple(touch) == (p1, o1)
    assert tuple(made) == ("견적 송부", o1)
    assert '"첫 번째"' in summary


def test_records_an_older_version_parked_as_unsupported_are_applied_when_a_projector_starts(
    settings: Settings,
) -> None:

    services = build(settings)
    try:
        body = make_event("support.ticket_opened", account_id="upgrade-고객")
        log, topic = services.container.log, settings.topic
        ((partition, offset),) = log.append(topic, [codec.encode(parse_event(body))])
        services.runner.catch_up(30)
        record = LogRecord(topic, partition, offset, b"upgrade-\xea\xb3\xa0\xea\xb0\x9d",
                           codec.encode(parse_event(body)).value, 0)  # fmt: skip
        # As an older version would have left it: parked unsupported for OneVoiceView, whose
        # view lacks it.
        with services.container.db.transaction() as conn:
            conn.execute(text("DELETE FROM one_voice_view_tickets"))
            store.park(conn, 0, [store.Parked("OneVoiceView", record, "unsupported",
                                              ValueError("newer schema"), body["event_id"],
                                              body["type"])], 1)  # fmt: skip
        services.start_projector()
        with services.container.db.reading() as conn:
            (item,), _ = store.list_page(conn, store.Filters(state=None), None, 10)
            ticket = conn.execute(text("SELECT opened_event_id FROM one_voice_view_tickets"))
            assert ticket.scalar_one() == body["event_id"]
        assert (item["state"], item["attempts"]) == ("redriven", 2)
    finally:
        services.close()


def test_a_runner_told_to_recheck_resumes_once_a_replay_fixed_the_checkpoints(
    log: EventLog, db: Database, topic: str
) -> None:
    ids = post(log, topic, 6)
    ends = log.end_offsets(topic)
    partition = next(p for p, o in ends.items() if o > 0)
    with db.transaction() as conn:
        checkpoints.advance(conn, "AccountTimeline", 0, topic, {partition: ends[partition] + 5})
    projection = Recording()
    run = runner(log, db, topic, projection)
    stop = threading.Event()
    worker = threading.Thread(target=run.run_forever, args=(stop,), kwargs={"recheck_s": 0.05})
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while run.failure is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert run.failure is not None and worker.is_alive()
        with db.transaction() as conn:  # what `onevoice replay` does first
            checkpoints.bump(conn, ["AccountTimeline"], 0)
            Recording().clear(conn)
            checkpoints.reset(conn, ["AccountTimeline"], 0)
        assert run.wait_for({p: o - 1 for p, o in ends.items() if o > 0}, 30)
        assert run.failure is None
        assert sorted(projection.seen) == sorted(ids)
    finally:
        stop.set()
        worker.join(timeout=30)


def test_transactions_of_a_foreign_producer_neither_stall_nor_re_seek_the_runner(
    kafka_bootstrap: str, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Kafka only: commit and abort markers and aborted records take offsets no reader sees."""
    from kafka import KafkaProducer

    topic = backends.unique("tx-runner")
    log = KafkaLog(kafka_bootstrap)
    log.ensure_topic(topic, 1)
    db = Database(pg_url)
    migrate(db)
    committed = [make_event("sales.call_logged", account_id="tx-고객") for _ in range(3)]
    aborted = make_event("sales.call_logged", account_id="tx-고객", summary="취소된 거래")
    plain = make_event("sales.call_logged", account_id="tx-고객", summary="평범한 통화")
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap,
                             transactional_id=backends.unique("tx"))  # fmt: skip
    try:
        producer.init_transactions()
        for batch, commit in ((committed[:2], True), ([aborted], False), (committed[2:], True)):
            producer.begin_transaction()
            for body in batch:
                producer.send(topic, key=b"tx", value=json.dumps(body).encode())
            if commit:
                producer.commit_transaction()
            else:
                producer.abort_transaction()
    finally:
        producer.close()
    log.append(topic, [codec.encode(parse_event(plain))])
    # The log ends with a commit marker after the last transaction.
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap,
                             transactional_id=backends.unique("tx"))  # fmt: skip
    try:
        producer.init_transactions()
        producer.begin_transaction()
        last = make_event("sales.call_logged", account_id="tx-고객", summary="마지막 거래")
        producer.send(topic, key=b"tx", value=json.dumps(last).encode())
        producer.commit_transaction()
    finally:
        producer.close()
    projection = Recording()
    run = ProjectionRunner(log, db, topic, [projection], group=backends.unique("tx"),
                           batch_size=2, idle_s=0.05)  # fmt: skip
    try:
        with (
            caplog.at_level(logging.INFO, logger="services.projections.runner"),
            caplog.at_level(logging.INFO, logger="services.core.adapters.kafka_log"),
        ):
            run.catch_up(60)  # the log's end lies after the last commit marker
        # Markers met while reading on cost nothing; only a gap met right after an assignment
        # (a rebalance under load) is re-read once before it is accepted.
        assert caplog.text.count("re-seeking") <= caplog.text.count("assigned partitions")
        expected = [b["event_id"] for b in (*committed, plain, last)]
        assert sorted(projection.seen) == sorted(expected)
        with db.reading() as conn:
            assert checkpoints.load(conn, projection.name, 0, topic) == log.end_offsets(topic)
    finally:
        run.close()
        log.close()
        db.dispose()


def test_a_kafka_client_that_stops_fetching_is_replaced_and_nothing_is_lost_or_doubled(
    kafka_bootstrap: str,
    pg_url: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Kafka only: kafka-python 3.0 can hold a lagging partition and fetch nothing, every poll
    empty (seen in full runs). Here the first client wedges after its first batch, the way the
    real one did, if it did not stall by itself before; the runner still applies every event
    exactly once."""
    real_client = kafka_log.KafkaConsumer
    made: list[object] = []

    class Wedging:
        """A real client that returns nothing after its first non-empty poll."""

        def __init__(self, **config: object) -> None:
            self.inner, self.served = real_client(**config), False

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

        def poll(self, timeout_ms: int, max_records: int) -> dict[object, list[object]]:
            if self.served:
                time.sleep(timeout_ms / 1000)
                return {}
            batches = self.inner.poll(timeout_ms=timeout_ms, max_records=max_records)
            self.served = bool(batches)
            return batches

    def new_client(**config: object) -> object:
        if "group_id" not in config:  # the log's end-offset reader
            return real_client(**config)
        made.append(Wedging(**config) if not made else real_client(**config))
        return made[-1]

    monkeypatch.setattr(kafka_log, "KafkaConsumer", new_client)
    topic = backends.unique("wedged")
    log = KafkaLog(kafka_bootstrap)
    log.ensure_topic(topic, 4)
    db = Database(pg_url)
    migrate(db)
    ids = post(log, topic, 40)
    restarts = LOG_CONSUMER_RESTARTS.labels("stalled")
    before = restarts._value.get()
    projection = Recording()
    run = ProjectionRunner(log, db, topic, [projection], group=backends.unique("wedged"),
                           batch_size=4, idle_s=0.05)  # fmt: skip
    try:
        with caplog.at_level(logging.WARNING, logger="services.core.adapters.kafka_log"):
            run.catch_up(60)
        # (The real client sometimes stalls on its own before its first batch, too.)
        assert len(made) >= 2 and isinstance(made[0], Wedging)
        assert "restarting the kafka client" in caplog.text
        assert restarts._value.get() == before + len(made) - 1
        assert sorted(projection.seen) == sorted(ids)  # each once: the new client resumed
        with db.reading() as conn:  # from the checkpoints
            assert checkpoints.load(conn, projection.name, 0, topic) == log.end_offsets(topic)
    finally:
        run.close()
        log.close()
        db.dispose()


def test_a_table_the_code_expects_missing_parks_nothing_and_is_reported_until_fixed(
    log: EventLog, db: Database, topic: str
) -> None:
    ids = post(log, topic, 5, account_id="schema-고객")
    with db.transaction() as conn:
        conn.execute(text("ALTER TABLE account_timeline_entries RENAME TO entries_elsewhere"))
    run = runner(log, db, topic, Recording())
    stop = threading.Event()
    worker = threading.Thread(target=run.run_forever, args=(stop,))
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while run.failure is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert run.failure is not None
        assert run.failure.startswith("the database does not fit this version")
        with db.reading() as conn:
            assert conn.execute(text("SELECT count(*) FROM dead_letters")).scalar_one() == 0
        with db.transaction() as conn:
            conn.execute(text("ALTER TABLE entries_elsewhere RENAME TO account_timeline_entries"))
        assert run.wait_for({p: o - 1 for p, o in log.end_offsets(topic).items() if o}, 30)
        assert run.failure is None
        assert sorted(e for _, e, _, _ in view(db)) == sorted(ids)
    finally:
        stop.set()
        worker.join(timeout=30)


def test_a_newer_versions_copy_stays_the_first_copy_of_its_id(
    log: EventLog, db: Database, topic: str
) -> None:
    body = make_event("sales.call_logged", account_id="newer-고객")
    newer = {**body, "schema_version": 2, "mood": "good"}
    log.append(topic, [OutgoingRecord(b"newer", json.dumps(newer).encode()),
                       codec.encode(parse_event(body))])  # fmt: skip
    projection = Recording()
    runner(log, db, topic, projection).catch_up(30)
    # Until an upgrade re-drives the newer copy, the id is absent: a pure fold of the log by
    # the newer version would have applied the first copy, not the older retry behind it.
    assert projection.seen == []
    with db.reading() as conn:
        (parked,), _ = store.list_page(conn, store.Filters(), None, 10)
    assert (parked["reason"], parked["event_id"]) == ("unsupported", body["event_id"])


def test_a_runner_that_resumed_before_a_fence_moved_cannot_commit(
    log: EventLog, db: Database, topic: str, caplog: pytest.LogCaptureFixture
) -> None:
    post(log, topic, 4)
    live = runner(log, db, topic, Recording())
    live.catch_up(30)
    with db.transaction() as conn:
        checkpoints.bump(conn, ["AccountTimeline"], 0)  # a rebuild took over; nothing reset
    later = post(log, topic, 4)
    with db.transaction() as conn, pytest.raises(checkpoints.Fenced, match="AccountTimeline"):
        checkpoints.fence(conn, {"AccountTimeline": 0}, 0)  # a commit at the old epoch
    with caplog.at_level(logging.WARNING, logger="services.projections.runner"):
        live.catch_up(30)  # refused (idle or at its commit), then resumed at the new epoch
    assert "fenced" in caplog.text
    assert set(later) <= {e for _, e, _, _ in view(db)}
