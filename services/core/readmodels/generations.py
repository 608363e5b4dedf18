"""Generations of a read model: the live tables and the shadows rebuilt beside them.

The live generation of a read model always has the canonical table names (``<prefix>_<t>``),
so every query reads the live view without knowing about generations. A rebuild builds
generation ``g`` in shadow tables ``<prefix>__g<g>_<t>`` with checkpoints, fences and dead
letters of generation ``g``; ``swap`` makes it live in one transaction by renaming tables and
their indexes and moving those rows to ``LIVE_GENERATION`` (0). A reader that touched a live
table before the swap holds it: the swap waits for that read to finish (it reads the old
generation to the end); readers after the swap see the new one. ``GENERATIONS`` records which
generation is live (1 until the first rebuild) and which one was kept for a rollback.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

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
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from services.core.readmodels import accounts, leadership, onevoice, timeline
from services.core.readmodels.checkpoints import LIVE_GENERATION
from services.core.readmodels.reports import facts
from services.core.readmodels.schema import CHECKPOINTS, FENCES, METADATA

FIRST_GENERATION = 1
NOT_BUILT = 0
"""The live generation of a read model added by a later release, until a rebuild backfilled it:
its migration creates its (empty) tables and a ``GENERATIONS`` row with ``active = 0``. Live
projectors do not apply it; the projector's start creates the rebuild that builds it in a
shadow and switches it live, after which every live projector applies it too."""

GENERATIONS = Table(
    "projection_generations",
    METADATA,
    Column("projection", String(64), primary_key=True),
    Column("active", Integer, nullable=False),
    Column("kept", Integer, nullable=True),
    Column("switched_us", BigInteger, nullable=True),
)

PREFIXES: dict[str, str] = {
    timeline.NAME: timeline.PREFIX,
    accounts.NAME: accounts.PREFIX,
    leadership.NAME: leadership.PREFIX,
    onevoice.NAME: onevoice.PREFIX,
    facts.NAME: facts.PREFIX,
}
"""Every read model's table prefix (a new read model registers here)."""


def shadow_prefix(prefix: str, generation: int) -> str:
    return f"{prefix}__g{generation}"


def generation_tables(conn: Connection, prefix: str, generation: int | None) -> dict[str, str]:
    """``suffix -> table name`` of one generation: the live one (``None``) or a shadow."""
    names = table_names(conn)
    if generation is None:
        pattern = re.compile(rf"{re.escape(prefix)}_(?!_g\d+_)(.+)")
    else:
        pattern = re.compile(rf"{re.escape(shadow_prefix(prefix, generation))}_(.+)")
    found = {}
    for name in names:
        match = pattern.fullmatch(name)
        if match:
            found[match.group(1)] = name
    return found


def table_names(conn: Connection) -> list[str]:
    if conn.dialect.name == "postgresql":
        query = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    else:
        query = "SELECT name FROM sqlite_master WHERE type = 'table'"
    return [str(n) for n in conn.execute(text(query)).scalars()]


def active(conn: Connection, projections: Sequence[str]) -> dict[str, tuple[int, int | None]]:
    """``read model -> (live generation, kept generation or None)``."""
    rows = conn.execute(select(GENERATIONS.c.projection, GENERATIONS.c.active, GENERATIONS.c.kept)
                        .where(GENERATIONS.c.projection.in_(list(projections))))  # fmt: skip
    found = {str(p): (int(a), None if k is None else int(k)) for p, a, k in rows}
    return {name: found.get(name, (FIRST_GENERATION, None)) for name in projections}


def not_built(conn: Connection, projections: Sequence[str]) -> set[str]:
    """The read models among ``projections`` waiting for their backfill (``NOT_BUILT``)."""
    return {name for name, (live, _) in active(conn, projections).items() if live == NOT_BUILT}


def drop(conn: Connection, prefix: str, generation: int) -> list[str]:
    """Drop every table of a shadow or kept generation; returns the names dropped."""
    tables = generation_tables(conn, prefix, generation)
    for name in tables.values():
        conn.execute(text(f'DROP TABLE IF EXISTS "{name}"'))
    return sorted(tables.values())


