"""Group commit for single POSTs: concurrent one-event requests share one submit.

Each ``POST /v1/events`` paid, for one event, a receipt claim and confirm (two transactions), a
contact-vault lookup and a log append that waits for the log's acknowledgement. Under load
(many clients each posting one event) those fixed costs, not the events, decided how many
requests a server takes per second, and the queue they formed was the end-to-end lag.

Requests that arrive while a submit is in flight wait for it and are then submitted together;
a request that finds none in flight is submitted at once. No request waits for a timer: the
group is as large as the load made it (at most ``max_items`` events and about ``max_bytes`` of
request bodies), so a lone request costs what it did.

Each request gets its own event's answer, as if it had been submitted alone:
- accepted, duplicate, rejected or conflict, as ``IngestService.submit`` decides per item — an
  ``event_id`` that two requests of one group share is appended once; the second request is
  answered as a duplicate of the first (or a conflict, when the bodies differ);
- when the key may not write an event of the group (``WriteRefused``: nothing of the group
  was appended), the requests of the refused events get 403 and the others are submitted
  again, together;
- when the log or the store is unavailable, every request of the group fails with that error
  (none was acknowledged: the client retries with the same ``event_id``).
Requests of different keys are never submitted together (each event records its key).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from services.core.access import Grant
from services.core.metrics.definitions import INGEST_GROUP_EVENTS
from services.ingest.service import ItemResult, WriteRefused

Submit = Callable[..., list[ItemResult]]
"""``IngestService.submit``: (raw items, grant, *, count_refused_only) -> one result each."""
InThread = Callable[..., Awaitable[list[ItemResult]]]
"""Runs a blocking call in the server's thread pool (``fastapi``'s ``run_in_threadpool``)."""


@dataclass(frozen=True)
class _Waiting:
    raw: Any
    grant: Grant
    size: int
    answer: asyncio.Future[ItemResult]


class Coalescer:
    """``await coalescer.submit(raw, grant, size)``: one event's result (see the module)."""

    def __init__(self, submit: Submit, in_thread: InThread, *, max_items: int,
                 max_bytes: int) -> None:  # fmt: skip
        self._submit = submit
        self._in_thread = in_thread
        self._max_items = max(1, max_items)
        self._max_bytes = max_bytes
        self._waiting: list[_Waiting] = []
        self._draining: asyncio.Task[None] | None = None

    async def submit(self, raw: Any, grant: Grant, size: int) -> ItemResult:
        loop = asyncio.get_running_loop()
        waiting = _Waiting(raw, grant, size, loop.create_future())
        self._waiting.append(waiting)
        if self._draining is None:
            self._draining = loop.create_task(self._drain())
        # shield: a client that goes away does not cancel the group's answer for the others
        return await asyncio.shield(waiting.answer)

    async def _drain(self) -> None:
        group: list[_Waiting] = []
        try:
            while self._waiting:
                group = self._next_group()
                by_key: dict[Grant, list[_Waiting]] = {}
                for waiting in group:
                    by_key.setdefault(waiting.grant, []).append(waiting)
                for grant, requests in by_key.items():
                    INGEST_GROUP_EVENTS.observe(len(requests))  # once, if refusals split it
                    await self._run(grant, requests)
        except BaseException:  # cancelled (shutdown) or a bug: no request waits forever
            for waiting in [*group, *self._waiting]:
                waiting.answer.cancel()
            self._waiting = []
            raise
        finally:
            self._draining = None

    def _next_group(self) -> list[_Waiting]:
        taken, size = 0, 0
        for waiting in self._waiting:
            if taken and (taken >= self._max_items or size + waiting.size > self._max_bytes):
                break
            taken, size = taken + 1, size + waiting.size
        group, self._waiting = self._waiting[:taken], self._waiting[taken:]
        return group

    async def _run(self, grant: Grant, requests: list[_Waiting]) -> None:
        try:
            results = await self._in_thread(
                partial(self._submit, count_refused_only=True), [w.raw for w in requests], grant
            )
        except WriteRefused as exc:
            refused: dict[int, list[tuple[int, str, str]]] = {}
            for index, field, problem in exc.refusals:
                refused.setdefault(index, []).append((0, field, problem))
            for index, reasons in refused.items():
                _fail(requests[index], WriteRefused(reasons))
            rest = [w for i, w in enumerate(requests) if i not in refused]
            if rest:  # nothing of the group was appended: the others go again, together
                await self._run(grant, rest)
            return
        except Exception as exc:
            for waiting in requests:
                _fail(waiting, exc)
            return
        except BaseException:  # the loop is going away: no request waits forever
            for waiting in requests:
                waiting.answer.cancel()
            raise
        for waiting, result in zip(requests, results, strict=True):
            if not waiting.answer.done():
                waiting.answer.set_result(replace(result, index=0))


def _fail(waiting: _Waiting, exc: BaseException) -> None:
    if not waiting.answer.done():
        waiting.answer.set_exception(exc)
