"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from services.api.deps import ContainerDep
from services.core.deadletters.store import parked_counts
from services.core.ports import LogUnavailable
from services.core.readmodels import checkpoints

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive (no dependency is checked; async, so it never waits behind slow
    requests in the thread pool)."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(container: ContainerDep) -> JSONResponse:
    """503 unless the database and the log answer and this process's projector (if any) runs.

    Per read model: `lag` (records not applied yet) and `dead_letters` (records parked: total
    and per reason; see `GET /v1/admin/dead-letters`). Parked records do not make the service
    unready — everything else is applied — but they need an operator."""
    body: dict[str, Any] = {"database": "ok", "log": "ok", "projections": {}}
    end: dict[int, int] | None = None
    try:
        end = container.log.end_offsets(container.settings.topic)
    except LogUnavailable as exc:
        body["log"] = f"unavailable: {exc}"
    if not container.db.ping():
        body["database"] = "unavailable"
    failure = container.projector_failure()
    if failure is not None:
        body["projector"] = f"stopped: {failure}"
    if end is not None and body["database"] == "ok":
        with container.db.reading() as conn:
            parked = parked_counts(conn, container.projections)
            for name in container.projections:
                done = checkpoints.load(
                    conn, name, checkpoints.LIVE_GENERATION, container.settings.topic
                )
                lag = sum(max(0, e - done.get(p, 0)) for p, e in end.items())
                body["projections"][name] = {"lag": lag, "dead_letters": parked[name]}
    ready = body["database"] == "ok" and body["log"] == "ok" and failure is None
    body["status"] = "ready" if ready else "unavailable"
    return JSONResponse(body, status_code=200 if ready else 503)
