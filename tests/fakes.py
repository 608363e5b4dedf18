"""In-memory substitutes that subclass the real ports (for unit tests: no I/O)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from services.core.partitioner import partition_for
from services.core.ports import (
    AssignListener,
    EventLog,
    LogConsumer,
    LogRecord,
    LogUnavailable,
    OutgoingRecord,
    Receipt,
    ReceiptStore,
)


class InMemoryLog(EventLog):
    """A partitioned log in a dict; ``fail_appends`` makes ``append`` raise LogUnavailable."""

    def __init__(self) -> None:
        self.topics: dict[str, list[list[LogRecord]]] = {}
        self.fail_appends = False

    def ensure_topic(self, topic: str, partitions: int) -> int:
        self.topics.setdefault(topic, [[] for _ in range(partitions)])
        return len(self.topics[topic])

    def append(self, topic: str, records: Sequence[OutgoingRecord]) -> list[tuple[int, int]]:
        if self.fail_appends:
            raise LogUnavailable("in-memory log told to fail")
        if topic not in self.topics:
            raise LogUnavailable(f"topic {topic!r} does not exist")
        parts = self.topics[topic]
        out = []
        now_ms = int(time.time() * 1000)
        for r in records:
            p = partition_for(r.key, len(parts))
            parts[p].append(LogRecord(topic, p, len(parts[p]), r.key, r.value, now_ms, r.headers))
            out.append((p, len(parts[p]) - 1))
        return out

    def end_offsets(self, topic: str) -> dict[int, int]:
        return {p: len(recs) for p, recs in enumerate(self.topics[topic])}

    def consumer(self, topic: str, group: str, on_assign: AssignListener) -> LogConsumer:
        return InMemoryConsumer(self, topic, on_assign)

    def close(self) -> None:
        pass

    def all_records(self, topic: str) -> list[LogRecord]:
        return [r for part in self.topics[topic] for r in part]


class InMemoryConsumer(LogConsumer):
    def __init__(self, log: InMemoryLog, topic: str, on_assign: AssignListener) -> None:
        self._log, self._topic, self._on_assign = log, topic, on_assign
        self._positions: dict[int, int] | None = None

    def assignment(self) -> frozenset[int]:
        return frozenset(self._positions or ())

    def positions(self) -> dict[int, int]:
        return dict(self._positions or {})

    def seek(self, partition: int, offset: int) -> None:
        if self._positions is not None and partition in self._positions:
            self._positions[partition] = offset

    def poll(self, max_records: int, timeout_s: float) -> list[LogRecord]:
        parts = self._log.topics[self._topic]
        if self._positions is None:
            start = self._on_assign(list(range(len(parts))))
            self._positions = {p: start.get(p, 0) for p in range(len(parts))}
        out: list[LogRecord] = []
        for p, recs in enumerate(parts):
            take = recs[self._positions[p] : self._positions[p] + max_records - len(out)]
            out.extend(take)
            self._positions[p] += len(take)
        return out

    def close(self) -> None:
        pass


class InMemoryReceipts(ReceiptStore):
    def __init__(self) -> None:
        self.rows: dict[str, Receipt] = {}

    def claim(self, claims: Mapping[str, str]) -> dict[str, Receipt]:
        earlier = {k: self.rows[k] for k in claims if k in self.rows}
        for k, d in claims.items():
            self.rows.setdefault(k, Receipt(k, d, None))
        return earlier

    def confirm(self, positions: Mapping[str, tuple[int, int]]) -> None:
        for k, pos in positions.items():
            self.rows[k] = Receipt(k, self.rows[k].digest, pos)

    def release(self, event_ids: Sequence[str]) -> None:
        for k in event_ids:
            self.rows.pop(k, None)

    def highest_positions(self) -> dict[int, int]:
        highest: dict[int, int] = {}
        for receipt in self.rows.values():
            if receipt.position is not None:
                p, o = receipt.position
                highest[p] = max(highest.get(p, -1), o)
        return highest
