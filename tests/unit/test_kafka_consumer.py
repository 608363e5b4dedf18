"""KafkaGroupConsumer surfaces its assign listener's errors (no broker: a fake kafka consumer)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from services.bootstrap import open_log
from services.core.adapters import kafka_log
from services.core.adapters.kafka_log import KafkaLog
from tests.conftest import make_settings

TOPIC = "t"


class FakeKafkaConsumer:
    """What KafkaGroupConsumer uses of kafka-python's consumer, including its listener habit.

    The first poll joins the group: it calls the rebalance listener, logs and forgets whatever
    that raises (as kafka-python does), and returns a record from wherever the partition stands.
    """

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.listener: Any = None
        self.joined = False
        self.positions: dict[int, int] = {}
        self.closed = False

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0, 1}

    def subscribe(self, topics: list[str], listener: Any) -> None:
        self.listener = listener

    def assignment(self) -> set[Any]:
        return {kafka_log.TopicPartition(TOPIC, p) for p in (0, 1)} if self.joined else set()

    def seek(self, tp: Any, offset: int) -> None:
        self.positions[tp.partition] = offset

    def poll(self, timeout_ms: int, max_records: int) -> dict[Any, list[Any]]:
        if not self.joined:
            self.joined = True
            with contextlib.suppress(Exception):
                self.listener.on_partitions_assigned(self.assignment())
        offset = self.positions.get(0, 0)  # 0: the auto_offset_reset fallback
        record = SimpleNamespace(offset=offset, key=b"k", value=b"v", timestamp=1, headers=[])
        return {kafka_log.TopicPartition(TOPIC, 0): [record]}

    def position(self, tp: Any, timeout_ms: int | None = None) -> int | None:
        return self.positions.get(tp.partition)

    def end_offsets(self, partitions: list[Any], timeout_ms: int | None = None) -> dict[Any, int]:
        return {tp: 0 for tp in partitions}  # nothing to fetch: never stalled

    def close(self, timeout_ms: int | None = None) -> None:
        self.closed = True


def test_listener_errors_are_raised_from_poll_until_it_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeKafkaConsumer()
    monkeypatch.setattr(kafka_log, "KafkaConsumer", lambda **config: fake)
    answers: list[Exception | dict[int, int]] = [
        RuntimeError("database down"), RuntimeError("still down"), {0: 7, 1: 3}
    ]  # fmt: skip
    asked: list[list[int]] = []

    def on_assign(parts: Sequence[int]) -> dict[int, int]:
        asked.append(sorted(parts))
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    consumer = KafkaLog("b:9092").consumer(TOPIC, "g", on_assign)
    # The join's listener failed inside kafka-python: its record (from offset 0) is dropped.
    with pytest.raises(RuntimeError, match="database down"):
        consumer.poll(10, 0)
    # Asked again, on the caller's thread, before anything is read.
    with pytest.raises(RuntimeError, match="still down"):
        consumer.poll(10, 0)
    assert fake.positions == {}
    [record] = consumer.poll(10, 0)
    assert (record.partition, record.offset) == (0, 7)
    assert fake.positions == {0: 7, 1: 3}
    assert asked == [[0, 1], [0, 1], [0, 1]]
    [again] = consumer.poll(10, 0)  # answered: the listener is not asked again
    assert again.offset == 7 and len(asked) == 3
    consumer.close()
    assert fake.closed


class StalledConsumer(FakeKafkaConsumer):
    """Joined at the caller's positions; every poll returns nothing, whatever the log holds."""

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.ends = {0: 5, 1: 0}
        self.fail_checks = False

    def poll(self, timeout_ms: int, max_records: int) -> dict[Any, list[Any]]:
        if not self.joined:
            self.joined = True
            self.listener.on_partitions_assigned(self.assignment())
        return {}

    def end_offsets(self, partitions: list[Any], timeout_ms: int | None = None) -> dict[Any, int]:
        if self.fail_checks:
            raise kafka_log.KafkaError("request timed out")
        return {tp: self.ends[tp.partition] for tp in partitions}


def stalled_log(
    monkeypatch: pytest.MonkeyPatch, clients: list[FakeKafkaConsumer]
) -> tuple[list[float], list[FakeKafkaConsumer]]:
    """KafkaConsumer() hands out ``clients`` in turn; returns the fake clock and those made."""
    clock, made = [100.0], []

    def new_client(**config: Any) -> FakeKafkaConsumer:
        made.append(clients.pop(0))
        return made[-1]

    monkeypatch.setattr(kafka_log, "KafkaConsumer", new_client)
    monkeypatch.setattr(kafka_log.time, "monotonic", lambda: clock[0])
    return clock, made


def test_a_client_that_stops_fetching_a_lagging_partition_is_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock, made = stalled_log(monkeypatch, [StalledConsumer(), FakeKafkaConsumer()])
    asked: list[list[int]] = []
    consumer = KafkaLog("b:9092").consumer(
        TOPIC, "g", lambda parts: (asked.append(sorted(parts)), {0: 3, 1: 0})[1]
    )
    assert consumer.poll(10, 0) == []  # joined at 3 of 5 on partition 0: empty since now
    clock[0] += 4.9
    assert consumer.poll(10, 0) == [] and len(made) == 1  # not yet 5 s
    clock[0] += 0.2
    assert consumer.poll(10, 0) == []
    assert made[0].closed and len(made) == 2  # the stalled client left; a new one joined
    [record] = consumer.poll(10, 0)  # the new client asks the caller where to start
    assert (record.partition, record.offset) == (0, 3) and asked == [[0, 1], [0, 1]]
    consumer.close()
    assert made[1].closed


