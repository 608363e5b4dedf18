"""Projection checkpoints: per projection, generation, topic and partition, the next offset.

Written in the same transaction as the projection's view, so a view and its position can never
disagree; ``claim`` locks the rows it reads (PostgreSQL) so two projector processes that briefly
hold the same partition during a rebalance serialise instead of both applying a batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import Connection, and_, bindparam, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from services.core.adapters.sql import insert_ignore
from services.core.readmodels.schema import CHECKPOINTS

LIVE_GENERATION = 0
"""The generation the live views are built in (a rebuild into shadow tables will use another)."""


def load(
    conn: Connection, projection: str, generation: int, topic: str, *, lock: bool = False
) -> dict[int, int]:
    """``partition -> next offset`` stored for the projection (missing = start at 0)."""
    query = select(CHECKPOINTS.c.partition, CHECKPOINTS.c.next_offset).where(
        and_(
            CHECKPOINTS.c.projection == projection,
            CHECKPOINTS.c.generation == generation,
            CHECKPOINTS.c.topic == topic,
        )
    )
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return {int(p): int(o) for p, o in conn.execute(query)}


def load_slowest(
    conn: Connection, projections: Sequence[str], generation: int, topic: str
) -> dict[int, int]:
    """Per partition, the next offset every one of ``projections`` has applied (one query)."""
    if not projections:
        return {}
    rows = conn.execute(
        _SLOWEST, {"names": list(projections), "generation": generation, "topic": topic}
    )
    loaded: dict[str, dict[int, int]] = {name: {} for name in projections}
    for name, partition, offset in rows:
        loaded[name][int(partition)] = int(offset)
    partitions = set().union(*loaded.values())
    return {p: min(done.get(p, 0) for done in loaded.values()) for p in partitions}


_SLOWEST = select(CHECKPOINTS.c.projection, CHECKPOINTS.c.partition,
                  CHECKPOINTS.c.next_offset).where(
    CHECKPOINTS.c.projection.in_(bindparam("names", expanding=True)),
    CHECKPOINTS.c.generation == bindparam("generation"),
    CHECKPOINTS.c.topic == bindparam("topic"),
)  # fmt: skip


def ensure_rows(
    conn: Connection, projection: str, generation: int, topic: str, partitions: Iterable[int]
) -> None:
    """Create missing rows at offset 0, so ``load(lock=True)`` always has rows to lock."""
    insert_ignore(
        conn,
        CHECKPOINTS,
        [
            {"projection": projection, "generation": generation, "topic": topic,
             "partition": p, "next_offset": 0}
            for p in partitions
        ],
    )  # fmt: skip


def advance(
    conn: Connection,
    projection: str,
    generation: int,
    topic: str,
    next_offsets: Mapping[int, int],
) -> None:
    """Set each partition's next offset, creating rows as needed (callers only move forward).

    One upsert statement (executemany) for the whole batch.
    """
    if not next_offsets:
        return
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(CHECKPOINTS)
    stmt = stmt.on_conflict_do_update(
        index_elements=[CHECKPOINTS.c.projection, CHECKPOINTS.c.generation,
                        CHECKPOINTS.c.topic, CHECKPOINTS.c.partition],
        set_={"next_offset": stmt.excluded.next_offset},
    )  # fmt: skip
    conn.execute(stmt, [
        {"projection": projection, "generation": generation, "topic": topic,
         "partition": p, "next_offset": o}
        for p, o in next_offsets.items()
    ])  # fmt: skip


def reset(conn: Connection, projections: Iterable[str]) -> None:
    """Forget every checkpoint of these projections (used by replay)."""
    conn.execute(delete(CHECKPOINTS).where(CHECKPOINTS.c.projection.in_(list(projections))))
