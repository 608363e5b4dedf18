"""How an event travels through the log: record key, JSON value and headers, and back.

Contract: ``encode`` makes the record ingest appends (key = account id, value = the canonical
event JSON, headers ``event_id``/``type``/``schema_version``); ``decode`` turns any record read
from the log — ours or a foreign producer's — into a ``StoredEvent`` or raises ``ValueError``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from services.core.events import EnvelopeBase, dump_event, event_type, field_errors, parse_event
from services.core.ports import LogRecord, OutgoingRecord


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as the log holds it, with the server-side fields filled in."""

    event: EnvelopeBase
    event_id: str
    partition: int
    offset: int
    recorded_at: datetime

    @property
    def type(self) -> str:
        return event_type(self.event)

    def body(self) -> dict[str, Any]:
        """The JSON the API returns for this event."""
        data = dump_event(self.event)
        data["event_id"] = self.event_id
        data["recorded_at"] = _iso(self.recorded_at)
        data["position"] = {"partition": self.partition, "offset": self.offset}
        return data


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def encode(event: EnvelopeBase) -> OutgoingRecord:
    """The record for an event that already has ``event_id`` and ``recorded_at``."""
    if event.event_id is None:
        raise ValueError("event_id must be set before encoding")
    value = json.dumps(dump_event(event), ensure_ascii=False, separators=(",", ":"))
    headers = (
        ("event_id", str(event.event_id).encode()),
        ("type", event_type(event).encode()),
        ("schema_version", str(event.schema_version).encode()),
    )
    return OutgoingRecord(key=event.account_id.encode(), value=value.encode(), headers=headers)


def decode(record: LogRecord) -> StoredEvent:
    """Parse and validate a record; ``ValueError`` says why one cannot be used."""
    try:
        data = json.loads(record.value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"value is not JSON: {exc}") from exc
    except RecursionError as exc:
        raise ValueError("value is JSON nested too deeply") from exc
    try:
        event = parse_event(data)
    except ValidationError as exc:
        raise ValueError(f"not a valid event: {field_errors(exc)}") from exc
    if event.event_id is None:
        raise ValueError("event_id is missing")
    recorded_at = event.recorded_at or datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)
    return StoredEvent(event, str(event.event_id), record.partition, record.offset, recorded_at)