def test_a_quiet_client_at_the_end_or_unanswered_checks_are_not_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    at_end, unanswered = StalledConsumer(), StalledConsumer()
    at_end.ends = {0: 3, 1: 0}  # nothing to fetch: an idle projector
    unanswered.fail_checks = True  # the cluster does not answer (an outage): wait, do not churn
    for client in (at_end, unanswered):
        clock, made = stalled_log(monkeypatch, [client])
        consumer = KafkaLog("b:9092").consumer(TOPIC, "g", lambda parts: {0: 3, 1: 0})
        for _ in range(4):
            assert consumer.poll(10, 0) == []
            clock[0] += 6.0
        assert made == [client] and not client.closed
        consumer.close()


class BusyConsumer(StalledConsumer):
    """Partition 1 hands out a record per poll until ``quiet`` (its position moves); partition
    0 holds 3 of 50 and hands out nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.ends, self.quiet = {0: 50, 1: 50}, False

    def poll(self, timeout_ms: int, max_records: int) -> dict[Any, list[Any]]:
        super().poll(timeout_ms, max_records)
        if self.quiet:
            return {}
        at = self.positions[1]
        self.positions[1] = at + 1
        record = SimpleNamespace(offset=at, key=b"k", value=b"v", timestamp=1, headers=[])
        return {kafka_log.TopicPartition(TOPIC, 1): [record]}


def test_a_partition_waiting_behind_busy_ones_is_left_alone_until_the_polls_go_quiet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Catching up on many partitions, one partition's records can wait behind the others'
    for more than 5 s: no restart while polls hand records out. Once they hand out nothing,
    the partition that stays put is a stall."""
    client = BusyConsumer()
    clock, made = stalled_log(monkeypatch, [client, FakeKafkaConsumer()])
    consumer = KafkaLog("b:9092").consumer(TOPIC, "g", lambda parts: {0: 3, 1: 0})
    for _ in range(4):
        assert consumer.poll(10, 0)  # records from partition 1; partition 0 waits at 3
        clock[0] += 5.0
    assert len(made) == 1 and not client.closed
    client.quiet = True
    assert consumer.poll(10, 0) == []  # nothing since the last check, partition 0 still at 3
    assert len(made) == 2 and client.closed
    consumer.close()


def test_a_caller_that_paused_between_polls_is_not_taken_for_a_stall(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock, made = stalled_log(monkeypatch, [StalledConsumer(), FakeKafkaConsumer()])
    consumer = KafkaLog("b:9092").consumer(TOPIC, "g", lambda parts: {0: 3, 1: 0})
    consumer.poll(10, 0)
    clock[0] += 60.0  # the caller did something else for a minute (a rebuild between passes)
    consumer.poll(10, 0)
    assert len(made) == 1  # one lagging check after a pause proves nothing
    clock[0] += 5.0
    consumer.poll(10, 0)
    assert len(made) == 2  # polled on, 5 s apart, still at 3 of 5: stalled
    consumer.close()


def test_a_restart_that_cannot_join_raises_and_the_next_call_joins_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock, made = stalled_log(monkeypatch, [StalledConsumer(), FakeKafkaConsumer()])
    real_join = kafka_log.KafkaGroupConsumer._join
    failing = [True]

    def join(self: Any) -> Any:
        if len(made) == 1 and failing[0]:
            failing[0] = False
            raise kafka_log.LogUnavailable("joining group g: no brokers available")
        return real_join(self)

    monkeypatch.setattr(kafka_log.KafkaGroupConsumer, "_join", join)
    consumer = KafkaLog("b:9092").consumer(TOPIC, "g", lambda parts: {0: 3, 1: 0})
    consumer.poll(10, 0)
    clock[0] += 5.0
    with pytest.raises(kafka_log.LogUnavailable, match="no brokers"):
        consumer.poll(10, 0)  # the stalled client left; its successor could not join
    assert made[0].closed and len(made) == 1
    assert consumer.positions() == {}  # a new client, not yet joined: asks nothing of a None
    [record] = consumer.poll(10, 0)
    assert (record.partition, record.offset) == (0, 3) and len(made) == 2
    consumer.close()
    assert made[1].closed


def test_the_session_timeout_setting_reaches_every_group_member(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``ONEVOICE_KAFKA_SESSION_TIMEOUT_S``: how long the group waits for a silent member; the
    heartbeat stays at most a third of it (Kafka's rule)."""
    made: list[FakeKafkaConsumer] = []

    def new_client(**config: Any) -> FakeKafkaConsumer:
        made.append(FakeKafkaConsumer(**config))
        return made[-1]

    monkeypatch.setattr(kafka_log, "KafkaConsumer", new_client)
    for seconds, session_ms, heartbeat_ms in ((30, 30_000, 2_000), (6, 6_000, 2_000),
                                              (10.5, 10_500, 2_000)):  # fmt: skip
        settings = make_settings(tmp_path, log_backend="kafka", kafka_session_timeout_s=seconds)
        open_log(settings).consumer(TOPIC, "g", lambda parts: {}).close()
        assert made[-1].config["session_timeout_ms"] == session_ms
        assert made[-1].config["heartbeat_interval_ms"] == heartbeat_ms
    assert make_settings(tmp_path).kafka_session_timeout_s == 30
    # Below the broker's default group.min.session.timeout.ms (6 s): refused, naming the field.
    with pytest.raises(ValidationError, match="kafka_session_timeout_s"):
        make_settings(tmp_path, kafka_session_timeout_s=5)
