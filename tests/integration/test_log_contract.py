"""The EventLog port contract. Every adapter subclasses ``EventLogContract``."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from services.core.adapters.embedded_log import EmbeddedLog
from services.core.adapters.kafka_log import KafkaLog
from services.core.partitioner import partition_for
from services.core.ports import (
    EventLog,
    LogMisconfigured,
    LogRecord,
    LogUnavailable,
    OutgoingRecord,
)
from tests import backends
from tests.fakes import InMemoryLog

ROOT = Path(__file__).resolve().parents[2]


def rec(key: str, value: str, headers: tuple[tuple[str, bytes], ...] = ()) -> OutgoingRecord:
    return OutgoingRecord(key.encode(), value.encode(), headers)


class EventLogContract:
    """Assertions every EventLog adapter must pass."""

    @pytest.fixture
    def log(self) -> Iterator[EventLog]:
        raise NotImplementedError

    def reopen(self, log: EventLog) -> EventLog:
        raise NotImplementedError

    topic = "contract.events"

    def read(
        self,
        log: EventLog,
        expected: int,
        start: dict[int, int] | None = None,
        max_records: int = 100,
    ) -> list[LogRecord]:
        """Poll until ``expected`` records arrived (bounded), then check nothing more comes.

        Like a projector, the reader resumes each partition after the last record it read when
        the group assigns it again (a rebalance of this one member: seen once under a loaded
        ``make test``), so a rebalance neither repeats nor skips a record."""
        assigned: list[int] = []
        resume: dict[int, int] = dict(start or {})

        def on_assign(parts: Sequence[int]) -> dict[int, int]:
            assigned.extend(parts)
            return {p: resume[p] for p in parts if p in resume}

        consumer = log.consumer(self.topic, backends.unique("reader"), on_assign)
        out: list[LogRecord] = []
        try:
            deadline = time.monotonic() + 30
            while len(out) < expected and time.monotonic() < deadline:
                batch = consumer.poll(max_records, 0.2)
                assert len(batch) <= max_records
                out.extend(batch)
                resume.update({r.partition: r.offset + 1 for r in batch})
            out.extend(consumer.poll(max_records, 0.2))
            assert sorted(set(assigned)) == list(range(4))
            assert consumer.assignment() == frozenset(range(4))
        finally:
            consumer.close()
        return out

    def values(self, records: list[LogRecord]) -> list[tuple[int, int, str]]:
        return sorted((r.partition, r.offset, r.value.decode()) for r in records)

    def test_ensure_topic_is_idempotent_and_keeps_the_first_partition_count(
        self, log: EventLog
    ) -> None:
        assert log.ensure_topic(self.topic, 4) == 4
        assert log.ensure_topic(self.topic, 9) == 4
        assert log.end_offsets(self.topic) == {0: 0, 1: 0, 2: 0, 3: 0}

    def test_append_partitions_like_kafka_with_dense_offsets(self, log: EventLog) -> None:
        log.ensure_topic(self.topic, 4)
        keys = [f"account-{i % 7}" for i in range(40)] + ["한국-고객"] * 3
        positions = log.append(self.topic, [rec(k, f"v{i}") for i, k in enumerate(keys)])
        expected_next: dict[int, int] = {}
        for key, (partition, offset) in zip(keys, positions, strict=True):
            assert partition == partition_for(key.encode(), 4)
            assert offset == expected_next.get(partition, 0)
            expected_next[partition] = offset + 1
        assert log.end_offsets(self.topic) == {p: expected_next.get(p, 0) for p in range(4)}
        more = log.append(self.topic, [rec("account-1", "later")])
        assert more == [
            (partition_for(b"account-1", 4), expected_next[partition_for(b"account-1", 4)])
        ]

    def test_consumer_reads_everything_in_order_with_keys_and_headers(self, log: EventLog) -> None:
        log.ensure_topic(self.topic, 4)
        headers = (("event_id", b"e-1"), ("type", "유형".encode()))
        log.append(
            self.topic, [rec("k", "첫 번째", headers), rec("k", "second"), rec("other", "x")]
        )
        records = self.read(log, 3)
        by_key = [r for r in records if r.key == b"k"]
        assert [r.value.decode() for r in by_key] == ["첫 번째", "second"]
        assert [r.offset for r in by_key] == [0, 1]
        assert by_key[0].headers == headers
        assert by_key[0].timestamp_ms > 0
        assert {r.topic for r in records} == {self.topic}
        assert len(records) == 3

    def test_consumer_starts_where_the_listener_says(self, log: EventLog) -> None:
        log.ensure_topic(self.topic, 4)
        positions = log.append(self.topic, [rec("same-key", f"v{i}") for i in range(5)])
        partition = positions[0][0]
        seen = self.values(self.read(log, 2, start={partition: 3}))
        assert seen == [(partition, 3, "v3"), (partition, 4, "v4")]

    def test_poll_waits_then_returns_new_records(self, log: EventLog) -> None:
        log.ensure_topic(self.topic, 4)
        consumer = log.consumer(self.topic, backends.unique("g"), lambda parts: {})
        try:
            for _ in range(10):  # an empty topic gives empty polls (a group join may take a few)
                assert consumer.poll(10, 0.2) == []
            timer = threading.Timer(0.1, lambda: log.append(self.topic, [rec("k", "late")]))
            timer.start()
            got: list = []
            for _ in range(50):
                got = consumer.poll(10, 0.2)
                if got:
                    break
            timer.join()
            assert [r.value for r in got] == [b"late"]
        finally:
            consumer.close()

    def test_a_failing_listener_is_raised_from_poll_and_asked_again(self, log: EventLog) -> None:
        log.ensure_topic(self.topic, 4)
        positions = log.append(self.topic, [rec("same-key", f"v{i}") for i in range(3)])
        partition = positions[0][0]
        calls: list[list[int]] = []

        class CheckpointBeyondEnd(Exception):
            pass

        def on_assign(parts: Sequence[int]) -> dict[int, int]:
            calls.append(sorted(parts))
            if len(calls) <= 2:
                raise CheckpointBeyondEnd(f"call {len(calls)}")
            return {partition: 2}

        consumer = log.consumer(self.topic, backends.unique("failing"), on_assign)
        raised: list[str] = []
        got: list[LogRecord] = []
        try:
            for _ in range(100):  # a group join may take a few polls (and Kafka may rebalance)
                try:
                    got.extend(consumer.poll(100, 0.2))
                except CheckpointBeyondEnd as exc:
                    assert not got, "records were returned before the listener answered"
                    raised.append(str(exc))
                if got:
                    break
            got.extend(consumer.poll(100, 0.2))
        finally:
            consumer.close()
        assert raised and set(raised) <= {"call 1", "call 2"}
        assert len(calls) >= 3 and {tuple(c) for c in calls} == {(0, 1, 2, 3)}
        # Only from where the listener said: not v0 and v1 from a default position. (A rebalance
        # after the answer may deliver v2 again, from the same answer.)
        assert set(self.values(got)) == {(partition, 2, "v2")}

    def test_max_records_is_respected(self, log: EventLog) -> None:
        log.ensure_topic(self.topic, 4)
        log.append(self.topic, [rec(f"k{i}", str(i)) for i in range(30)])
        assert len(self.read(log, 30, max_records=7)) == 30

    def test_missing_topic_is_unavailable(self, log: EventLog) -> None:
        with pytest.raises(LogUnavailable):
            log.append("no.such.topic", [rec("k", "v")])

    def test_records_survive_reopening(self, log: EventLog) -> None:
        log.ensure_topic(self.topic, 4)
        first = log.append(self.topic, [rec("k", "before")])
        reopened = self.reopen(log)
        try:
            after = reopened.append(self.topic, [rec("k", "after")])
            assert after[0] == (first[0][0], first[0][1] + 1)
            assert [v for _, _, v in self.values(self.read(reopened, 2))] == ["before", "after"]
        finally:
            reopened.close()


class TestEmbeddedLog(EventLogContract):
    @pytest.fixture
    def log(self, tmp_path: Path) -> Iterator[EventLog]:
        self.path = tmp_path / "log.sqlite3"
        opened = EmbeddedLog(self.path)
        yield opened
        opened.close()

    def reopen(self, log: EventLog) -> EventLog:
        log.close()
        return EmbeddedLog(self.path)

    def test_two_instances_on_one_file_share_offsets(self, log: EventLog) -> None:
        log.ensure_topic(self.topic, 4)
        other = EmbeddedLog(self.path)
        try:
            a = log.append(self.topic, [rec("k", "a")])
            b = other.append(self.topic, [rec("k", "b")])
            assert b[0] == (a[0][0], a[0][1] + 1)
        finally:
            other.close()

    def test_an_append_by_another_process_wakes_a_waiting_poll(self, log: EventLog) -> None:
        """``run``'s projector is a child process: an append by the parent must end the
        child's wait, not leave it to the poll's timeout (the in-process condition cannot)."""
        log.ensure_topic(self.topic, 4)
        consumer = log.consumer(self.topic, backends.unique("g"), lambda parts: {})
        script = (
            "import sys, time; from services.core.adapters.embedded_log import EmbeddedLog;"
            "from services.core.ports import OutgoingRecord; time.sleep(1.0);"
            "EmbeddedLog(__import__('pathlib').Path(sys.argv[1])).append(sys.argv[2],"
            " [OutgoingRecord(b'k', b'from-another-process', ())])"
        )  # fmt: skip
        try:
            assert consumer.poll(10, 0.05) == []  # assigned, at the end
            writer = subprocess.Popen([sys.executable, "-c", script, str(self.path), self.topic],
                                      cwd=ROOT)  # fmt: skip
            t0 = time.monotonic()
            got = consumer.poll(10, 60.0)
            waited = time.monotonic() - t0
            assert writer.wait(30) == 0
            assert [r.value for r in got] == [b"from-another-process"]
            # Woken by the append (about 1 s plus the interpreter's start), not by the timeout.
            assert waited < 30, waited
        finally:
            consumer.close()


class TestInMemoryFake(EventLogContract):
    """The fake the unit tests use must honour the same contract."""

    @pytest.fixture
    def log(self) -> Iterator[EventLog]:
        yield InMemoryLog()

    # Not part of the fake's promise: it is not durable and never blocks.
    test_records_survive_reopening = None  # type: ignore[assignment]
    test_poll_waits_then_returns_new_records = None  # type: ignore[assignment]


class TestKafkaLog(EventLogContract):
    @pytest.fixture
    def log(self, kafka_bootstrap: str) -> Iterator[EventLog]:
        self.bootstrap = kafka_bootstrap
        self.topic = backends.unique("contract")
        opened = KafkaLog(kafka_bootstrap, send_timeout_s=10)
        yield opened
        opened.close()

    def reopen(self, log: EventLog) -> EventLog:
        log.close()
        return KafkaLog(self.bootstrap, send_timeout_s=10)

    @contextmanager
    def admin(self) -> Iterator[Any]:
        from kafka import KafkaAdminClient

        client = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            yield client
        finally:
            client.close()

    def create_topic_with(self, configs: Mapping[str, str]) -> None:
        """Create the test topic behind OneVoice's back, with the given topic configs."""
        from kafka.admin import NewTopic

        with self.admin() as admin:
            admin.create_topics([NewTopic(self.topic, 2, 1, topic_configs=dict(configs))])

    def test_topic_is_created_to_keep_every_event(self, log: EventLog) -> None:
        from kafka.admin import ConfigResource

        log.ensure_topic(self.topic, 4)
        with self.admin() as admin:
            found = admin.describe_configs(
                [ConfigResource("TOPIC", self.topic)], config_filter="all"
            )["topic"][self.topic]
        # Set on the topic itself, so a broker or cluster default can never shorten it.
        keys = ("cleanup.policy", "retention.ms", "retention.bytes")
        assert {key: (found[key]["value"], found[key]["config_source"]) for key in keys} == {
            "cleanup.policy": ("delete", "DYNAMIC_TOPIC_CONFIG"),
            "retention.ms": ("-1", "DYNAMIC_TOPIC_CONFIG"),
            "retention.bytes": ("-1", "DYNAMIC_TOPIC_CONFIG"),
        }

    def test_finite_retention_is_refused_unless_allowed(self, log: EventLog) -> None:
        self.create_topic_with({"retention.ms": "3600000", "retention.bytes": "1048576"})
        with pytest.raises(LogMisconfigured) as refused:
            log.ensure_topic(self.topic, 2)
        message = str(refused.value)
        assert f"topic {self.topic!r}" in message
        assert "retention.ms=3600000 (events older than that are deleted)" in message
        assert "retention.bytes=1048576 (" in message
        assert (
            f"kafka-configs.sh --alter --entity-type topics --entity-name {self.topic}"
            f" --add-config retention.ms=-1,retention.bytes=-1 --bootstrap-server {self.bootstrap}"
        ) in message
        assert "cleanup.policy" not in message
        lenient = KafkaLog(self.bootstrap, allow_finite_retention=True)
        try:
            assert lenient.ensure_topic(self.topic, 2) == 2
        finally:
            lenient.close()

    def test_compaction_is_refused_even_when_finite_retention_is_allowed(
        self, log: EventLog
    ) -> None:
        # retention.ms is not set, so the broker's default (7 days) applies and is refused too.
        self.create_topic_with({"cleanup.policy": "compact,delete", "retention.bytes": "-1"})
        with pytest.raises(LogMisconfigured) as strict:
            log.ensure_topic(self.topic, 2)
        assert "cleanup.policy=compact,delete (compaction deletes older events" in str(strict.value)
        assert "retention.ms=604800000 (" in str(strict.value)
        assert "retention.bytes" not in str(strict.value)
        lenient = KafkaLog(self.bootstrap, allow_finite_retention=True)
        try:
            with pytest.raises(LogMisconfigured) as refused:
                lenient.ensure_topic(self.topic, 2)
        finally:
            lenient.close()
        message = str(refused.value)
        assert "cleanup.policy=compact,delete (" in message
        assert "retention.ms" not in message
        assert "ONEVOICE_KAFKA_ALLOW_FINITE_RETENTION does not allow compaction" in message

    def test_the_printed_fix_makes_the_topic_acceptable(self, log: EventLog) -> None:
        self.create_topic_with({"cleanup.policy": "compact", "retention.ms": "1000"})
        with pytest.raises(LogMisconfigured) as refused:
            log.ensure_topic(self.topic, 2)
        command = str(refused.value).split("Fix it with: ", 1)[1].split(" (", 1)[0].split()
        assert command[0] == "kafka-configs.sh"
        fixed = backends.kafka_configs(command[1:])
        assert fixed.returncode == 0, fixed.stdout
        assert log.ensure_topic(self.topic, 2) == 2

    def test_consumers_read_only_committed_records(self, log: EventLog) -> None:
        from kafka import KafkaProducer

        log.ensure_topic(self.topic, 4)
        producer = KafkaProducer(
            bootstrap_servers=self.bootstrap, transactional_id=backends.unique("tx")
        )
        try:
            producer.init_transactions()
            producer.begin_transaction()
            for value in (b"aborted-1", b"aborted-2"):
                producer.send(self.topic, key=b"acct", value=value)
            producer.flush()  # on the broker, in an open transaction
            partition = partition_for(b"acct", 4)
            # The end is the high watermark: an open transaction's records count (a token naming
            # a record written behind them stays valid); consumers still do not see them.
            assert log.end_offsets(self.topic)[partition] == 2
            producer.abort_transaction()
            producer.begin_transaction()
            producer.send(self.topic, key=b"acct", value=b"committed")
            producer.commit_transaction()
        finally:
            producer.close()
        assert log.append(self.topic, [rec("acct", "plain")]) == [(partition, 5)]
        # 0-1 aborted, 2 the abort marker, 3 committed, 4 the commit marker: offsets have gaps.
        assert self.values(self.read(log, 2)) == [
            (partition, 3, "committed"),
            (partition, 5, "plain"),
        ]
        assert log.end_offsets(self.topic)[partition] == 6

    def test_unreachable_broker_is_unavailable_within_the_timeout(self) -> None:
        dead = KafkaLog("127.0.0.1:1", send_timeout_s=1)
        started = time.monotonic()
        with pytest.raises(LogUnavailable):
            dead.append("any", [rec("k", "v")])
        assert time.monotonic() - started < 10
        dead.close()
