"""Liveness and readiness."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from services.api.deps import ContainerDep
from services.core.container import Container
from services.core.deadletters.store import parked_counts
from services.core.ports import LogUnavailable
from services.core.readmodels import checkpoints

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive (no dependency is checked; async, so it never waits behind slow
    requests in the thread pool)."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {
    "description": "Not ready: the same body as the 200, with `status: unavailable` and what is"
    " missing (`database`, `log` or `projector`)."}})  # fmt: skip
def readyz(container: ContainerDep) -> JSONResponse:
    """Readiness of this process's role: 503 unless everything the role needs answers.

    Every role needs the database. Ingest, the projector and `run` also need the log, and a
    projector that stopped for good (`projector`: `stopped`) makes them unready; `run`'s
    projector process also while it starts (`starting`) or its own `/readyz` is not 200. The query
    API needs only the database: it does not ask the log here (`log` says so) and stays ready
    while the log is down.

    Per read model: `lag` (records not applied yet; not in the query API's answer) and
    `dead_letters` (records parked: total and per reason; see `GET /v1/admin/dead-letters`).
    Parked records do not make the service unready (everything else is applied), but they need
    an operator."""
    body: dict[str, Any] = {"database": "ok", "log": "ok", "projections": {}}
    end: dict[int, int] | None = None
    if not container.log_required:
        body["log"] = "not needed by this role"
    else:
        try:
            end = container.log.end_offsets(container.settings.topic)
        except LogUnavailable as exc:  # the cause names brokers: the log has it, not the answer
            log.warning("readiness: the log is unavailable: %s", exc)
            body["log"] = "unavailable"
    if not container.db.ping():
        body["database"] = "unavailable"
    failure = container.projector_failure()
    if failure is not None:  # the cause may quote the database: the log and the admin API
        # `run`'s projector process answers "starting" until its own /readyz does.
        body["projector"] = "starting" if failure.startswith("starting") else "stopped"
    if body["database"] == "ok" and (end is not None or not container.log_required):
        body["projections"] = _projections(container, end)
    log_ok = body["log"] == "ok" or not container.log_required
    ready = body["database"] == "ok" and log_ok and failure is None
    body["status"] = "ready" if ready else "unavailable"
    return JSONResponse(body, status_code=200 if ready else 503)


def _projections(container: Container, end: dict[int, int] | None) -> dict[str, Any]:
    """Per read model its parked records and, when the log's ends are known, its lag."""
    found: dict[str, Any] = {}
    with container.db.reading() as conn:
        parked = parked_counts(conn, container.projections)
        for name in container.projections:
            found[name] = {"dead_letters": parked[name]}
            if end is not None:
                done = checkpoints.load(
                    conn, name, checkpoints.LIVE_GENERATION, container.settings.topic
                )
                found[name]["lag"] = sum(max(0, e - done.get(p, 0)) for p, e in end.items())
    return found
