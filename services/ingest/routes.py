"""HTTP -> IngestService: ``POST /v1/events`` and ``POST /v1/events/batch``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from services.core.access import Grant
from services.core.access.limits import WriteLimiter
from services.core.codec import loads_strict
from services.core.consistency import TOKEN_HEADER, token_for
from services.core.events import KpiTargetSet
from services.core.ports import LogUnavailable, StoreUnavailable
from services.core.problems import answers, error_body
from services.ingest.coalescer import Coalescer
from services.ingest.service import IngestService, ItemResult, WriteRefused

EVENT_SCHEMA_REF = {"$ref": "#/components/schemas/Event"}


def grant_of(request: Request) -> Grant:
    """The request's key (``api.auth.Authenticate`` put it there before routing)."""
    grant: Grant = request.state.grant
    return grant


_SINGLE_DOC = """Append one customer touchpoint to the log.

* **202** `{"status": "accepted", "event_id", "position"}` — durably appended.
* **200** `{"status": "duplicate", ...}` — this `event_id` was accepted before with the same body;
  nothing was appended again.
* **409** — this `event_id` was used for a different event.
* **422** — invalid event; `error.fields` lists each bad field (`path`, `problem`).
* **401** no key, or an unknown or revoked one; **403** the key may not write this event's
  department or type (`error.fields` names `actor.department` or `type`); nothing appended.
* **400** malformed JSON; **413** body over the size limit; **415** not `application/json`;
  **429** over the key's write rate (retry after `Retry-After` seconds); **503** log
  unavailable (retry with the same `event_id`, after `Retry-After` seconds).
"""

_BATCH_DOC = """Append up to `ONEVOICE_MAX_BATCH` (default 500) events, answered per item.

Body: `{"events": [event, ...]}`. Valid items are appended even when others fail. The answer
(200) counts `accepted`, `duplicates`, `rejected` and `conflicts` and has one entry per item in
`items` with its `index`, `status`, `event_id`, `position` and `errors`. **403** when the key
may not write one of the valid events (`error.fields`: `events[i].actor.department` or
`events[i].type`): then none is appended.
"""


_SINGLE_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"description": "`duplicate`: this `event_id` was accepted before with the same body; "
          "nothing was appended again (the answer has the shape of the 202)."},
    **answers(400, 409, 413, 415, 429),
}  # fmt: skip

JSON_MEDIA = re.compile(r"^application/(json|[a-z0-9.+-]+\+json)$")
"""The media types ingest reads: ``application/json`` and ``application/<anything>+json``
(with parameters, e.g. ``; charset=utf-8``). Any other is refused (415) before the body is
read: a browser may send ``text/plain`` or a form across sites without asking first."""


async def _json_body(request: Request) -> Any | JSONResponse:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not JSON_MEDIA.match(media):
        problem = f"must be application/json (got {media or 'none'})"
        return JSONResponse(error_body("unsupported_media_type", f"the body {problem}",
                                       [{"path": "header.Content-Type", "problem": problem}]),
                            415)  # fmt: skip
    try:
        return loads_strict(await request.body())
    except ValueError as exc:
        return JSONResponse(error_body("malformed_json", f"body is not valid JSON: {exc}"), 400)


def _unavailable(request: Request, exc: LogUnavailable | StoreUnavailable) -> JSONResponse:
    """503; the cause (hosts, ports, users) goes to the log (``IngestService.submit``), the
    answer carries the request id."""
    request_id = getattr(request.state, "request_id", None)
    if isinstance(exc, StoreUnavailable):
        body = error_body("store_unavailable", "the database is unavailable; retry with the"
                          " same event_id", request_id=request_id)  # fmt: skip
    else:
        body = error_body("log_unavailable", "the event log did not acknowledge the write; retry"
                          " with the same event_id", request_id=request_id)  # fmt: skip
    return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})


def _refused(exc: WriteRefused, batch: bool) -> JSONResponse:
    """403 naming each refused event's field (``events[i].<field>`` in a batch)."""
    fields = [{"path": f"events[{i}].{field}" if batch else field, "problem": problem}
              for i, field, problem in exc.refusals]  # fmt: skip
    message = (
        "the key may not write "
        + ("these events" if batch else "this event")
        + ": "
        + exc.refusals[0][2]
        + ("" if len(fields) == 1 else f" (and {len(fields) - 1} more)")
    )
    return JSONResponse(error_body("forbidden", message, fields), 403)


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


