"""The dead-letter table and every query on it (see the package docstring for the contract)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from services.core.deadletters import Reason
from services.core.ports import LogRecord
from services.core.readmodels.checkpoints import LIVE_GENERATION
from services.core.readmodels.schema import METADATA
from services.core.readmodels.timeline import from_micros

MAX_ERROR_CHARS = 2000

DEAD_LETTERS = Table(
    "dead_letters",
    METADATA,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("projection", String(64), nullable=False),
    Column("generation", Integer, nullable=False),
    Column("topic", String(255), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("record_key", LargeBinary, nullable=True),
    Column("record_value", LargeBinary, nullable=True),
    Column("headers", Text, nullable=False),  # JSON [[name, base64 value], ...]
    Column("timestamp_ms", BigInteger, nullable=False),
    Column("event_id", String(36), nullable=True),
    Column("event_type", Text, nullable=True),
    Column("reason", String(16), nullable=False),
    Column("error_class", Text, nullable=False),
    Column("error_message", Text, nullable=False),
    Column("first_seen_us", BigInteger, nullable=False),
    Column("last_seen_us", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("state", String(16), nullable=False),  # parked | redriven
    Column("redriven_us", BigInteger, nullable=True),
    UniqueConstraint("projection", "generation", "topic", "partition", "offset",
                     name="uq_dead_letters_position"),
    Index("ix_dead_letters_state", "state", "projection", "reason", "id"),
)  # fmt: skip


@dataclass(frozen=True)
class Parked:
    """One record to park for one projection."""

    projection: str
    record: LogRecord
    reason: Reason
    error: BaseException
    event_id: str | None = None
    event_type: str | None = None


def clean(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """Text PostgreSQL can store (no NUL, no lone surrogates), bounded in length: parking a
    record must never fail because of what the record says."""
    text = text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _headers(record: LogRecord) -> str:
    return json.dumps([[k, base64.b64encode(v or b"").decode()] for k, v in record.headers])


def park(conn: Connection, generation: int, parked: Sequence[Parked], now_us: int) -> None:
    """Insert each record's dead letter. A position is parked once per projection and
    generation (the checkpoint moves past it in the same transaction); should it be parked
    again all the same, the row counts one more attempt and keeps the newest error."""
    if not parked:
        return
    rows = [
        {"projection": p.projection, "generation": generation, "topic": p.record.topic,
         "partition": p.record.partition, "offset": p.record.offset,
         "record_key": p.record.key, "record_value": p.record.value,
         "headers": _headers(p.record), "timestamp_ms": p.record.timestamp_ms,
         "event_id": None if p.event_id is None else clean(p.event_id, 36),
         "event_type": None if p.event_type is None
         else clean(p.event_type, 200),
         "reason": p.reason, "error_class": type(p.error).__name__,
         "error_message": clean(str(p.error)), "first_seen_us": now_us, "last_seen_us": now_us,
         "attempts": 1, "state": "parked", "redriven_us": None}
        for p in parked
    ]  # fmt: skip
    # A rare path: a plain executemany (bytea does not travel through json_to_recordset).
    stmt = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(DEAD_LETTERS)
    new = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=["projection", "generation", "topic", "partition", "offset"],
        set_={"reason": new.reason, "error_class": new.error_class,
              "error_message": new.error_message, "last_seen_us": new.last_seen_us,
              "attempts": DEAD_LETTERS.c.attempts + 1, "state": "parked"},
    )  # fmt: skip
    conn.execute(stmt, rows)


@dataclass(frozen=True)
class Filters:
    projection: str | None = None
    reason: str | None = None
    state: str | None = "parked"


def _where(filters: Filters) -> Any:
    c = DEAD_LETTERS.c
    terms = [c.generation == LIVE_GENERATION]
    if filters.projection is not None:
        terms.append(c.projection == filters.projection)
    if filters.reason is not None:
        terms.append(c.reason == filters.reason)
    if filters.state is not None:
        terms.append(c.state == filters.state)
    return and_(*terms)


def list_page(
    conn: Connection, filters: Filters, after_id: int | None, limit: int
) -> tuple[list[dict[str, Any]], int | None]:
    """Dead letters matching ``filters`` by ascending id after ``after_id``; and the id to pass
    as ``after_id`` for the next page (None on the last page)."""
    query = select(DEAD_LETTERS).where(_where(filters)).order_by(DEAD_LETTERS.c.id)
    if after_id is not None:
        query = query.where(DEAD_LETTERS.c.id > after_id)
    rows = list(conn.execute(query.limit(limit + 1)).mappings())
    more = len(rows) > limit
    items = [summary(r) for r in rows[:limit]]
    return items, (items[-1]["id"] if more else None)


def ids_matching(conn: Connection, filters: Filters) -> list[int]:
    query = select(DEAD_LETTERS.c.id).where(_where(filters)).order_by(DEAD_LETTERS.c.id)
    return [int(i) for i in conn.execute(query).scalars()]


def get(conn: Connection, dead_letter_id: int, *, lock: bool = False) -> dict[str, Any] | None:
    query = select(DEAD_LETTERS).where(DEAD_LETTERS.c.id == dead_letter_id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    return None if row is None else dict(row)


def record_of(row: dict[str, Any]) -> LogRecord:
    """The log record a dead letter holds, as the runner read it."""
    headers = tuple((k, base64.b64decode(v)) for k, v in json.loads(row["headers"]))
    return LogRecord(row["topic"], int(row["partition"]), int(row["offset"]), row["record_key"],
                     row["record_value"], int(row["timestamp_ms"]), headers)  # fmt: skip


def _us(value: Any) -> int | None:
    return None if value is None else int(value)


def summary(row: Any) -> dict[str, Any]:
    """The JSON an operator sees in lists (no raw value: see ``detail``)."""
    return {
        "id": int(row["id"]), "projection": row["projection"], "topic": row["topic"],
        "partition": int(row["partition"]), "offset": int(row["offset"]),
        "key": _text_or_b64(row["record_key"]), "event_id": row["event_id"],
        "event_type": row["event_type"], "reason": row["reason"],
        "error": {"class": row["error_class"], "message": row["error_message"]},
        "first_seen": from_micros(int(row["first_seen_us"])),
        "last_seen": from_micros(int(row["last_seen_us"])),
        "attempts": int(row["attempts"]), "state": row["state"],
        "redriven_at": None if row["redriven_us"] is None else from_micros(row["redriven_us"]),
    }  # fmt: skip


def detail(row: dict[str, Any]) -> dict[str, Any]:
    """``summary`` plus the raw value (as text when it is UTF-8, else base64) and headers."""
    value = row["record_value"]
    out = summary(row)
    out["value"] = _text_or_b64(value)
    out["value_bytes"] = None if value is None else len(value)
    out["headers"] = [{"name": k, "value": v} for k, v in json.loads(row["headers"])]
    return out


def _text_or_b64(raw: bytes | None) -> dict[str, str] | None:
    if raw is None:
        return None
    try:
        return {"text": bytes(raw).decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(bytes(raw)).decode()}


def mark_redriven(conn: Connection, dead_letter_id: int, now_us: int) -> None:
    conn.execute(
        update(DEAD_LETTERS).where(DEAD_LETTERS.c.id == dead_letter_id)
        .values(state="redriven", redriven_us=now_us, last_seen_us=now_us,
                attempts=DEAD_LETTERS.c.attempts + 1)
    )  # fmt: skip


def mark_failed(
    conn: Connection, dead_letter_id: int, reason: Reason, error: BaseException, now_us: int
) -> None:
    conn.execute(
        update(DEAD_LETTERS).where(DEAD_LETTERS.c.id == dead_letter_id)
        .values(reason=reason, error_class=type(error).__name__,
                error_message=clean(str(error)), last_seen_us=now_us,
                attempts=DEAD_LETTERS.c.attempts + 1)
    )  # fmt: skip


def parked_counts(conn: Connection, projections: Iterable[str]) -> dict[str, dict[str, int]]:
    """``projection -> {reason: parked count, "total": n}`` for the live generation."""
    c = DEAD_LETTERS.c
    out: dict[str, dict[str, int]] = {name: {"total": 0} for name in projections}
    query = (
        select(c.projection, c.reason, func.count())
        .where(and_(c.state == "parked", c.generation == LIVE_GENERATION))
        .group_by(c.projection, c.reason)
    )
    for projection, reason, count in conn.execute(query):
        counts = out.setdefault(projection, {"total": 0})
        counts[reason] = int(count)
        counts["total"] += int(count)
    return out


def clear(conn: Connection, projections: Iterable[str], generation: int) -> None:
    """Forget the dead letters of these projections (a replay re-reads every record)."""
    conn.execute(
        delete(DEAD_LETTERS).where(
            and_(DEAD_LETTERS.c.projection.in_(list(projections)),
                 DEAD_LETTERS.c.generation == generation)
        )
    )  # fmt: skip


def move(conn: Connection, projection: str, source: int, target: int | None) -> None:
    """Give ``source``'s dead letters to generation ``target`` (None: forget them), replacing
    the target's: a rebuild's switch makes the shadow's dead letters the live ones."""
    c = DEAD_LETTERS.c
    if target is not None:
        clear(conn, [projection], target)
        conn.execute(update(DEAD_LETTERS)
                     .where(and_(c.projection == projection, c.generation == source))
                     .values(generation=target))  # fmt: skip
    else:
        clear(conn, [projection], source)