def lock_tables(conn: Connection, incoming: dict[str, int]) -> None:
    """Take the exclusive locks of every live and incoming table of these read models in one
    statement, waiting at most ``lock_timeout`` (200 ms) for readers that already hold one:
    then the swap either has them all or fails fast (55P03), and readers queue behind it for
    at most that long per attempt. PostgreSQL only (SQLite's write transaction is the lock)."""
    if conn.dialect.name != "postgresql":
        return
    tables: list[str] = []
    for projection, generation in incoming.items():
        prefix = PREFIXES[projection]
        tables += generation_tables(conn, prefix, None).values()
        tables += generation_tables(conn, prefix, generation).values()
    conn.execute(text("SET LOCAL lock_timeout = '200ms'"))
    names = ", ".join(f'"{t}"' for t in sorted(tables))
    conn.execute(text(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE"))


def swap(conn: Connection, projection: str, incoming: int, *, keep_outgoing: bool,
         now_us: int, locked: bool = False) -> int:  # fmt: skip
    """Make generation ``incoming`` live; returns the generation it replaced.

    In the caller's transaction: renames the live tables to the outgoing generation's shadow
    names (or leaves them for ``drop`` under those names), the incoming ones to the live names,
    and moves checkpoints and fences between generation numbers. Dead letters move with their
    generation (``deadletters.store.move``, called by the caller)."""
    prefix = PREFIXES[projection]
    outgoing, _ = active(conn, [projection])[projection]
    live = generation_tables(conn, prefix, None)
    shadow = generation_tables(conn, prefix, incoming)
    if not shadow:
        raise LookupError(f"{projection} has no tables of generation {incoming}")
    if not locked:
        lock_tables(conn, {projection: incoming})
    for suffix, name in live.items():
        _rename(conn, name, f"{shadow_prefix(prefix, outgoing)}_{suffix}",
                prefix, shadow_prefix(prefix, outgoing))  # fmt: skip
    for suffix, name in shadow.items():
        _rename(conn, name, f"{prefix}_{suffix}", shadow_prefix(prefix, incoming), prefix)
    _move(conn, projection, LIVE_GENERATION, outgoing if keep_outgoing else None)
    _move(conn, projection, incoming, LIVE_GENERATION)
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(GENERATIONS)
    row = {"projection": projection, "active": incoming,
           "kept": outgoing if keep_outgoing else None, "switched_us": now_us}  # fmt: skip
    conn.execute(stmt.on_conflict_do_update(index_elements=[GENERATIONS.c.projection],
                                            set_={k: v for k, v in row.items()
                                                  if k != "projection"}).values(**row))  # fmt: skip
    return outgoing


def _rename(conn: Connection, table: str, new: str, old_prefix: str, new_prefix: str) -> None:
    conn.execute(text(f'ALTER TABLE "{table}" RENAME TO "{new}"'))
    if conn.dialect.name == "postgresql":
        query = (
            "SELECT indexname FROM pg_indexes WHERE tablename = :t"
            " AND schemaname = current_schema()"
        )
        indexes = conn.execute(text(query), {"t": new}).scalars()
        for index in list(indexes):
            renamed = index.replace(f"{old_prefix}_", f"{new_prefix}_", 1)
            if renamed != index:
                conn.execute(text(f'ALTER INDEX "{index}" RENAME TO "{renamed}"'))
        return
    # SQLite cannot rename an index: re-create it under the generation's name.
    rows = conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND "
                             "tbl_name = :t AND sql IS NOT NULL"), {"t": new}).all()  # fmt: skip
    for index, sql in rows:
        renamed = str(index).replace(f"{old_prefix}_", f"{new_prefix}_", 1)
        if renamed != index:
            conn.execute(text(f'DROP INDEX "{index}"'))
            conn.execute(text(str(sql).replace(str(index), renamed, 1)))


def _move(conn: Connection, projection: str, source: int, target: int | None) -> None:
    """Move the checkpoints of ``source`` to ``target`` (None: delete them). The live fence row
    stays (its hold is released): live runners keep their epoch, since the incoming generation
    was verified at exactly their positions; a rollback bumps it (``checkpoints.bump``)."""
    c = CHECKPOINTS.c
    where = and_(c.projection == projection, c.generation == source)
    if target is None:
        conn.execute(delete(CHECKPOINTS).where(where))
    else:
        conn.execute(delete(CHECKPOINTS).where(and_(c.projection == projection,
                                                    c.generation == target)))  # fmt: skip
        conn.execute(update(CHECKPOINTS).where(where).values(generation=target))
    f = FENCES.c
    if source != LIVE_GENERATION:
        conn.execute(delete(FENCES).where(and_(f.projection == projection, f.generation == source)))
    conn.execute(update(FENCES).where(and_(f.projection == projection,
                                           f.generation == LIVE_GENERATION))
                 .values(held_until_us=None))  # fmt: skip