def _limited(limiter: WriteLimiter | None, request: Request, events: int) -> JSONResponse | None:
    """429 with ``Retry-After`` when the key may not write ``events`` more now (nothing of
    the request is appended); None when it may (they are counted)."""
    grant = grant_of(request)
    retry = None if limiter is None else limiter.take(grant, events)
    if retry is None or limiter is None:
        return None
    rate = f"{limiter.rate_of(grant):g}"
    problem = f"the key {grant.name!r} may write {rate} events/s; retry after {retry} s"
    body = error_body("rate_limited", problem, [{"path": "header.Authorization",
                                                 "problem": problem}])  # fmt: skip
    return JSONResponse(body, 429, headers={"Retry-After": str(retry)})


def _give_back(limiter: WriteLimiter | None, request: Request, events: int) -> None:
    if limiter is not None:
        limiter.give_back(grant_of(request), events)


def build_router(service: IngestService, max_batch: int, limiter: WriteLimiter | None = None,
                 max_bytes: int = 1 << 20) -> APIRouter:  # fmt: skip
    """The ingest endpoints, bound to one service (``limiter``: the keys' write rates;
    None: no limit). Single POSTs in flight together are submitted together (``coalescer``),
    at most ``max_batch`` events and about ``max_bytes`` of bodies at a time."""
    router = APIRouter(prefix="/v1/events", tags=["ingest"])
    coalescer = Coalescer(lambda raws, grant: service.submit_each(raws, grant), run_in_threadpool,
                          max_items=max_batch, max_bytes=max_bytes)  # fmt: skip
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
                 openapi_extra={"requestBody": event_body}, responses=_SINGLE_ANSWERS)  # fmt: skip
    async def post_event(request: Request) -> JSONResponse:
        data = await _json_body(request)
        if isinstance(data, JSONResponse):
            return data
        limited = _limited(limiter, request, 1)
        if limited is not None:
            return limited
        try:
            result = await coalescer.submit(data, grant_of(request), len(await request.body()))
        except WriteRefused as exc:
            _give_back(limiter, request, 1)
            return _refused(exc, batch=False)
        except (LogUnavailable, StoreUnavailable) as exc:
            _give_back(limiter, request, 1)
            return _unavailable(request, exc)
        return _single_response(result)

    @router.post(
        "/batch",
        description=_BATCH_DOC,
        openapi_extra={"requestBody": batch_body},
        responses=answers(400, 415, 429),
    )
    async def post_batch(request: Request) -> JSONResponse:
        data = await _json_body(request)
        if isinstance(data, JSONResponse):
            return data
        problem = _batch_problem(data, max_batch)
        if problem is not None:
            return JSONResponse(error_body("invalid_batch", problem["problem"], [problem]), 422)
        limited = _limited(limiter, request, len(data["events"]))
        if limited is not None:
            return limited
        try:
            results = await run_in_threadpool(service.submit, data["events"],
                                              grant_of(request))  # fmt: skip
        except WriteRefused as exc:
            _give_back(limiter, request, len(data["events"]))
            return _refused(exc, batch=True)
        except (LogUnavailable, StoreUnavailable) as exc:
            _give_back(limiter, request, len(data["events"]))
            return _unavailable(request, exc)
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


def _component(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_TARGET_PAYLOAD = KpiTargetSet.model_json_schema(ref_template="#/components/schemas/{model}")
_TARGET_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {
        "type": "object",
        "additionalProperties": False,
        "required": ["metric", "group_by", "group", "period", "target", "actor"],
        "properties": {
            **{name: _TARGET_PAYLOAD["properties"][name] for name in _TARGET_FIELDS},
            "actor": _component("Actor"),
            "occurred_at": {"type": "string", "format": "date-time",
                            "description": "default: now; required with event_id"},
            "source": {"type": "string", "minLength": 1, "maxLength": 256,
                       "description": "default: kpi-targets"},
            "event_id": {"type": "string", "format": "uuid"},
        },
    }}},
}  # fmt: skip
"""``PUT /v1/kpi-targets``'s body, as ``_target_problem`` and the event contract read it."""


def build_targets_router(service: IngestService,
                         limiter: WriteLimiter | None = None) -> APIRouter:  # fmt: skip
    """``PUT /v1/kpi-targets``: a KPI target, recorded as an event (counted in the key's
    write rate)."""
    router = APIRouter(tags=["reports"])

    @router.put(
        "/v1/kpi-targets",
        status_code=202,
        description=_TARGET_DOC,
        openapi_extra={"requestBody": _TARGET_BODY},
        responses=_SINGLE_ANSWERS,
    )
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
        limited = _limited(limiter, request, 1)
        if limited is not None:
            return limited
        try:
            (result,) = await run_in_threadpool(service.submit, [event], grant_of(request))
        except WriteRefused as exc:
            _give_back(limiter, request, 1)
            return _refused(exc, batch=False)
        except (LogUnavailable, StoreUnavailable) as exc:
            _give_back(limiter, request, 1)
            return _unavailable(request, exc)
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
