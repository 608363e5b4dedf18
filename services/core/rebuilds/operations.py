"""What an operator does to rebuilds besides starting one: cancel, accept a diff, roll back.

Each runs in one transaction of the caller; shadow tables are dropped after it commits
(``drop_generation``), so a reader or a worker never meets a half-dropped generation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy import Connection, and_, delete, select

from services.core.adapters.sql import is_lock_timeout
from services.core.deadletters import store as dead_letters
from services.core.readmodels import checkpoints, generations, state_figures, state_history
from services.core.readmodels.schema import CHECKPOINTS, FENCES
from services.core.rebuilds import OPEN_STATES, RebuildStateError, store
from services.core.rebuilds.store import Rebuild

T = TypeVar("T")


def cancel(conn: Connection, rebuild_id: str, now_us: int) -> Rebuild:
    """Cancel an open rebuild: its worker is fenced off (its next commit fails), the live
    projector is released if the rebuild held it, and its claims are freed. The caller drops
    the shadow with ``drop_generation`` once this committed."""
    rebuild = store.get(conn, rebuild_id, lock=True)
    if rebuild is None:
        raise KeyError(rebuild_id)
    if rebuild.state not in OPEN_STATES:
        raise RebuildStateError(f"rebuild {rebuild_id} is {rebuild.state} already")
    names = list(rebuild.projections)
    checkpoints.bump(conn, names, rebuild.generation)  # waits for the worker's commit in flight
    checkpoints.hold(conn, names, None)  # one rebuild per read model: any hold on them is its
    forget_generation(conn, names, rebuild.generation, keep_fence=True)
    store.finish(conn, rebuild_id, "cancelled", now_us)
    found = store.get(conn, rebuild_id)
    assert found is not None
    return found


def forget_generation(conn: Connection, projections: Sequence[str], generation: int, *,
                      keep_fence: bool = False) -> None:  # fmt: skip
    """Delete the checkpoints, fences (unless ``keep_fence``: a cancel keeps the epoch it bumped,
    so the worker cannot commit again) and dead letters of a generation that is not live."""
    assert generation != checkpoints.LIVE_GENERATION
    for table in (CHECKPOINTS,) if keep_fence else (CHECKPOINTS, FENCES):
        conn.execute(delete(table).where(and_(table.c.projection.in_(list(projections)),
                                              table.c.generation == generation)))  # fmt: skip
    dead_letters.clear(conn, projections, generation)


def drop_generation(conn: Connection, projections: Sequence[str], generation: int) -> list[str]:
    """Drop the tables of a shadow or kept generation (after the change that let it go)."""
    dropped: list[str] = []
    for name in projections:
        dropped += generations.drop(conn, generations.PREFIXES[name], generation)
    return dropped


def rollback(conn: Connection, projections: Sequence[str], now_us: int) -> dict[str, int]:
    """Make the generation kept by a ``keep_old`` rebuild live again (the current one becomes
    the kept one, so a second rollback goes forward again). Returns ``read model -> the
    generation now live``. Live projectors are fenced: they resume from the kept generation's
    checkpoints and apply what happened since it was switched out."""
    claimed = store.claims(conn)
    busy = sorted(set(projections) & set(claimed))
    if busy:
        raise RebuildStateError(f"{', '.join(busy)} being rebuilt (rebuild {claimed[busy[0]]})")
    kept = generations.active(conn, projections)
    missing = sorted(name for name, (_, k) in kept.items() if k is None)
    if missing:
        raise RebuildStateError(f"no generation kept for {', '.join(missing)}: roll back is "
                                "possible after a rebuild with keep_old only")  # fmt: skip
    live = checkpoints.LIVE_GENERATION
    out: dict[str, int] = {}
    back_to = {name: k for name, (_, k) in kept.items() if k is not None}
    state_figures.hold(conn)  # before the tables: a refresher summing reads them
    try:
        generations.lock_tables(conn, back_to)
    except LookupError as exc:
        raise RebuildStateError(f"the kept generation's tables are missing: {exc}") from exc
    for name in projections:
        back = back_to[name]
        previous = generations.active(conn, [name])[name][0]
        dead_letters.move(conn, name, live, previous)
        try:
            generations.swap(conn, name, back, keep_outgoing=True, now_us=now_us, locked=True)
        except LookupError as exc:
            raise RebuildStateError(f"the kept generation's tables are missing: {exc}") from exc
        dead_letters.move(conn, name, back, live)
        out[name] = back
    checkpoints.bump(conn, list(projections), live)
    state_history.changed_wholesale(conn)  # every account's facts may differ in the kept one
    return out


def retried(work: Callable[[], T], attempts: int = 40) -> T:
    """Run ``work`` (one transaction) again while it fails only because readers held a table
    past the swap's lock_timeout (PostgreSQL 55P03), backing off a little more each time."""
    for attempt in range(attempts):
        try:
            return work()
        except Exception as exc:
            if not is_lock_timeout(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def generations_in_use(conn: Connection) -> set[int]:
    """Every generation number a table may still belong to: live, kept, or an open rebuild's."""
    used = {int(g) for g in conn.execute(select(generations.GENERATIONS.c.active)).scalars()}
    used |= {int(g) for g in conn.execute(select(generations.GENERATIONS.c.kept)).scalars()
             if g is not None}  # fmt: skip
    used |= {r.generation for r in store.open_rebuilds(conn)}
    return used | {generations.FIRST_GENERATION}
