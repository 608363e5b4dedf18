"""The pipeline as an operator sees it: per read model, its live generation, state, and per
partition the stored checkpoint, the log's end and the lag (``GET /v1/admin/projections``,
``onevoice status``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, and_, select

from services.core.deadletters import store as dead_letters
from services.core.readmodels import generations
from services.core.readmodels.checkpoints import LIVE_GENERATION
from services.core.readmodels.schema import CHECKPOINTS, FENCES
from services.core.readmodels.timeline import from_micros
from services.core.rebuilds import store as rebuilds


def pipeline_status(
    conn: Connection, projections: Sequence[str], topic: str,
    ends: Mapping[int, int] | None, now_us: int, stall_after_s: float,
) -> list[dict[str, Any]]:  # fmt: skip
    """One entry per read model. ``state``: ``rebuilding`` while a rebuild claims it,
    ``stalled`` when it lags and its checkpoints have not moved for ``stall_after_s``, else
    ``live``. ``ends`` is None when the log cannot be reached (end and lag are then null)."""
    live = generations.active(conn, projections)
    claimed = rebuilds.claims(conn)
    parked = dead_letters.parked_counts(conn, projections)
    c, f = CHECKPOINTS.c, FENCES.c
    stored: dict[str, dict[int, tuple[int, int | None]]] = {n: {} for n in projections}
    for name, partition, offset, updated in conn.execute(
        select(c.projection, c.partition, c.next_offset, c.updated_us).where(
            and_(c.projection.in_(list(projections)), c.generation == LIVE_GENERATION,
                 c.topic == topic))
    ):  # fmt: skip
        stored[name][int(partition)] = (int(offset), updated)
    held = {
        str(name): int(until)
        for name, until in conn.execute(select(f.projection, f.held_until_us).where(
            and_(f.projection.in_(list(projections)), f.generation == LIVE_GENERATION)))
        if until is not None and until > now_us
    }  # fmt: skip
    out = []
    for name in projections:
        done = stored[name]
        partitions = sorted(set(done) | set(ends or {}))
        rows = []
        for partition in partitions:
            checkpoint = done.get(partition, (0, None))[0]
            end = None if ends is None else ends.get(partition, 0)
            lag = None if end is None else max(0, end - checkpoint)
            rows.append({"partition": partition, "checkpoint": checkpoint, "end": end,
                         "lag": lag})  # fmt: skip
        moved = [u for _, u in done.values() if u is not None]
        last = max(moved) if moved else None
        lag_total = None if ends is None else sum(r["lag"] or 0 for r in rows)
        if name in claimed:
            state = "rebuilding"
        elif lag_total and (last is None or now_us - last > stall_after_s * 1e6):
            state = "stalled"
        else:
            state = "live"
        out.append({
            "name": name,
            "generation": live[name][0],
            "kept_generation": live[name][1],
            "state": state,
            "rebuild": claimed.get(name),
            "paused_by_rebuild": name in held,
            "lag": lag_total,
            "last_applied_at": None if last is None else from_micros(int(last)),
            "dead_letters": parked[name],
            "partitions": rows,
        })  # fmt: skip
    return out
