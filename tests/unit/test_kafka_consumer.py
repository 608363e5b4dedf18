"""KafkaGroupConsumer surfaces its assign listener's errors (no broker: a fake kafka consumer)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from services.core.adapters import kafka_log
from services.core.adapters.kafka_log import KafkaLog

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

    def close(self) -> None:
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
