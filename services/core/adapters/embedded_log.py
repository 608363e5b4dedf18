"""The embedded event log: a durable, file-backed stand-in for Kafka (SQLite, WAL, full fsync).

Same contract as the Kafka adapter: keys are partitioned with Kafka's murmur2 partitioner, each
partition has dense offsets from 0, records survive restarts, and ``append`` returns only after
the records are on disk. A consumer group here has one member, which owns every partition.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from services.core.partitioner import partition_for
from services.core.ports import (
    AssignListener,
    EventLog,
    Headers,
    LogConsumer,
    LogRecord,
    LogUnavailable,
    OutgoingRecord,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (name TEXT PRIMARY KEY, partitions INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, "offset" INTEGER NOT NULL,
    key BLOB, value BLOB NOT NULL, headers TEXT NOT NULL, timestamp_ms INTEGER NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
) WITHOUT ROWID;
"""

# Wakes consumers in this process as soon as a producer in this process appends.
_appended: dict[str, threading.Condition] = {}
_appended_guard = threading.Lock()
_WATCH_S, _WATCH_MAX_S = 0.002, 0.02
"""How long a waiting consumer waits before it asks SQLite whether another process appended:
the first wait, and the longest (each wait doubles the last)."""


def _condition_for(path: Path) -> threading.Condition:
    with _appended_guard:
        return _appended.setdefault(str(path.resolve()), threading.Condition())


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def _encode_headers(headers: Headers) -> str:
    return json.dumps([[k, base64.b64encode(v).decode()] for k, v in headers])


def _decode_headers(text: str) -> Headers:
    return tuple((k, base64.b64decode(v)) for k, v in json.loads(text))


class EmbeddedLog(EventLog):
    """A file-backed partitioned log (one SQLite file; safe across threads and processes)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._lock = threading.Lock()
        self._conn = _connect(path)
        self._conn.executescript(_SCHEMA)
        self._partitions: dict[str, int] = {}
        self._wakeup = _condition_for(path)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                raise LogUnavailable(f"embedded log: {exc}") from exc

    def ensure_topic(self, topic: str, partitions: int) -> int:
        with self._write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO topics (name, partitions) VALUES (?, ?)", (topic, partitions)
            )
        return self.partitions(topic)

    def partitions(self, topic: str) -> int:
        """The topic's partition count; ``LogUnavailable`` when it does not exist."""
        if topic not in self._partitions:
            with self._lock:
                row = self._conn.execute(
                    "SELECT partitions FROM topics WHERE name = ?", (topic,)
                ).fetchone()
            if row is None:
                raise LogUnavailable(f"topic {topic!r} does not exist")
            self._partitions[topic] = int(row[0])
        return self._partitions[topic]

    def append(self, topic: str, records: Sequence[OutgoingRecord]) -> list[tuple[int, int]]:
        count = self.partitions(topic)
        now_ms = int(time.time() * 1000)
        positions: list[tuple[int, int]] = []
        with self._write() as conn:
            next_offset: dict[int, int] = {}
            rows = []
            for record in records:
                partition = partition_for(record.key, count)
                if partition not in next_offset:
                    (top,) = conn.execute(
                        'SELECT MAX("offset") FROM records WHERE topic = ? AND partition = ?',
                        (topic, partition),
                    ).fetchone()
                    next_offset[partition] = 0 if top is None else int(top) + 1
                offset = next_offset[partition]
                next_offset[partition] = offset + 1
                positions.append((partition, offset))
                rows.append(
                    (topic, partition, offset, record.key, record.value,
                     _encode_headers(record.headers), now_ms)
                )  # fmt: skip
            conn.executemany(
                'INSERT INTO records (topic, partition, "offset", key, value, headers,'
                " timestamp_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        with self._wakeup:
            self._wakeup.notify_all()
        return positions

    def end_offsets(self, topic: str) -> dict[int, int]:
        count = self.partitions(topic)
        with self._lock:
            found = dict(
                self._conn.execute(
                    'SELECT partition, MAX("offset") + 1 FROM records WHERE topic = ?'
                    " GROUP BY partition",
                    (topic,),
                ).fetchall()
            )
        return {p: int(found.get(p, 0)) for p in range(count)}

    def consumer(self, topic: str, group: str, on_assign: AssignListener) -> LogConsumer:
        return EmbeddedConsumer(self._path, topic, self.partitions(topic), on_assign, self._wakeup)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class EmbeddedConsumer(LogConsumer):
    """The only member of its group: owns every partition from the first ``poll`` on."""

    def __init__(
        self,
        path: Path,
        topic: str,
        partitions: int,
        on_assign: AssignListener,
        wakeup: threading.Condition,
    ) -> None:
        self._conn = _connect(path)
        self._topic = topic
        self._count = partitions
        self._on_assign = on_assign
        self._wakeup = wakeup
        self._positions: dict[int, int] | None = None
        self._next_partition = 0

    def assignment(self) -> frozenset[int]:
        return frozenset(self._positions or ())

    def positions(self) -> dict[int, int]:
        return dict(self._positions or {})

    def seek(self, partition: int, offset: int) -> None:
        if self._positions is not None and partition in self._positions:
            self._positions[partition] = offset

    def poll(self, max_records: int, timeout_s: float) -> list[LogRecord]:
        if self._positions is None:
            all_partitions = list(range(self._count))
            start = self._on_assign(all_partitions)
            self._positions = {p: int(start.get(p, 0)) for p in all_partitions}
        # Before the fetch: an append committed while the fetch reads is seen as a change.
        version = self._data_version() if timeout_s > 0 else 0
        records = self._fetch(max_records)
        if not records and timeout_s > 0:
            self._wait_for_append(version, timeout_s)
            records = self._fetch(max_records)
        return records

    def _data_version(self) -> int:
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def _wait_for_append(self, version: int, timeout_s: float) -> None:
        """Until an append after ``version`` or ``timeout_s``. An append in this process
        notifies the condition; one in another process (``run``'s ingest, whose projector is a
        child process) changes SQLite's ``PRAGMA data_version`` of this connection, looked at
        after waits of ``_WATCH_S`` doubling to ``_WATCH_MAX_S`` (an idle consumer wakes about
        60 times a second; an append after a long quiet is seen within ``_WATCH_MAX_S``)."""
        deadline = time.monotonic() + timeout_s
        pause = _WATCH_S
        while True:
            if self._data_version() != version:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            with self._wakeup:
                if self._wakeup.wait(min(remaining, pause)):
                    return
            pause = min(pause * 2, _WATCH_MAX_S)

    def _fetch(self, max_records: int) -> list[LogRecord]:
        assert self._positions is not None
        out: list[LogRecord] = []
        # Rotate the starting partition so a busy partition cannot starve the others.
        order = [(self._next_partition + i) % self._count for i in range(self._count)]
        self._next_partition = (self._next_partition + 1) % self._count
        for partition in order:
            room = max_records - len(out)
            if room <= 0:
                break
            rows = self._conn.execute(
                'SELECT "offset", key, value, headers, timestamp_ms FROM records'
                ' WHERE topic = ? AND partition = ? AND "offset" >= ? ORDER BY "offset" LIMIT ?',
                (self._topic, partition, self._positions[partition], room),
            ).fetchall()
            for offset, key, value, headers, ts in rows:
                out.append(
                    LogRecord(self._topic, partition, offset, key, value, ts,
                              _decode_headers(headers))
                )  # fmt: skip
            if rows:
                self._positions[partition] = rows[-1][0] + 1
        return out

    def close(self) -> None:
        self._conn.close()
