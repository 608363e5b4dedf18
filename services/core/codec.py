"""How an event travels through the log: record key, JSON value and headers, and back.

Contract: ``encode`` makes the record ingest appends (key = account id, value = the canonical
event JSON, headers ``event_id``/``type``/``schema_version``); ``decode`` turns any record read
from the log — ours or a foreign producer's — into a ``StoredEvent`` or raises
``RecordRejected`` (a ``ValueError``) saying why and of which kind: ``undecodable``,
``invalid`` or ``unsupported`` (an event of a newer contract, to be re-driven after an upgrade).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from services.core.events import (
    SCHEMA_VERSION,
    EnvelopeBase,
    dump_event,
    event_type,
    field_errors,
    parse_event,
)
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
        data = dump_event(self.event)  # includes event_id: decode() refuses events without one
        data["recorded_at"] = _iso(self.recorded_at)
        data["position"] = {"partition": self.partition, "offset": self.offset}
        return data


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range for a number")
    return value


def loads_strict(raw: bytes) -> Any:
    """Parse RFC 8259 JSON from UTF-8 bytes; ``ValueError`` says what is wrong.

    Stricter than ``json.loads``: no UTF-16/32 guessing, no ``NaN``/``Infinity``, no numbers
    that overflow to infinity, and deep nesting is an error rather than a crash.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text (byte {exc.start})") from exc
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:
        raise ValueError("nested too deeply") from exc


def encode(event: EnvelopeBase) -> OutgoingRecord:
    """The record for an event that already has ``event_id`` and ``recorded_at``."""
    if event.event_id is None:
        raise ValueError("event_id must be set before encoding")
    # dump_event's form, serialised by pydantic's core: a third of json.dumps' time. A value
    # JSON cannot carry never gets here: the envelope refuses NaN and infinities
    # (allow_inf_nan=False) and lone surrogates when it is validated.
    value = event.model_dump_json(exclude_none=True)
    headers = (
        ("event_id", str(event.event_id).encode()),
        ("type", event_type(event).encode()),
        ("schema_version", str(event.schema_version).encode()),
    )
    return OutgoingRecord(key=event.partition_key().encode(), value=value.encode(), headers=headers)


class RecordRejected(ValueError):
    """A record that is not an event this version can apply; ``reason`` says which kind."""

    def __init__(self, reason: str, message: str, event_id: str | None = None,
                 event_type: str | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.reason = reason
        self.event_id = event_id
        self.event_type = event_type


# Validation errors a NEWER contract explains: a type, a field or a schema_version we lack.
_NEWER = {"union_tag_invalid", "extra_forbidden"}


def _newer_contract(data: dict[str, Any], kinds: set[str]) -> str | None:
    version = data.get("schema_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        return f"schema_version {version} is newer than this version's {SCHEMA_VERSION}"
    if kinds and kinds <= _NEWER:
        kind = data.get("type")
        if "union_tag_invalid" not in kinds:
            return "fields this version does not know (a newer producer's event)"
        if isinstance(kind, str) and _TYPE_NAME.match(kind):
            return f"event type {kind!r} is not in this version's catalog"
    return None


_TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}\.[a-z][a-z0-9_]{0,63}$")  # department.noun_verb


def decode(record: LogRecord) -> StoredEvent:
    """Parse and validate a record; ``RecordRejected`` says why one cannot be used."""
    if record.value is None:
        raise RecordRejected("undecodable", "the record has no value (a tombstone)")
    try:
        data = loads_strict(record.value)
    except ValueError as exc:
        raise RecordRejected("undecodable", f"value is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise RecordRejected("invalid", "value is JSON but not an object")
    claimed_id, claimed_type = data.get("event_id"), data.get("type")
    claimed = (str(claimed_id)[:36] if isinstance(claimed_id, str) else None,
               claimed_type if isinstance(claimed_type, str) else None)  # fmt: skip
    try:
        event = parse_event(data, source=record.value)
    except ValidationError as exc:
        errors = field_errors(exc)
        newer = _newer_contract(data, {e["kind"] for e in errors})
        reason = "unsupported" if newer else "invalid"
        raise RecordRejected(reason, f"not a valid event: {newer or errors}", *claimed) from exc
    except Exception as exc:  # e.g. RecursionError: a record must be refused, never crash a reader
        raise RecordRejected("invalid", f"{type(exc).__name__}: {exc}", *claimed) from exc
    if event.event_id is None:
        raise RecordRejected("invalid", "event_id is missing", None, claimed[1])
    recorded_at = event.recorded_at or datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)
    return StoredEvent(event, str(event.event_id), record.partition, record.offset, recorded_at)
