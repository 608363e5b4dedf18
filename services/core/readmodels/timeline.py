"""The AccountTimeline read model: its tables and every query against them.

An event is stored once (``<prefix>_events``) and listed once per account it belongs to
(``<prefix>_entries``: the primary account and each related account). Entries sort by
``(occurred_us, partition, offset)``: business time, ties broken by log position, so a late event
lands in its place and the order is total and identical on every backend.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    exists,
    or_,
    select,
    tuple_,
)

from services.core.readmodels import cursors
from services.core.readmodels.schema import METADATA

NAME = "AccountTimeline"
PREFIX = "account_timeline"


@dataclass(frozen=True)
class TimelineTables:
    events: Table
    entries: Table
    participants: Table


def timeline_tables(metadata: MetaData, prefix: str) -> TimelineTables:
    """The read model's tables under ``prefix`` (a rebuild can target a shadow prefix)."""
    events = Table(
        f"{prefix}_events",
        metadata,
        Column("event_id", String(36), primary_key=True),
        Column("account_id", String(128), nullable=False),
        Column("type", String(64), nullable=False),
        Column("department", String(32), nullable=False),
        Column("occurred_us", BigInteger, nullable=False),
        Column("partition", Integer, nullable=False),
        Column("offset", BigInteger, nullable=False),
        Column("body", Text, nullable=False),
        Column("search_text", Text, nullable=False),
        Column("actor_id", String(256), nullable=False, server_default=""),
    )
    entries = Table(
        f"{prefix}_entries",
        metadata,
        Column("account_id", String(128), primary_key=True),
        Column("event_id", String(36), primary_key=True),
        Column("occurred_us", BigInteger, nullable=False),
        Column("partition", Integer, nullable=False),
        Column("offset", BigInteger, nullable=False),
        Column("type", String(64), nullable=False),
        Column("department", String(32), nullable=False),
        Index(f"ix_{prefix}_entries_order", "account_id", "occurred_us", "partition", "offset"),
        Index(f"ix_{prefix}_entries_time", "occurred_us"),  # touches of a window (handoffs)
    )
    # Our people besides the actor (``participants``): each is a touch of the event's accounts.
    participants = Table(
        f"{prefix}_participants",
        metadata,
        Column("event_id", String(36), primary_key=True),
        Column("person_id", String(256), primary_key=True),
        Column("department", String(32), nullable=False),
        Column("person", Text, nullable=False),  # the participant as sent (JSON)
        Index(f"ix_{prefix}_participants_person", "person_id"),
    )
    return TimelineTables(events, entries, participants)


TABLES = timeline_tables(METADATA, PREFIX)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(moment: datetime) -> int:
    """UTC epoch microseconds: exact, sortable and the same on SQLite and PostgreSQL."""
    # Aware subtraction applies the offsets itself; astimezone() could overflow at the edges.
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> str:
    """RFC 3339 UTC text for epoch microseconds (the inverse of ``to_micros``)."""
    moment = _EPOCH + timedelta(microseconds=micros)
    return moment.isoformat().replace("+00:00", "Z")


SortKey = tuple[int, int, int]
BadCursor = cursors.BadCursor


def encode_cursor(key: SortKey) -> str:
    return cursors.encode(list(key))


def decode_cursor(cursor: str) -> SortKey:
    key = cursors.decode(cursor, max_length=200)
    if len(key) != 3 or not all(cursors.is_int64(x) for x in key):
        raise BadCursor("cursor is not valid; use next_cursor from a previous page")
    return (key[0], key[1], key[2])


@dataclass(frozen=True)
class TimelineQuery:
    """One page request; ``None``/empty means no filter."""

    account_id: str
    also: Sequence[str] = ()  # more accounts to merge in (e.g. child accounts)
    departments: Sequence[str] = ()
    types: Sequence[str] = ()
    since: datetime | None = None
    until: datetime | None = None
    q: str | None = None
    order: Literal["asc", "desc"] = "desc"
    limit: int = 50
    after: SortKey | None = None


@dataclass(frozen=True)
class TimelinePage:
    items: list[dict[str, Any]]
    next_cursor: str | None


def search_key(text: str) -> str:
    """Normalise text for the case-insensitive substring search (Unicode-aware)."""
    return text.casefold()


def account_known(
    conn: Connection, account_id: str, tables: TimelineTables = TABLES, *, also: Sequence[str] = ()
) -> bool:
    """True when any event has named this account (or one of ``also``)."""
    names = tables.entries.c.account_id.in_([account_id, *also])
    return bool(conn.execute(select(exists().where(names))).scalar())


def read_page(
    conn: Connection, query: TimelineQuery, tables: TimelineTables = TABLES
) -> TimelinePage:
    """A keyset-paginated page of an account's timeline.

    Stable under concurrent inserts: a page starts strictly after the previous page's last sort
    key, so no item is repeated or skipped between pages.
    """
    e, ev = tables.entries, tables.events
    key = tuple_(e.c.occurred_us, e.c.partition, e.c.offset)
    accounts = [query.account_id, *query.also]
    conditions = [e.c.account_id == query.account_id if not query.also
                  else e.c.account_id.in_(accounts)]  # fmt: skip
    if query.departments:
        pa = tables.participants
        conditions.append(or_(
            e.c.department.in_(list(query.departments)),
            exists().where(pa.c.event_id == e.c.event_id,
                           pa.c.department.in_(list(query.departments))),
        ))  # fmt: skip
    if query.types:
        conditions.append(e.c.type.in_(list(query.types)))
    if query.since is not None:
        conditions.append(e.c.occurred_us >= to_micros(query.since))
    if query.until is not None:
        conditions.append(e.c.occurred_us < to_micros(query.until))
    if query.q:
        conditions.append(ev.c.search_text.contains(search_key(query.q), autoescape=True))
    if query.after is not None:
        bound = tuple_(*query.after)
        conditions.append(key > bound if query.order == "asc" else key < bound)
    columns = (e.c.occurred_us, e.c.partition, e.c.offset)
    ordering = columns if query.order == "asc" else tuple(c.desc() for c in columns)
    stmt = (
        select(ev.c.body, *columns)
        .select_from(e.join(ev, ev.c.event_id == e.c.event_id))
        .where(and_(*conditions))
        .order_by(*ordering)
        .limit(query.limit + 1)
    )
    if query.also:
        stmt = stmt.distinct()  # an event on a parent and a child is listed once
    rows = conn.execute(stmt).all()
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    items = [json.loads(row.body) for row in rows]
    next_cursor = None
    if more:
        last = rows[-1]
        next_cursor = encode_cursor((int(last.occurred_us), int(last.partition), int(last.offset)))
    return TimelinePage(items, next_cursor)


def read_event(
    conn: Connection, event_id: str, tables: TimelineTables = TABLES
) -> dict[str, Any] | None:
    """The stored event, or None when no such event has been projected."""
    body = conn.execute(
        select(tables.events.c.body).where(tables.events.c.event_id == event_id)
    ).scalar()
    return None if body is None else dict(json.loads(body))
