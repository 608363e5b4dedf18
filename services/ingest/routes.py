"""HTTP -> IngestService: ``POST /v1/events`` and ``POST /v1/events/batch``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from services.core.codec import loads_strict
from services.core.consistency import TOKEN_HEADER, token_for
from services.core.ports import LogUnavailable, StoreUnavailable
from services.core.problems import error_body
from services.ingest.service import IngestService, ItemResult

EVENT_SCHEMA_REF = {"$ref": "#/components/schemas/Event"}

_SINGLE_DOC = """Append one customer touchpoint to the log.

* **202** `{"status": "accepted", "event_id", "position"}` — durably appended.
* **200** `{"status": "duplicate", ...}` — this `event_id` was accepted before with the same body;
  nothing was appended again.
* **409** — this `event_id` was used for a different event.
* **422** — invalid event; `error.fields` lists each bad field (`path`, `problem`).
* **400** malformed JSON; **413** body over the size limit; **503** log unavailable (retry with
  the same `event_id`, after `Retry-After` seconds).
"""

_BATCH_DOC = """Append up to `ONEVOICE_MAX_BATCH` (default 500) events, answered per item.

Body: `{"events": [event, ...]}`. Valid items are appended even when others fail. The answer
(200) counts `accepted`, `duplicates`, `rejected` and `conflicts` and has one entry per item in
`items` with its `index`, `status`, `event_id`, `position` and `errors`.
"""


async def _json_body(request: Request) -> Any | JSONResponse:
    try:
        return loads_strict(await request.body())
    except ValueError as exc:
        return JSONResponse(error_body("malformed_json", f"body is not valid JSON: {exc}"), 400)


def _unavailable(exc: LogUnavailable | StoreUnavailable) -> JSONResponse:
    if isinstance(exc, StoreUnavailable):
        body = error_body("store_unavailable", f"the database is unavailable: {exc}")
    else:
        body = error_body("log_unavailable", f"the event log did not acknowledge the write: {exc}")
    return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})


def _single_response(result: ItemResult) -> JSONResponse:
    if result.status == "rejected":
        return JSONResponse(
            error_body("invalid_event", "the event is not valid", result.errors), 422
        )
    if result.status == "conflict":
        return JSONResponse(
            error_body("event_id_conflict", result.errors[0]["problem"], result.errors,
                       event_id=result.event_id),
            409,
        )  # fmt: skip
    body = result.as_json()
    del body["index"]
    token = token_for([result.position] if result.position else [])
    body["consistency_token"] = token
    return JSONResponse(
        body, 202 if result.status == "accepted" else 200, headers={TOKEN_HEADER: token}
    )


def build_router(service: IngestService, max_batch: int) -> APIRouter:
    """The ingest endpoints, bound to one service."""
    router = APIRouter(prefix="/v1/events", tags=["ingest"])
    event_body = {"required": True, "content": {"application/json": {"schema": EVENT_SCHEMA_REF}}}
    batch_body = {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["events"],
                    "additionalProperties": False,
                    "properties": {
                        "events": {"type": "array", "items": EVENT_SCHEMA_REF,
                                   "minItems": 1, "maxItems": max_batch}
                    },
                }
            }
        },
    }  # fmt: skip

    @router.post("", status_code=202, description=_SINGLE_DOC,
                 openapi_extra={"requestBody": event_body})  # fmt: skip
    async def post_event(request: Request) -> JSONResponse:
        data = await _json_body(request)
        if isinstance(data, JSONResponse):
            return data
        try:
            (result,) = await run_in_threadpool(service.submit, [data])
        except (LogUnavailable, StoreUnavailable) as exc:
            return _unavailable(exc)
        return _single_response(result)

    @router.post("/batch", description=_BATCH_DOC, openapi_extra={"requestBody": batch_body})
    async def post_batch(request: Request) -> JSONResponse:
        data = await _json_body(request)
        if isinstance(data, JSONResponse):
            return data
        problem = _batch_problem(data, max_batch)
        if problem is not None:
            return JSONResponse(error_body("invalid_batch", problem["problem"], [problem]), 422)
        try:
            results = await run_in_threadpool(service.submit, data["events"])
        except (LogUnavailable, StoreUnavailable) as exc:
            return _unavailable(exc)
        counts = {s: sum(r.status == s for r in results)
                  for s in ("accepted", "duplicate", "rejected", "conflict")}  # fmt: skip
        token = token_for(r.position for r in results if r.position is not None)
        body = {
            "accepted": counts["accepted"], "duplicates": counts["duplicate"],
            "rejected": counts["rejected"], "conflicts": counts["conflict"],
            "consistency_token": token, "items": [r.as_json() for r in results],
        }  # fmt: skip
        return JSONResponse(body, headers={TOKEN_HEADER: token})

    return router


def _batch_problem(data: Any, max_batch: int) -> dict[str, str] | None:
    if not isinstance(data, dict):
        return {"path": "", "problem": 'the body must be an object: {"events": [...]}'}
    extra = sorted(set(data) - {"events"})
    if extra:
        return {"path": extra[0], "problem": "unknown field; the body has only 'events'"}
    events = data.get("events")
    if not isinstance(events, list):
        return {"path": "events", "problem": "required: a list of events"}
    if not 1 <= len(events) <= max_batch:
        return {
            "path": "events",
            "problem": f"must hold 1 to {max_batch} events (got {len(events)})",
        }
    return None


_TARGET_FIELDS = ("metric", "group_by", "group", "period", "target")
_TARGET_ENVELOPE = ("actor", "source", "occurred_at", "event_id")
_TARGET_DOC = """Set a KPI target: appends a `kpi.target_set` event (the log keeps every target;
the newest set at or before a period's end is the one a KPI report judges that period by).

Body: `metric`, `group_by` (`department`, `segment` or `owner`), `group`, `period` (`week` or
`month`), `target` (a number >= 0), and `actor` (who set it, shaped like an event's actor);
optional `occurred_at` (default: now), `source` (default `kpi-targets`) and `event_id` (with
`occurred_at`: a retry with the same `event_id` and body is answered 200 `duplicate`).
Answers like `POST /v1/events`; a 422 names the body's field.
"""


def build_targets_router(service: IngestService) -> APIRouter:
    """``PUT /v1/kpi-targets``: a KPI target, recorded as an event."""
    router = APIRouter(tags=["reports"])

    @router.put("/v1/kpi-targets", status_code=202, description=_TARGET_DOC)
    async def put_target(request: Request) -> JSONResponse:
        data = await _json_body(request)
        if isinstance(data, JSONResponse):
            return data
        problem = _target_problem(data, service.departments)
        if problem is not None:
            return JSONResponse(error_body("invalid_event", problem["problem"], [problem]), 422)
        event = {"type": "kpi.target_set", "source": data.get("source", "kpi-targets"),
                 "occurred_at": data.get("occurred_at", service.now().isoformat()),
                 "actor": data.get("actor"),
                 "payload": {k: data[k] for k in _TARGET_FIELDS if k in data}}  # fmt: skip
        if "event_id" in data:
            event["event_id"] = data["event_id"]
        try:
            (result,) = await run_in_threadpool(service.submit, [event])
        except (LogUnavailable, StoreUnavailable) as exc:
            return _unavailable(exc)
        for error in result.errors:  # the body is flat: payload.metric is the body's metric
            error["path"] = error["path"].removeprefix("payload.")
        return _single_response(result)

    return router


def _target_problem(data: Any, departments: Sequence[str]) -> dict[str, str] | None:
    if not isinstance(data, dict):
        return {"path": "", "problem": "the body must be a JSON object"}
    extra = sorted(set(data) - {*_TARGET_FIELDS, *_TARGET_ENVELOPE})
    if extra:
        allowed = ", ".join((*_TARGET_FIELDS, *_TARGET_ENVELOPE))
        return {"path": extra[0], "problem": f"unknown field; allowed: {allowed}"}
    if "event_id" in data and data.get("occurred_at") is None:
        # Without it the server's clock would make every retry a different body (409).
        return {"path": "occurred_at", "problem": "required with event_id (a retry sends both)"}
    group = data.get("group")
    if data.get("group_by") == "department" and isinstance(group, str) \
            and group not in departments:  # fmt: skip
        # A target for a department nobody can be in would never be judged.
        return {"path": "group", "problem": "must be one of the configured departments: "
                + ", ".join(departments)}  # fmt: skip
    return None
