"""Projection checkpoints: per projection, generation, topic and partition, the next offset.

Written in the same transaction as the projection's view, so a view and its position can never
disagree; ``load(lock=True)`` locks the rows of the batch's partitions (PostgreSQL) so two
projector processes that briefly hold the same partition during a rebalance serialise instead
of both applying a batch. ``fence``/``bump``: a replay moves the projections to a new epoch, and
a runner that resumed at an older one cannot commit.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, and_, bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from services.core.adapters.sql import insert_ignore
from services.core.readmodels.schema import CHECKPOINTS, FENCES

LIVE_GENERATION = 0
"""The generation the live views are built in (a rebuild into shadow tables will use another)."""


def load(
    conn: Connection,
    projection: str,
    generation: int,
    topic: str,
    *,
    lock: bool = False,
    partitions: Iterable[int] | None = None,
) -> dict[int, int]:
    """``partition -> next offset`` stored for the projection (missing = start at 0).

    ``lock`` takes the rows' write locks (PostgreSQL) — of ``partitions`` only when given, so
    projector processes that own different partitions commit in parallel."""  # fmt: skip
    return load_many(conn, [projection], generation, topic, lock=lock,
                     partitions=partitions)[projection]  # fmt: skip


def load_many(
    conn: Connection,
    projections: Sequence[str],
    generation: int,
    topic: str,
    *,
    lock: bool = False,
    partitions: Iterable[int] | None = None,
) -> dict[str, dict[int, int]]:
    """``load`` for several projections in one statement: ``projection -> partition -> next
    offset``. Locked rows are locked in (projection, partition) order, so two runners that
    briefly share partitions wait for each other instead of deadlocking."""
    params: dict[str, object] = {"names": list(projections), "generation": generation,
                                 "topic": topic}  # fmt: skip
    locked = lock and conn.dialect.name == "postgresql"
    if partitions is None:
        stmt = _LOAD_LOCKED if locked else _LOAD
    else:
        stmt = _LOAD_SOME_LOCKED if locked else _LOAD_SOME
        params["partitions"] = sorted(partitions)
    found: dict[str, dict[int, int]] = {name: {} for name in projections}
    for name, partition, offset in conn.execute(stmt, params):
        found[name][int(partition)] = int(offset)
    return found


_LOAD = (
    select(CHECKPOINTS.c.projection, CHECKPOINTS.c.partition, CHECKPOINTS.c.next_offset)
    .where(CHECKPOINTS.c.projection.in_(bindparam("names", expanding=True)),
           CHECKPOINTS.c.generation == bindparam("generation"),
           CHECKPOINTS.c.topic == bindparam("topic"))
    .order_by(CHECKPOINTS.c.projection, CHECKPOINTS.c.partition)
)  # fmt: skip
_LOAD_SOME = _LOAD.where(CHECKPOINTS.c.partition.in_(bindparam("partitions", expanding=True)))
_LOAD_LOCKED = _LOAD.with_for_update()
_LOAD_SOME_LOCKED = _LOAD_SOME.with_for_update()


def load_slowest(
    conn: Connection, projections: Sequence[str], generation: int, topic: str
) -> dict[int, int]:
    """Per partition, the next offset every one of ``projections`` has applied (one query)."""
    if not projections:
        return {}
    return slowest_from(conn.execute(*slowest_read(projections, generation, topic)), projections)


def slowest_read(
    projections: Sequence[str], generation: int, topic: str
) -> tuple[Any, dict[str, Any]]:
    """The read ``slowest_from`` computes ``load_slowest`` from (for ``read_together``)."""
    return _SLOWEST, {"names": list(projections), "generation": generation, "topic": topic}


def slowest_from(rows: Iterable[Any], projections: Sequence[str]) -> dict[int, int]:
    """``load_slowest`` from the rows of ``slowest_read``."""
    if not projections:
        return {}
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
    """Set each partition's next offset, creating rows as needed (callers only move forward)."""
    advance_many(conn, generation, topic, {projection: next_offsets})


def advance_many(
    conn: Connection, generation: int, topic: str, moves: Mapping[str, Mapping[int, int]]
) -> None:
    """``advance`` for several projections: one upsert statement (executemany) in all."""
    now_us = time.time_ns() // 1000
    rows = [
        {"projection": name, "generation": generation, "topic": topic, "partition": p,
         "next_offset": o, "updated_us": now_us}
        for name, offsets in sorted(moves.items()) for p, o in sorted(offsets.items())
    ]  # fmt: skip
    if rows:
        conn.execute(_advance_statement(conn.dialect.name), rows)


