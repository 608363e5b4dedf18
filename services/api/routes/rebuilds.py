"""Operator endpoints for the pipeline: read models' status, rebuilds, roll back."""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from services.api.deps import ContainerDep
from services.api.errors import int_cursor, not_found
from services.core.ports import LogUnavailable
from services.core.problems import answers
from services.core.readmodels import cursors
from services.core.readmodels.status import pipeline_status
from services.core.rebuilds import RebuildConflict, RebuildStateError, operations, store

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/admin", tags=["admin"])

RebuildId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="The rebuild's id.")]
Names = list[Annotated[str, Field(min_length=1, max_length=64)]]


def _now_us() -> int:
    return time.time_ns() // 1000


def _names(container: ContainerDep, requested: Literal["all"] | Names, field: str) -> list[str]:
    if requested == "all":
        return list(container.projections)
    unknown = sorted(set(requested) - set(container.projections))
    problem = None
    if not requested:
        problem = 'name at least one read model, or "all"'
    elif unknown:
        problem = (f"unknown read model(s) {', '.join(unknown)}; one of:"
                   f" {', '.join(container.projections)}")  # fmt: skip
    if problem is not None:
        fields = [{"path": f"body.{field}", "problem": problem}]
        raise HTTPException(422, detail={"code": "invalid_request", "fields": fields,
                                         "message": f"{field}: {problem}"})  # fmt: skip
    return [n for n in container.projections if n in requested]


def _conflict(exc: Exception) -> HTTPException:
    return HTTPException(409, detail={"code": "rebuild_conflict", "message": str(exc)})


@router.get("/projections")
def projections_status(container: ContainerDep) -> dict[str, Any]:
    """Every read model: live `generation` (and the `kept_generation` a rollback returns to),
    `state` (`live`, `rebuilding`, `stalled`: lagging with checkpoints unmoved for
    `ONEVOICE_STALL_AFTER_S`), `paused_by_rebuild` (a rebuild is comparing its shadow), the
    `rebuild` id, total `lag`, `last_applied_at`, parked `dead_letters`, and per partition the
    stored `checkpoint`, the log's `end` and the `lag`. With the log unreachable `log` says
    so and ends and lags are null."""
    settings = container.settings
    ends: dict[int, int] | None
    log_state = "ok"
    try:
        ends = container.log.end_offsets(settings.topic)
    except LogUnavailable as exc:  # the cause names brokers: the log has it
        log.warning("projections status: the log is unavailable: %s", exc)
        ends, log_state = None, "unavailable"
    with container.db.reading() as conn:
        items = pipeline_status(conn, container.projections, settings.topic, ends, _now_us(),
                                settings.stall_after_s)  # fmt: skip
    return {"topic": settings.topic, "log": log_state, "projections": items}


class RebuildRequest(BaseModel):
    """Which read models to rebuild (`"all"` or names), and how."""

    model_config = ConfigDict(extra="forbid")
    projections: Literal["all"] | Names = Field(description='"all" or read-model names.')
    accept_diff: bool = Field(default=False, description="Switch even when verification "
                              "finds differences (a projection's code changed).")  # fmt: skip
    keep_old: bool = Field(default=False, description="Keep the replaced generation for "
                           "POST /v1/admin/rollback.")  # fmt: skip


@router.post("/rebuilds", status_code=202, responses=answers(409))
async def start_rebuild(body: RebuildRequest, container: ContainerDep,
                        response: Response) -> dict[str, Any]:  # fmt: skip
    """Start a rebuild of the named read models into a new generation beside the live one
    (which keeps serving). A projector process (`onevoice run`, `onevoice projector`) runs it;
    follow it at `GET /v1/admin/rebuilds/{id}`. 409 when one of them is being rebuilt."""
    names = _names(container, body.projections, "projections")

    def create() -> store.Rebuild:
        with container.db.transaction() as conn:
            return store.create(conn, names, accept_diff=body.accept_diff,
                                keep_old=body.keep_old, now_us=_now_us())  # fmt: skip

    try:
        rebuild = await run_in_threadpool(create)
    except RebuildConflict as exc:
        raise _conflict(exc) from exc
    response.headers["Location"] = f"/v1/admin/rebuilds/{rebuild.id}"
    return rebuild.as_json()


