"""Operator endpoints: dead letters (what could not be applied), and re-driving them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.api.deps import ContainerDep, ReadConnDep
from services.api.errors import int_cursor, invalid_query, not_found
from services.core.deadletters import Reason
from services.core.deadletters import store as dead_letters
from services.core.problems import answers
from services.core.readmodels import cursors

router = APIRouter(prefix="/v1/admin", tags=["admin"])

StateFilter = Literal["parked", "redriven", "all"]


def _unknown_projection(container: ContainerDep, projection: str | None) -> str | None:
    if projection is None or projection in container.projections:
        return None
    return f"unknown projection; one of: {', '.join(container.projections)}"


@router.get("/dead-letters")
def list_dead_letters(
    conn: ReadConnDep,
    container: ContainerDep,
    projection: Annotated[str | None, Query(description="Only this read model's.")] = None,
    reason: Annotated[
        Reason | None, Query(description="undecodable, invalid, unsupported or failed.")
    ] = None,
    state: Annotated[StateFilter, Query(description="parked (default), redriven or all.")] = (
        "parked"
    ),
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> dict[str, Any]:
    """Records a read model could not apply, oldest first, with why (`reason`, `error`), where
    (`topic`, `partition`, `offset`, `key`, `event_id`), when (`first_seen`, `last_seen`) and
    how often (`attempts`). `counts` has the parked records per read model and reason. The raw
    value is in `GET /v1/admin/dead-letters/{id}`."""
    problem = _unknown_projection(container, projection)
    if problem is not None:
        raise invalid_query("projection", problem)
    after = int_cursor(cursor)
    filters = dead_letters.Filters(projection, reason, None if state == "all" else state)
    items, last = dead_letters.list_page(conn, filters, after, limit)
    return {
        "items": items,
        "next_cursor": None if last is None else cursors.encode([last]),
        "counts": dead_letters.parked_counts(conn, container.projections),
    }


@router.get("/dead-letters/{dead_letter_id}", responses=answers(404))
def get_dead_letter(
    conn: ReadConnDep, dead_letter_id: Annotated[int, Path(ge=1, lt=2**63)]
) -> dict[str, Any]:
    """One dead letter with the record's raw value (`{"text": ...}` when it is UTF-8, else
    `{"base64": ...}`; null for a tombstone) and headers."""
    row = dead_letters.get(conn, dead_letter_id)
    if row is None:
        raise not_found("dead_letter_not_found", f"no dead letter {dead_letter_id}")
    return dead_letters.detail(row)


class RedriveRequest(BaseModel):
    """Either `ids`, or `all: true` with optional `projection` and `reason` filters."""

    model_config = ConfigDict(extra="forbid")
    ids: list[Annotated[int, Field(ge=1, lt=2**63)]] | None = Field(default=None, max_length=1000)
    all: bool = False
    projection: str | None = Field(default=None, max_length=64)
    reason: Reason | None = None

    @model_validator(mode="after")
    def _one_selection(self) -> RedriveRequest:
        if (self.ids is None) == (not self.all):
            raise ValueError("give either ids or all: true")
        if self.ids is not None and (self.projection or self.reason):
            raise ValueError("projection and reason filter all: true, not ids")
        return self


@router.post("/dead-letters/redrive")
async def redrive_dead_letters(body: RedriveRequest, container: ContainerDep) -> dict[str, Any]:
    """Apply parked records again (after a fix or an upgrade), one transaction per record. A
    record that still fails stays parked with its new error and one more attempt. Answers
    `redriven`, `still_failing`, the ids re-applied and each failure. Re-driving leaves every
    view as if the record had been applied in log order."""
    problem = _unknown_projection(container, body.projection)
    if problem is not None:
        raise HTTPException(422, detail={
            "code": "invalid_request", "message": f"projection: {problem}",
            "fields": [{"path": "projection", "problem": problem}],
        })  # fmt: skip
    if container.redrive is None:
        raise HTTPException(503, detail={"code": "redrive_unavailable",
                                         "message": "this process cannot re-drive"})  # fmt: skip
    filters = None if body.all is False else dead_letters.Filters(body.projection, body.reason)
    report = await run_in_threadpool(container.redrive, body.ids, filters)
    return report.as_json()