@functools.cache
def _advance_statement(dialect: str) -> Any:
    """Built once per dialect (building the upsert per call was a tenth of a small batch)."""
    stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(CHECKPOINTS)
    return stmt.on_conflict_do_update(
        index_elements=[CHECKPOINTS.c.projection, CHECKPOINTS.c.generation,
                        CHECKPOINTS.c.topic, CHECKPOINTS.c.partition],
        set_={"next_offset": stmt.excluded.next_offset, "updated_us": stmt.excluded.updated_us},
    )  # fmt: skip


def reset(conn: Connection, projections: Iterable[str], generation: int) -> None:
    """Set every checkpoint of these projections back to offset 0 (used by replay).

    The rows stay, so a runner's commit still finds rows to lock; the caller bumps the fence
    in the same transaction so runners that resumed before the reset cannot commit."""
    conn.execute(
        update(CHECKPOINTS)
        .where(and_(CHECKPOINTS.c.projection.in_(list(projections)),
                    CHECKPOINTS.c.generation == generation))
        .values(next_offset=0)
    )  # fmt: skip


class Fenced(RuntimeError):
    """A replay or rebuild reset these projections since this runner resumed: start over."""


class Held(RuntimeError):
    """A rebuild is comparing its shadow with these projections: do not commit now, retry."""


def epochs(conn: Connection, projections: Sequence[str], generation: int, *,
           lock: bool = False) -> dict[str, int]:  # fmt: skip
    """``projection -> fence epoch`` (0 when never bumped); ``lock`` takes share locks
    (PostgreSQL) so a concurrent ``bump`` waits for the caller's commit."""
    return {
        name: epoch for name, (epoch, _) in _fences(conn, projections, generation, lock).items()
    }


def _fences(conn: Connection, projections: Sequence[str], generation: int,
            lock: bool) -> dict[str, tuple[int, int | None]]:  # fmt: skip
    query = _FENCES_SHARED if lock and conn.dialect.name == "postgresql" else _FENCES
    found = {str(p): (int(e), h) for p, e, h in conn.execute(
        query, {"names": list(projections), "generation": generation})}  # fmt: skip
    return {name: found.get(name, (0, None)) for name in projections}


_FENCES = select(FENCES.c.projection, FENCES.c.epoch, FENCES.c.held_until_us).where(
    FENCES.c.projection.in_(bindparam("names", expanding=True)),
    FENCES.c.generation == bindparam("generation"),
)
_FENCES_SHARED = _FENCES.with_for_update(read=True)


def fence(conn: Connection, resumed_at: Mapping[str, int], generation: int) -> None:
    """Raise ``Fenced`` unless every projection is still at the epoch the runner resumed at,
    and ``Held`` while a rebuild holds one of them. Called in the commit transaction, before
    the view or its checkpoint is written."""
    now = _fences(conn, list(resumed_at), generation, lock=True)
    moved = sorted(name for name, epoch in resumed_at.items() if now[name][0] != epoch)
    if moved:
        raise Fenced(f"{', '.join(moved)} reset by a replay or rebuild since this runner resumed")
    now_us = time.time_ns() // 1000
    held = sorted(name for name, (_, until) in now.items() if until is not None and until > now_us)
    if held:
        raise Held(f"{', '.join(held)} held by a rebuild that is verifying its shadow")


def ensure_fences(conn: Connection, projections: Sequence[str]) -> None:
    """Create the live fence rows at epoch 0 where missing: a live commit's ``fence`` locks its
    row, so a later ``hold`` waits for that commit (with no row there is nothing to wait on)."""
    insert_ignore(conn, FENCES, [{"projection": p, "generation": LIVE_GENERATION, "epoch": 0,
                                  "held_until_us": None} for p in projections])  # fmt: skip


def hold(conn: Connection, projections: Sequence[str], until_us: int | None) -> None:
    """Pause (``until_us``: a lease, epoch microseconds) or release (None) live commits of
    ``projections``. On PostgreSQL the update waits for commits that already passed ``fence``,
    so once it commits no live commit of these projections is in flight."""
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(FENCES)
    stmt = stmt.on_conflict_do_update(
        index_elements=[FENCES.c.projection, FENCES.c.generation],
        set_={"held_until_us": stmt.excluded.held_until_us},
    )
    conn.execute(stmt, [{"projection": p, "generation": LIVE_GENERATION, "epoch": 0,
                         "held_until_us": until_us} for p in projections])  # fmt: skip


def bump(conn: Connection, projections: Iterable[str], generation: int) -> None:
    """Move these projections to a new epoch (in the transaction that resets them)."""
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(FENCES)
    stmt = stmt.on_conflict_do_update(
        index_elements=[FENCES.c.projection, FENCES.c.generation],
        set_={"epoch": FENCES.c.epoch + 1},
    )
    conn.execute(stmt, [{"projection": p, "generation": generation, "epoch": 1}
                        for p in projections])  # fmt: skip