@router.get("/rebuilds")
def list_rebuilds(
    container: ContainerDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> dict[str, Any]:
    """Rebuilds, newest first."""
    before = int_cursor(cursor)
    with container.db.reading() as conn:
        items = store.list_recent(conn, limit + 1, before)
    more = len(items) > limit
    items = items[:limit]
    return {
        "items": [r.as_json() for r in items],
        "next_cursor": cursors.encode([items[-1].created_us]) if more else None,
    }


@router.get("/rebuilds/{rebuild_id}", responses=answers(404))
def get_rebuild(rebuild_id: RebuildId, container: ContainerDep) -> dict[str, Any]:
    """A rebuild: `state` (`running`, `verifying`, `diff`, `switched`, `failed`,
    `cancelled`), `progress` (phase, events applied and the target, events/s, ETA, per
    partition), and `verification` (per read model and table: row counts, digests, and where
    they differ, counts and sample keys)."""
    with container.db.reading() as conn:
        rebuild = store.get(conn, rebuild_id)
    if rebuild is None:
        raise not_found("rebuild_not_found", f"no rebuild {rebuild_id}")
    return rebuild.as_json()


@router.delete("/rebuilds/{rebuild_id}", responses=answers(404, 409))
async def cancel_rebuild(rebuild_id: RebuildId, container: ContainerDep) -> dict[str, Any]:
    """Cancel an open rebuild (running, verifying or diff) and drop its shadow tables; 409
    when it has ended already."""

    def cancel() -> store.Rebuild:
        with container.db.transaction() as conn:
            rebuild = operations.cancel(conn, rebuild_id, _now_us())
        with container.db.transaction() as conn:
            operations.drop_generation(conn, rebuild.projections, rebuild.generation)
        return rebuild

    try:
        rebuild = await run_in_threadpool(cancel)
    except KeyError as exc:
        raise not_found("rebuild_not_found", f"no rebuild {rebuild_id}") from exc
    except RebuildStateError as exc:
        raise _conflict(exc) from exc
    return rebuild.as_json()


@router.post("/rebuilds/{rebuild_id}/accept", status_code=202, responses=answers(404, 409))
async def accept_rebuild(rebuild_id: RebuildId, container: ContainerDep) -> dict[str, Any]:
    """Accept the differences a rebuild in state `diff` found: it catches up again,
    verifies (the report still says what differs) and switches."""

    def accept() -> store.Rebuild:
        with container.db.transaction() as conn:
            return store.accept(conn, rebuild_id, _now_us())

    try:
        rebuild = await run_in_threadpool(accept)
    except KeyError as exc:
        raise not_found("rebuild_not_found", f"no rebuild {rebuild_id}") from exc
    except RebuildStateError as exc:
        raise _conflict(exc) from exc
    return rebuild.as_json()


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    projections: Literal["all"] | Names


@router.post("/rollback", responses=answers(409))
async def rollback(body: RollbackRequest, container: ContainerDep) -> dict[str, Any]:
    """Make the generation a `keep_old` rebuild kept live again (the current one is kept in
    its place). Live projectors resume from its checkpoints and apply what happened since.
    409 when no generation is kept or a rebuild runs."""
    names = _names(container, body.projections, "projections")

    def swap() -> dict[str, int]:
        with container.db.transaction() as conn:
            return operations.rollback(conn, names, _now_us())

    try:
        live = await run_in_threadpool(operations.retried, swap)
    except RebuildStateError as exc:
        raise _conflict(exc) from exc
    return {"generations": live}
