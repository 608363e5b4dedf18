"""The rebuild table, the per-read-model claims, and every query on them."""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Integer,
    String,
    Table,
    Text,
    delete,
    func,
    select,
    text,
    update,
)

from services.core.adapters.sql import insert_new
from services.core.readmodels.generations import GENERATIONS
from services.core.readmodels.schema import METADATA
from services.core.readmodels.timeline import from_micros
from services.core.rebuilds import OPEN_STATES, RebuildConflict, RebuildStateError, State

REBUILDS = Table(
    "rebuilds",
    METADATA,
    Column("id", String(32), primary_key=True),
    Column("generation", Integer, nullable=False, unique=True),
    Column("projections", Text, nullable=False),  # JSON list of read-model names
    Column("state", String(16), nullable=False),
    Column("accept_diff", Boolean, nullable=False),
    Column("keep_old", Boolean, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column("finished_us", BigInteger, nullable=True),
    Column("worker", String(255), nullable=True),
    Column("lease_until_us", BigInteger, nullable=True),
    Column("progress", Text, nullable=False),  # JSON, see services.projections.rebuild
    Column("report", Text, nullable=True),  # JSON verification report
    Column("error", Text, nullable=True),
)

REBUILD_CLAIMS = Table(
    "rebuild_claims",
    METADATA,
    Column("projection", String(64), primary_key=True),
    Column("rebuild_id", String(32), nullable=False),
)
"""One row per read model being rebuilt: the primary key makes a second rebuild impossible."""


@dataclass(frozen=True)
class Rebuild:
    id: str
    generation: int
    projections: tuple[str, ...]
    state: State
    accept_diff: bool
    keep_old: bool
    created_us: int
    updated_us: int
    finished_us: int | None
    worker: str | None
    lease_until_us: int | None
    progress: dict[str, Any]
    report: dict[str, Any] | None
    error: str | None

    def as_json(self) -> dict[str, Any]:
        """The rebuild as the admin API and the CLI show it."""
        return {
            "id": self.id,
            "generation": self.generation,
            "projections": list(self.projections),
            "state": self.state,
            "accept_diff": self.accept_diff,
            "keep_old": self.keep_old,
            "created_at": from_micros(self.created_us),
            "updated_at": from_micros(self.updated_us),
            "finished_at": None if self.finished_us is None else from_micros(self.finished_us),
            "worker": self.worker,
            "progress": self.progress,
            "verification": self.report,
            "error": self.error,
        }


def worker_id() -> str:
    """``host:pid`` of this process: a lease held by a dead process on this host is free."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _from_row(row: Any) -> Rebuild:
    return Rebuild(
        id=row.id, generation=int(row.generation),
        projections=tuple(json.loads(row.projections)), state=row.state,
        accept_diff=bool(row.accept_diff), keep_old=bool(row.keep_old),
        created_us=int(row.created_us), updated_us=int(row.updated_us),
        finished_us=row.finished_us, worker=row.worker, lease_until_us=row.lease_until_us,
        progress=json.loads(row.progress), report=None if row.report is None
        else json.loads(row.report), error=row.error,
    )  # fmt: skip


def create(
    conn: Connection, projections: Sequence[str], *, accept_diff: bool, keep_old: bool,
    now_us: int,
) -> Rebuild:  # fmt: skip
    """A new ``running`` rebuild of ``projections`` into the next unused generation.

    Raises ``RebuildConflict`` when one of them is being rebuilt (claims are taken in this
    transaction: of two concurrent creates, one fails on the claims' primary key)."""
    lock_creates(conn)
    rebuild_id = uuid.uuid4().hex
    claims = [{"projection": name, "rebuild_id": rebuild_id} for name in projections]
    taken = insert_new(conn, REBUILD_CLAIMS, claims, "projection")
    for name in projections:
        if name not in taken:
            other = conn.execute(
                select(REBUILD_CLAIMS.c.rebuild_id).where(REBUILD_CLAIMS.c.projection == name)
            ).scalar()
            raise RebuildConflict(name, str(other))
    used = max(
        int(conn.execute(select(func.max(REBUILDS.c.generation))).scalar() or 0),
        int(conn.execute(select(func.max(GENERATIONS.c.active))).scalar() or 0),
        int(conn.execute(select(func.max(GENERATIONS.c.kept))).scalar() or 0),
        1,  # the generation every read model starts in
    )
    row = {
        "id": rebuild_id, "generation": used + 1, "projections": json.dumps(list(projections)),
        "state": "running", "accept_diff": accept_diff, "keep_old": keep_old,
        "created_us": now_us, "updated_us": now_us, "finished_us": None, "worker": None,
        "lease_until_us": None, "progress": json.dumps({"phase": "waiting for a worker"}),
        "report": None, "error": None,
    }  # fmt: skip
    conn.execute(REBUILDS.insert().values(**row))
    found = get(conn, rebuild_id)
    assert found is not None
    return found


def lock_creates(conn: Connection) -> None:
    """Serialise rebuild creation with the caller's transaction (PostgreSQL; SQLite's writers
    already run one at a time): two concurrent creates would pick one generation number, and a
    cleanup could take a just-created shadow for an orphan."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("LOCK TABLE rebuilds IN SHARE ROW EXCLUSIVE MODE"))


def get(conn: Connection, rebuild_id: str, *, lock: bool = False) -> Rebuild | None:
    query = select(REBUILDS).where(REBUILDS.c.id == rebuild_id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    return None if row is None else _from_row(row)


def list_recent(conn: Connection, limit: int, before_us: int | None = None) -> list[Rebuild]:
    """Newest first; ``before_us`` pages on (created before it)."""
    query = select(REBUILDS).order_by(REBUILDS.c.created_us.desc(), REBUILDS.c.id.desc())
    if before_us is not None:
        query = query.where(REBUILDS.c.created_us < before_us)
    return [_from_row(r) for r in conn.execute(query.limit(limit))]


def open_rebuilds(conn: Connection) -> list[Rebuild]:
    """Rebuilds that still hold claims (running, verifying, diff), oldest first."""
    query = select(REBUILDS).where(REBUILDS.c.state.in_(OPEN_STATES))
    return [_from_row(r) for r in conn.execute(query.order_by(REBUILDS.c.created_us))]


def claims(conn: Connection) -> dict[str, str]:
    """``read model -> rebuild id`` of every read model being rebuilt."""
    return {str(p): str(r) for p, r in conn.execute(select(REBUILD_CLAIMS))}


def _lease_free(rebuild: Rebuild, worker: str, now_us: int) -> bool:
    if rebuild.worker in (None, worker):
        return True
    if rebuild.lease_until_us is None or rebuild.lease_until_us < now_us:
        return True
    host, _, pid = rebuild.worker.partition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True  # that process is gone: no need to wait for its lease to end
        except PermissionError:
            return False
    return False


def take(conn: Connection, rebuild_id: str, worker: str, lease_until_us: int,
         now_us: int) -> Rebuild | None:  # fmt: skip
    """Lease the rebuild to ``worker`` when it is ``running`` or ``verifying`` and its lease
    is free (never taken, expired, ours, or held by a process of this host that is gone)."""
    rebuild = get(conn, rebuild_id, lock=True)
    if rebuild is None or rebuild.state not in ("running", "verifying"):
        return None
    if not _lease_free(rebuild, worker, now_us):
        return None
    conn.execute(update(REBUILDS).where(REBUILDS.c.id == rebuild_id).values(
        worker=worker, lease_until_us=lease_until_us, updated_us=now_us))  # fmt: skip
    return get(conn, rebuild_id)


def renew(conn: Connection, rebuild: Rebuild, worker: str, lease_until_us: int, now_us: int,
          progress: dict[str, Any], state: State | None = None) -> Rebuild:  # fmt: skip
    """Extend the lease and record progress; raises ``RebuildStateError`` when the rebuild was
    cancelled (or taken over) meanwhile, so the worker stops."""
    current = get(conn, rebuild.id, lock=True)
    if current is None or current.state not in ("running", "verifying") or current.worker != worker:
        raise RebuildStateError(f"rebuild {rebuild.id} is {current and current.state} now")
    values: dict[str, Any] = {"lease_until_us": lease_until_us, "updated_us": now_us,
                              "progress": json.dumps(progress)}  # fmt: skip
    if state is not None:
        values["state"] = state
    conn.execute(update(REBUILDS).where(REBUILDS.c.id == rebuild.id).values(**values))
    found = get(conn, rebuild.id)
    assert found is not None
    return found


def finish(conn: Connection, rebuild_id: str, state: State, now_us: int, *,
           report: dict[str, Any] | None = None, error: str | None = None,
           progress: dict[str, Any] | None = None) -> None:  # fmt: skip
    """Move to ``state``; a terminal state releases the claims and the lease."""
    values: dict[str, Any] = {"state": state, "updated_us": now_us}
    if report is not None:
        values["report"] = json.dumps(report, ensure_ascii=False)
    if error is not None:
        values["error"] = error[:4000]
    if progress is not None:
        values["progress"] = json.dumps(progress)
    if state not in OPEN_STATES:
        values.update(finished_us=now_us, worker=None, lease_until_us=None)
        conn.execute(delete(REBUILD_CLAIMS).where(REBUILD_CLAIMS.c.rebuild_id == rebuild_id))
    elif state == "diff":
        values.update(worker=None, lease_until_us=None)
    conn.execute(update(REBUILDS).where(REBUILDS.c.id == rebuild_id).values(**values))


def accept(conn: Connection, rebuild_id: str, now_us: int) -> Rebuild:
    """An operator accepts a ``diff``: the rebuild runs again, verifies and switches anyway."""
    rebuild = get(conn, rebuild_id, lock=True)
    if rebuild is None:
        raise KeyError(rebuild_id)
    if rebuild.state != "diff":
        raise RebuildStateError(f"rebuild {rebuild_id} is {rebuild.state}, not diff")
    conn.execute(update(REBUILDS).where(REBUILDS.c.id == rebuild_id).values(
        state="running", accept_diff=True, updated_us=now_us))  # fmt: skip
    found = get(conn, rebuild_id)
    assert found is not None
    return found


def state_counts(conn: Connection) -> dict[str, int]:
    """``state -> number of rebuilds`` (all time)."""
    query = select(REBUILDS.c.state, func.count()).group_by(REBUILDS.c.state)
    return {str(state): int(n) for state, n in conn.execute(query)}
