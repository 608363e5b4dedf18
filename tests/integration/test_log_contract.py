"""The EventLog port contract. Every adapter subclasses ``EventLogContract``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.core.adapters.embedded_log import EmbeddedLog
from services.core.partitioner import partition_for
from services.core.ports import EventLog, LogUnavailable, OutgoingRecord
from tests.fakes import InMemoryLog

TOPIC = "contract.events"


def rec(key: str, value: str, headers: tuple[tuple[str, bytes], ...] = ()) -> OutgoingRecord:
    return OutgoingRecord(key.encode(), value.encode(), headers)


class EventLogContract:
    """Assertions every EventLog adapter must pass."""

    @pytest.fixture
    def log(self) -> Iterator[EventLog]:
        raise NotImplementedError

    def reopen(self, log: EventLog) -> EventLog:
        raise NotImplementedError

    def read_all(
        self, log: EventLog, start: dict[int, int] | None = None
    ) -> list[tuple[int, int, str]]:
        assigned: list[int] = []

        def on_assign(parts: object) -> dict[int, int]:
            assigned.extend(parts)  # type: ignore[call-overload]
            return dict(start or {})

        consumer = log.consumer(TOPIC, "contract-reader", on_assign)
        out: list[tuple[int, int, str]] = []
        try:
            while batch := consumer.poll(100, 0.2):
                out.extend((r.partition, r.offset, r.value.decode()) for r in batch)
            assert sorted(assigned) == list(range(4))
            assert consumer.assignment() == frozenset(range(4))
        finally:
            consumer.close()
        return out

    def test_ensure_topic_is_idempotent_and_keeps_the_first_partition_count(
        self, log: EventLog
    ) -> None:
        assert log.ensure_topic(TOPIC, 4) == 4
        assert log.ensure_topic(TOPIC, 9) == 4
        assert log.end_offsets(TOPIC) == {0: 0, 1: 0, 2: 0, 3: 0}

    def test_append_partitions_like_kafka_with_dense_offsets(self, log: EventLog) -> None:
        log.ensure_topic(TOPIC, 4)
        keys = [f"account-{i % 7}" for i in range(40)] + ["한국-고객"] * 3
        positions = log.append(TOPIC, [rec(k, f"v{i}") for i, k in enumerate(keys)])
        expected_next: dict[int, int] = {}
        for key, (partition, offset) in zip(keys, positions, strict=True):
            assert partition == partition_for(key.encode(), 4)
            assert offset == expected_next.get(partition, 0)
            expected_next[partition] = offset + 1
        assert log.end_offsets(TOPIC) == {p: expected_next.get(p, 0) for p in range(4)}
        more = log.append(TOPIC, [rec("account-1", "later")])
        assert more == [
            (partition_for(b"account-1", 4), expected_next[partition_for(b"account-1", 4)])
        ]

    def test_consumer_reads_everything_in_order_with_keys_and_headers(self, log: EventLog) -> None:
        log.ensure_topic(TOPIC, 4)
        headers = (("event_id", b"e-1"), ("type", "유형".encode()))
        log.append(TOPIC, [rec("k", "첫 번째", headers), rec("k", "second"), rec("other", "x")])
        consumer = log.consumer(TOPIC, "g", lambda parts: {})
        try:
            records: list = []
            while batch := consumer.poll(10, 0.2):
                records.extend(batch)
        finally:
            consumer.close()
        by_key = [r for r in records if r.key == b"k"]
        assert [r.value.decode() for r in by_key] == ["첫 번째", "second"]
        assert [r.offset for r in by_key] == [0, 1]
        assert by_key[0].headers == headers
        assert by_key[0].timestamp_ms > 0
        assert {r.topic for r in records} == {TOPIC}
        assert len(records) == 3

    def test_consumer_starts_where_the_listener_says(self, log: EventLog) -> None:
        log.ensure_topic(TOPIC, 4)
        positions = log.append(TOPIC, [rec("same-key", f"v{i}") for i in range(5)])
        partition = positions[0][0]
        seen = self.read_all(log, start={partition: 3})
        assert seen == [(partition, 3, "v3"), (partition, 4, "v4")]

    def test_poll_waits_then_returns_new_records(self, log: EventLog) -> None:
        log.ensure_topic(TOPIC, 4)
        consumer = log.consumer(TOPIC, "g", lambda parts: {})
        try:
            assert consumer.poll(10, 0.05) == []
            timer = threading.Timer(0.1, lambda: log.append(TOPIC, [rec("k", "late")]))
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

    def test_max_records_is_respected(self, log: EventLog) -> None:
        log.ensure_topic(TOPIC, 4)
        log.append(TOPIC, [rec(f"k{i}", str(i)) for i in range(30)])
        consumer = log.consumer(TOPIC, "g", lambda parts: {})
        try:
            sizes = []
            while batch := consumer.poll(7, 0.1):
                sizes.append(len(batch))
        finally:
            consumer.close()
        assert sum(sizes) == 30
        assert max(sizes) <= 7

    def test_missing_topic_is_unavailable(self, log: EventLog) -> None:
        with pytest.raises(LogUnavailable):
            log.append("no.such.topic", [rec("k", "v")])

    def test_records_survive_reopening(self, log: EventLog) -> None:
        log.ensure_topic(TOPIC, 4)
        first = log.append(TOPIC, [rec("k", "before")])
        reopened = self.reopen(log)
        try:
            after = reopened.append(TOPIC, [rec("k", "after")])
            assert after[0] == (first[0][0], first[0][1] + 1)
            assert [v for _, _, v in self.read_all(reopened)] == ["before", "after"]
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
        log.ensure_topic(TOPIC, 4)
        other = EmbeddedLog(self.path)
        try:
            a = log.append(TOPIC, [rec("k", "a")])
            b = other.append(TOPIC, [rec("k", "b")])
            assert b[0] == (a[0][0], a[0][1] + 1)
        finally:
            other.close()


class TestInMemoryFake(EventLogContract):
    """The fake the unit tests use must honour the same contract."""

    @pytest.fixture
    def log(self) -> Iterator[EventLog]:
        yield InMemoryLog()

    # Not part of the fake's promise: it is not durable and never blocks.
    test_records_survive_reopening = None  # type: ignore[assignment]
    test_poll_waits_then_returns_new_records = None  # type: ignore[assignment]
