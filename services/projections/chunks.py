"""Chunks: a poll's records, decoded and cut into commits that stay within the batch bounds.

A commit holds at most ``Bounds.events`` records, about ``Bounds.bytes`` bytes of record values
and about ``Bounds.rows`` view rows (estimated from each event's fan-out), so one huge event
cannot make a batch that exhausts memory; a record bigger than a bound goes alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from services.core import codec
from services.core.ports import LogRecord


@dataclass(frozen=True)
class Bounds:
    events: int = 1000
    bytes: int = 16 * 1024 * 1024
    rows: int = 50_000


@dataclass
class Chunk:
    """Records in log order per partition: the decoded events and the records refused."""

    records: list[LogRecord] = field(default_factory=list)
    events: list[codec.StoredEvent] = field(default_factory=list)
    rejected: list[tuple[LogRecord, codec.RecordRejected]] = field(default_factory=list)
    size: int = 0
    rows: int = 0

    def identified(self) -> list[tuple[int, int, str]]:
        """``(partition, offset, event_id)`` of the events, and of the records refused as
        ``unsupported`` that name a valid id: a newer version's event is that id's first copy
        too, so a later, older-format copy must not take its place before the upgrade re-drives
        it."""
        found = [(e.partition, e.offset, e.event_id) for e in self.events]
        for record, rejected in self.rejected:
            if rejected.reason == "unsupported" and rejected.event_id is not None:
                try:
                    event_id = str(uuid.UUID(rejected.event_id))
                except ValueError:
                    continue
                found.append((record.partition, record.offset, event_id))
        return found


def _rows(stored: codec.StoredEvent) -> int:
    """An upper bound of the view rows one event writes, per account it touches: timeline
    entries and directory rows, a contact row per contact and person of ours, and the
    ReportFacts touch and first-touch rows per person (a participant may bring a department)."""
    accounts = 1 + len(stored.event.related_account_ids)
    people = 1 + len(stored.event.participants or ())
    return 4 + accounts * (3 + len(stored.event.contacts) * people + 2 * people)


def split(records: Sequence[LogRecord], bounds: Bounds) -> Iterator[Chunk]:
    """Decode ``records`` and cut them into chunks within ``bounds``."""
    chunk = Chunk()
    for record in records:
        size = len(record.value or b"")
        try:
            stored: codec.StoredEvent | None = codec.decode(record)
        except codec.RecordRejected as exc:
            stored, rejected = None, exc
        rows = 1 if stored is None else _rows(stored)
        if chunk.records and (
            len(chunk.records) >= bounds.events
            or chunk.size + size > bounds.bytes
            or chunk.rows + rows > bounds.rows
        ):
            yield chunk
            chunk = Chunk()
        chunk.records.append(record)
        chunk.size += size
        chunk.rows += rows
        if stored is None:
            chunk.rejected.append((record, rejected))
        else:
            chunk.events.append(stored)
    if chunk.records:
        yield chunk
