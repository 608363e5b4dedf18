"""Group commit for single POSTs: concurrent one-event requests of one key share one submit.

Each ``POST /v1/events`` paid, for one event, a receipt claim and confirm (two transactions), a
contact-vault lookup and a log append that waits for the log's acknowledgement. Under load
(many clients each posting one event) those fixed costs, not the events, decided how many
requests a server takes per second, and the queue they formed was the end-to-end lag.

Per key: requests that arrive while a submit of that key is in flight wait for it and are
then submitted together; a request that finds none in flight is submitted at once. No request
waits for a timer: the group is as large as the load made it (at most ``max_items`` events and
about ``max_bytes`` of request bodies), so a lone request costs what it did. Keys never share a
submit (each event records its key) and never wait for each other.

Each request gets the answer it would have got alone (``IngestService.submit_each``):
accepted, duplicate, rejected or conflict as decided per item — an ``event_id`` two requests of
one group share is appended once, the second request answered as its duplicate (or a conflict,
when the bodies differ); 403 for a refused event only (the others are submitted again without
it); and when the log or the store fails, 503 for the requests whose answer needed them, while
a rejected event keeps its 422 and a duplicate the receipts already showed its 200. An
unexpected error in a group's submit sends each of its requests again alone, so only the one
that causes it fails.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from services.core.access import Grant
from services.core.metrics.definitions import INGEST_GROUP_EVENTS
from services.ingest.service import ItemResult

SubmitEach = Callable[[list[Any], Grant], list[ItemResult | Exception]]
"""``IngestService.submit_each``."""
InThread = Callable[..., Awaitable[list[ItemResult | Exception]]]
"""Runs a blocking call in the server's thread pool (``fastapi``'s ``run_in_threadpool``)."""


@dataclass(frozen=True)
class _Waiting:
    raw: Any
    size: int
    answer: asyncio.Future[ItemResult]


class Coalescer:
    """``await coalescer.submit(raw, grant, size)``: one event's result (see the module)."""

    def __init__(self, submit_each: SubmitEach, in_thread: InThread, *, max_items: int,
                 max_bytes: int) -> None:  # fmt: skip
        self._submit_each = submit_each
        self._in_thread = in_thread
        self._max_items = max(1, max_items)
        self._max_bytes = max_bytes
        self._waiting: dict[Grant, list[_Waiting]] = {}
        self._draining: dict[Grant, asyncio.Task[None]] = {}

    async def submit(self, raw: Any, grant: Grant, size: int) -> ItemResult:
        loop = asyncio.get_running_loop()
        waiting = _Waiting(raw, size, loop.create_future())
        # Retrieved here, so a failure nobody awaits any more (the client went away) is not
        # reported as "never retrieved".
        waiting.answer.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._waiting.setdefault(grant, []).append(waiting)
        task = self._draining.get(grant)
        if task is None or task.done():
            # A context of its own: the group's log lines carry no one request's id.
            self._draining[grant] = loop.create_task(self._drain(grant),
                                                     context=contextvars.Context())  # fmt: skip
        # shield: a client that goes away does not cancel the group's answer for the others
        return await asyncio.shield(waiting.answer)

    async def _drain(self, grant: Grant) -> None:
        group: list[_Waiting] = []
        try:
            while self._waiting.get(grant):
                group = self._next_group(grant)
                INGEST_GROUP_EVENTS.observe(len(group))
                await self._run(grant, group)
        except BaseException:  # cancelled (shutdown) or a bug: no request waits forever
            for waiting in [*group, *self._waiting.pop(grant, [])]:
                waiting.answer.cancel()
            raise
        finally:
            if self._draining.get(grant) is asyncio.current_task():
                del self._draining[grant]
            if not self._waiting.get(grant):
                self._waiting.pop(grant, None)

    def _next_group(self, grant: Grant) -> list[_Waiting]:
        queue = self._waiting[grant]
        taken, size = 0, 0
        for waiting in queue:
            if taken and (taken >= self._max_items or size + waiting.size > self._max_bytes):
                break
            taken, size = taken + 1, size + waiting.size
        group, self._waiting[grant] = queue[:taken], queue[taken:]
        return group

    async def _run(self, grant: Grant, requests: list[_Waiting]) -> None:
        try:
            results = await self._in_thread(self._submit_each, [w.raw for w in requests], grant)
        except Exception as exc:
            if len(requests) == 1:
                _answer(requests[0], exc)
                return
            for waiting in requests:  # only the request that causes it should fail
                await self._run(grant, [waiting])
            return
        except BaseException:  # the loop is going away: no request waits forever
            for waiting in requests:
                waiting.answer.cancel()
            raise
        for waiting, result in zip(requests, results, strict=True):
            _answer(waiting, result)


def _answer(waiting: _Waiting, result: ItemResult | Exception) -> None:
    if waiting.answer.done():
        return
    if isinstance(result, Exception):
        waiting.answer.set_exception(result)
    else:
        waiting.answer.set_result(replace(result, index=0))
