"""The raw limits: bare kafka-python producer and consumer loops, bare PostgreSQL bulk insert.

Same machine, same topic settings (partitions, ``retention.ms=-1``), same serialised records and
the same timeline rows the projection writes, so every service figure has a ceiling beside it.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from services.core.codec import StoredEvent
from services.core.events import EnvelopeBase
from services.core.ports import OutgoingRecord
from services.core.readmodels import timeline
from services.projections.timeline import search_text

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

EVENT_COLS = ("event_id", "account_id", "type", "department", "occurred_us", "partition",
              "offset", "body", "search_text")  # fmt: skip
ENTRY_COLS = ("account_id", "event_id", "occurred_us", "partition", "offset", "type",
              "department")  # fmt: skip


Positions = list[tuple[int, int]]


def produce(
    bootstrap: str, topic: str, records: Sequence[OutgoingRecord]
) -> tuple[float, Positions]:
    """Send every record (acks=all, idempotent, linger 5 ms as the service), flush, collect
    positions; returns (seconds, positions)."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5,
        client_id="bench-raw-producer",
    )  # fmt: skip
    try:
        producer.partitions_for(topic)  # metadata outside the timed loop
        started = time.perf_counter()
        futures = [
            producer.send(topic, key=r.key, value=r.value, headers=list(r.headers)) for r in records
        ]
        producer.flush()
        positions = [(m.partition, m.offset) for m in (f.get() for f in futures)]
        seconds = time.perf_counter() - started
    finally:
        producer.close()
    return seconds, positions


def consume(bootstrap: str, topic: str, partitions: int) -> tuple[float, int, int]:
    """Read the topic from the beginning to its end (no group, as fast as the client goes);
    returns (seconds, records, bytes)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, client_id="bench-raw-consumer"
    )
    try:
        parts = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(parts)
        end = {tp: int(o) for tp, o in consumer.end_offsets(parts).items()}
        consumer.seek_to_beginning(*parts)
        count = size = 0
        started = time.perf_counter()
        pending = {tp for tp, o in end.items() if o > 0}
        while pending:
            for tp, messages in consumer.poll(timeout_ms=1000, max_records=10_000).items():
                for m in messages:
                    count += 1
                    size += len(m.value)
                if messages and messages[-1].offset + 1 >= end[tp]:
                    pending.discard(tp)
        seconds = time.perf_counter() - started
    finally:
        consumer.close()
    return seconds, count, size


@dataclass
class Rows:
    events: list[tuple[Any, ...]]
    entries: list[tuple[Any, ...]]
    per_event_entries: list[int]


def timeline_rows(events: Sequence[EnvelopeBase], positions: Sequence[tuple[int, int]]) -> Rows:
    """The rows AccountTimeline.apply writes for these events (built outside the timing):
    none for organisation events, which no timeline holds."""
    ev_rows: list[tuple[Any, ...]] = []
    en_rows: list[tuple[Any, ...]] = []
    counts: list[int] = []
    for event, (partition, offset) in zip(events, positions, strict=True):
        assert event.recorded_at is not None
        if event.is_organisation:
            continue
        stored = StoredEvent(event, str(event.event_id), partition, offset, event.recorded_at)
        occurred = timeline.to_micros(event.occurred_at)
        dept = event.actor.department
        data = stored.body()
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        ev_rows.append((stored.event_id, event.account_id, stored.type, dept, occurred,
                        partition, offset, body, search_text(data)))  # fmt: skip
        accounts = (event.account_id, *event.related_account_ids)
        for account in accounts:
            en_rows.append((account, stored.event_id, occurred, partition, offset, stored.type,
                            dept))  # fmt: skip
        counts.append(len(accounts))
    return Rows(ev_rows, en_rows, counts)


def _cols(cols: Sequence[str]) -> str:
    return ", ".join(f'"{c}"' for c in cols)


def pg_insert(url: str, rows: Rows, batch: int, *, copy: bool) -> float:
    """Insert the rows into scratch copies of the timeline tables, ``batch`` events per
    transaction (INSERT … ON CONFLICT DO NOTHING via executemany, or COPY); returns seconds."""
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    ev_t, en_t = f"{timeline.PREFIX}_events", f"{timeline.PREFIX}_entries"
    with psycopg.connect(plain, autocommit=True) as conn:
        for table, like in (("bench_raw_events", ev_t), ("bench_raw_entries", en_t)):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute(f"CREATE TABLE {table} (LIKE {like} INCLUDING ALL)")
        ev_sql = (f"INSERT INTO bench_raw_events ({_cols(EVENT_COLS)}) VALUES "
                  f"({', '.join(['%s'] * len(EVENT_COLS))}) ON CONFLICT DO NOTHING")  # fmt: skip
        en_sql = (f"INSERT INTO bench_raw_entries ({_cols(ENTRY_COLS)}) VALUES "
                  f"({', '.join(['%s'] * len(ENTRY_COLS))}) ON CONFLICT DO NOTHING")  # fmt: skip
        started = time.perf_counter()
        entry_at = 0
        for start in range(0, len(rows.events), batch):
            chunk = rows.events[start : start + batch]
            n_entries = sum(rows.per_event_entries[start : start + batch])
            entries = rows.entries[entry_at : entry_at + n_entries]
            entry_at += n_entries
            with conn.transaction(), conn.cursor() as cur:
                if copy:
                    with cur.copy(f"COPY bench_raw_events ({_cols(EVENT_COLS)}) FROM STDIN") as cp:
                        for row in chunk:
                            cp.write_row(row)
                    with cur.copy(f"COPY bench_raw_entries ({_cols(ENTRY_COLS)}) FROM STDIN") as cp:
                        for row in entries:
                            cp.write_row(row)
                else:
                    cur.executemany(ev_sql, chunk)
                    cur.executemany(en_sql, entries)
        seconds = time.perf_counter() - started
        for table in ("bench_raw_events", "bench_raw_entries"):
            conn.execute(f"DROP TABLE {table}")
    return seconds
