"""First copies: which log position holds the first copy of each event id, per topic.

A client that retries after a lost answer, or a foreign producer, can put one event id in the
log twice. Every read model keeps the FIRST copy only: the runner registers each id at the
position it is first applied from and hands the projections only records at their id's
registered position. Ingest writes every copy of an id with the same key, so the copies share a
partition and "first" is the lowest offset: a pure fold of the log. (Copies a foreign producer
writes under different keys land in different partitions; then the first one applied wins.)
Registered positions are facts of the log, shared by every projection and generation.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    String,
    Table,
    and_,
    delete,
    select,
    text,
)

from services.core.adapters.sql import insert_new
from services.core.readmodels.schema import METADATA

EVENT_COPIES = Table(
    "event_first_copies",
    METADATA,
    Column("topic", String(255), primary_key=True),
    Column("event_id", String(36), primary_key=True),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
)

Position = tuple[int, int]


def first_copies(
    conn: Connection, topic: str, copies: Iterable[tuple[str, int, int]]
) -> set[Position]:
    """Register ``(event_id, partition, offset)`` for ids not seen before; return the positions
    given that hold their id's first copy. ``copies`` are in log order per partition."""
    first: dict[str, Position] = {}
    for event_id, partition, offset in copies:
        first.setdefault(event_id, (partition, offset))
    if not first:
        return set()
    rows = [{"topic": topic, "event_id": e, "partition": p, "offset": o}
            for e, (p, o) in first.items()]  # fmt: skip
    added = insert_new(conn, EVENT_COPIES, rows, "event_id")
    winners = {first[e] for e in added}
    known = [e for e in first if e not in added]
    if known:
        c = EVENT_COPIES.c
        stored = conn.execute(
            select(c.event_id, c.partition, c.offset).where(
                and_(c.topic == topic, c.event_id.in_(known))
            )
        )
        winners.update((int(p), int(o)) for e, p, o in stored if first[e] == (int(p), int(o)))
    return winners


def forget(conn: Connection, topic: str) -> None:
    """Forget every registered copy of ``topic`` (a replay reads the log afresh). On
    PostgreSQL, when no other topic has any, with a ``TRUNCATE``: a ``DELETE`` of one row per
    event leaves as many dead rows for the refill to write beside."""
    c = EVENT_COPIES.c
    if conn.dialect.name == "postgresql":
        # No other topic's projector may register a copy between the look and the TRUNCATE.
        conn.execute(text("LOCK TABLE event_first_copies IN ACCESS EXCLUSIVE MODE"))
        others = conn.execute(select(c.topic).where(c.topic != topic).limit(1)).first()
        if others is None:
            conn.execute(text("TRUNCATE event_first_copies"))
            return
    conn.execute(delete(EVENT_COPIES).where(c.topic == topic))
