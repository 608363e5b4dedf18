"""The single POST's group commit: requests in flight together share one submit, and each
gets the answer it would have got alone (``services.ingest.coalescer``)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.concurrency import run_in_threadpool
from prometheus_client import REGISTRY

from services.core import codec
from services.core.access import Grant
from services.core.ports import LogUnavailable
from services.ingest.coalescer import Coalescer
from services.ingest.service import IngestService, ItemResult, WriteRefused
from tests.fakes import InMemoryLog, InMemoryReceipts
from tests.samples import make_event

TOPIC = "onevoice.events.test"
NOW = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
EVERYONE = Grant.everything("everything-key")
SALES_ONLY = Grant("sales-key", frozenset({"sales"}))


class Gated:
    """``IngestService.submit_each`` that records each group and holds the first one until
    ``release`` (so the requests after it are known to wait while it is in flight); a body
    whose source is "boom" makes its group's submit raise (a bug in one request)."""

    def __init__(self, service: IngestService) -> None:
        self.service = service
        self.groups: list[list[Any]] = []
        self.gate = threading.Event()

    def __call__(self, raw: Sequence[Any], grant: Grant) -> list[ItemResult | Exception]:
        self.groups.append(list(raw))
        if len(self.groups) == 1:
            assert self.gate.wait(10)
        if any(r.get("source") == "boom" for r in raw):
            raise RuntimeError("a bug that one body sets off")
        return self.service.submit_each(list(raw), grant)


def _service() -> tuple[InMemoryLog, IngestService]:
    log = InMemoryLog()
    log.ensure_topic(TOPIC, 4)
    return log, IngestService(log, InMemoryReceipts(), TOPIC, clock=lambda: NOW)


def _event(n: int, department: str = "sales", **changes: Any) -> dict[str, Any]:
    kind = {"sales": "sales.call_logged", "support": "support.ticket_opened"}[department]
    payload = ({"subject": f"통화 {n}"} if department == "sales" else
               {"ticket_id": f"T-{n}", "subject": "로그인", "category": "login",
                "severity": "low"})  # fmt: skip
    body = make_event(kind, account_id=f"acct-{n % 3}", payload=payload,
                      event_id=f"00000000-0000-4000-8000-{n:012d}")  # fmt: skip
    body["actor"]["department"] = department
    return {**body, **changes}


async def _post_all(coalescer: Coalescer, gated: Gated,
                    posts: list[tuple[dict[str, Any], Grant]]) -> list[Any]:  # fmt: skip
    """The first post, then the others while it is in flight, then the gate opens."""
    first = asyncio.ensure_future(coalescer.submit(posts[0][0], posts[0][1], 100))
    while not gated.groups:
        await asyncio.sleep(0.001)
    rest = [asyncio.ensure_future(coalescer.submit(raw, grant, 100)) for raw, grant in posts[1:]]
    await asyncio.sleep(0.01)
    gated.gate.set()
    return await asyncio.gather(first, *rest, return_exceptions=True)


def test_a_lone_request_is_submitted_at_once() -> None:
    log, service = _service()
    gated = Gated(service)
    gated.gate.set()
    coalescer = Coalescer(gated, run_in_threadpool, max_items=500, max_bytes=1 << 20)
    started = time.monotonic()
    result = asyncio.run(coalescer.submit(_event(1), EVERYONE, 100))
    assert time.monotonic() - started < 5
    assert (result.index, result.status) == (0, "accepted")
    assert [len(g) for g in gated.groups] == [1]
    assert len(log.all_records(TOPIC)) == 1


def test_requests_in_flight_together_share_one_submit_and_each_gets_its_own_answer() -> None:
    log, service = _service()
    gated = Gated(service)
    coalescer = Coalescer(gated, run_in_threadpool, max_items=500, max_bytes=1 << 20)
    posts = [(_event(n), EVERYONE) for n in range(10)]
    results = asyncio.run(_post_all(coalescer, gated, posts))
    assert [len(g) for g in gated.groups] == [1, 9]
    assert all(isinstance(r, ItemResult) and r.status == "accepted" and r.index == 0
               for r in results)  # fmt: skip
    assert [r.event_id for r in results] == [raw["event_id"] for raw, _ in posts]
    records = log.all_records(TOPIC)
    assert sorted((r.partition, r.offset) for r in records) == sorted(r.position for r in results)
    assert {codec.decode(r).event_id for r in records} == {raw["event_id"] for raw, _ in posts}


def test_an_event_id_two_requests_of_a_group_share_is_appended_once() -> None:
    log, service = _service()
    gated = Gated(service)
    coalescer = Coalescer(gated, run_in_threadpool, max_items=500, max_bytes=1 << 20)
    same, other = _event(5), _event(5)
    other["payload"] = {"subject": "다른 내용"}
    results = asyncio.run(_post_all(coalescer, gated, [
        (_event(1), EVERYONE), (same, EVERYONE), (dict(same), EVERYONE), (other, EVERYONE),
    ]))  # fmt: skip
    statuses = [r.status for r in results]
    assert statuses == ["accepted", "accepted", "duplicate", "conflict"]
    assert results[2].position == results[1].position
    assert len(log.all_records(TOPIC)) == 2


def _forbidden() -> float:
    return sum(REGISTRY.get_sample_value("onevoice_ingest_events_total",
                                         {"status": "forbidden", "type": t}) or 0
               for t in ("sales.call_logged", "support.ticket_opened"))  # fmt: skip


def test_a_refused_event_is_refused_alone_and_the_others_of_its_group_are_appended() -> None:
    log, service = _service()
    gated = Gated(service)
    coalescer = Coalescer(gated, run_in_threadpool, max_items=500, max_bytes=1 << 20)
    before = _forbidden()
    results = asyncio.run(_post_all(coalescer, gated, [
        (_event(1), SALES_ONLY), (_event(2), SALES_ONLY), (_event(3, "support"), SALES_ONLY),
        (_event(4), SALES_ONLY),
    ]))  # fmt: skip
    assert [type(r).__name__ for r in results] == [
        "ItemResult", "ItemResult", "WriteRefused", "ItemResult"]  # fmt: skip
    refused = results[2]
    assert isinstance(refused, WriteRefused)
    assert [(i, field) for i, field, _ in refused.refusals] == [(0, "actor.department")]
    assert [r.status for r in results if isinstance(r, ItemResult)] == ["accepted"] * 3
    assert [len(g) for g in gated.groups] == [1, 3]  # submit_each submits the others again
    assert len(log.all_records(TOPIC)) == 3
    assert _forbidden() - before == 1  # the refused event only


def test_requests_of_different_keys_are_never_submitted_together() -> None:
    log, service = _service()
    gated = Gated(service)
    coalescer = Coalescer(gated, run_in_threadpool, max_items=500, max_bytes=1 << 20)
    results = asyncio.run(_post_all(coalescer, gated, [
        (_event(1), EVERYONE), (_event(2), SALES_ONLY), (_event(3), EVERYONE),
        (_event(4), SALES_ONLY),
    ]))  # fmt: skip
    assert [r.status for r in results] == ["accepted"] * 4
    assert sorted(len(g) for g in gated.groups) == [1, 1, 2]  # per key: everything-key's
    # first, then the sales key's two together (held back by nothing but their own first)
    by_id = {codec.decode(r).event_id: codec.decode(r).event.recorded_by
             for r in log.all_records(TOPIC)}  # fmt: skip
    assert [by_id[r.event_id] for r in results] == [
        "everything-key", "sales-key", "everything-key", "sales-key"]  # fmt: skip


def test_a_log_outage_fails_the_requests_that_needed_the_log_only() -> None:
    log, service = _service()
    gated = Gated(service)
    coalescer = Coalescer(gated, run_in_threadpool, max_items=500, max_bytes=1 << 20)
    assert service.submit([_event(7)], EVERYONE)[0].status == "accepted"
    log.fail_appends = True
    invalid = {**_event(8), "occurred_at": "어제"}
    results = asyncio.run(_post_all(coalescer, gated, [
        (_event(1), EVERYONE), (_event(2), EVERYONE), (_event(7), EVERYONE),
        (invalid, EVERYONE), (_event(3), EVERYONE),
    ]))  # fmt: skip
    assert isinstance(results[0], LogUnavailable)  # alone in its group
    assert isinstance(results[1], LogUnavailable) and isinstance(results[4], LogUnavailable)
    assert results[2].status == "duplicate"  # the receipts answered it: no log needed
    assert results[3].status == "rejected"
    assert [e["path"] for e in results[3].errors] == ["occurred_at"]
    log.fail_appends = False  # the clients retry with the same event ids: all appended
    again = asyncio.run(coalescer.submit(_event(2), EVERYONE, 100))
    assert again.status == "accepted"


def test_a_request_that_sets_off_a_bug_fails_alone() -> None:
    _, service = _service()
    gated = Gated(service)
    coalescer = Coalescer(gated, run_in_threadpool, max_items=500, max_bytes=1 << 20)
    results = asyncio.run(_post_all(coalescer, gated, [
        (_event(1), EVERYONE), (_event(2), EVERYONE), ({**_event(3), "source": "boom"}, EVERYONE),
        (_event(4), EVERYONE),
    ]))  # fmt: skip
    assert [type(r).__name__ for r in results] == [
        "ItemResult", "ItemResult", "RuntimeError", "ItemResult"]  # fmt: skip
    assert [len(g) for g in gated.groups] == [1, 3, 1, 1, 1]  # the group failed: each alone


def test_a_key_does_not_wait_for_another_keys_submit() -> None:
    _, service = _service()
    gated = Gated(service)
    coalescer = Coalescer(gated, run_in_threadpool, max_items=500, max_bytes=1 << 20)

    async def scenario() -> tuple[ItemResult, bool]:
        held = asyncio.ensure_future(coalescer.submit(_event(1), EVERYONE, 100))
        while not gated.groups:
            await asyncio.sleep(0.001)
        other = await asyncio.wait_for(coalescer.submit(_event(2), SALES_ONLY, 100), 5)
        still_held = not held.done()
        gated.gate.set()
        await held
        return other, still_held

    other, still_held = asyncio.run(scenario())
    assert other.status == "accepted" and still_held


@pytest.mark.parametrize(("max_items", "max_bytes", "sizes"),
                         [(3, 1 << 20, [1, 3, 3, 2]), (500, 250, [1, 2, 2, 2, 2]),
                          (500, 50, [1] * 9)])  # fmt: skip
def test_a_group_holds_at_most_max_items_events_and_about_max_bytes(
    max_items: int, max_bytes: int, sizes: list[int]
) -> None:
    _, service = _service()
    gated = Gated(service)
    coalescer = Coalescer(gated, run_in_threadpool, max_items=max_items, max_bytes=max_bytes)
    results = asyncio.run(_post_all(coalescer, gated, [(_event(n), EVERYONE)
                                                       for n in range(9)]))  # fmt: skip
    assert [r.status for r in results] == ["accepted"] * 9
    assert [len(g) for g in gated.groups] == sizes  # a body over max_bytes still goes, alone


def test_during_an_outage_a_repeat_keeps_the_answer_its_first_copy_had_without_the_log() -> None:
    """Within one group, a second request with an id the receipts already answered gets the
    same 200 (or 409 for another body) as the first, not the 503 of the events the log was
    needed for."""
    log, service = _service()
    assert service.submit([_event(7)], EVERYONE)[0].status == "accepted"
    log.fail_appends = True
    other = _event(7)
    other["payload"] = {"subject": "다른 내용"}
    answers = service.submit_each([_event(1), _event(7), _event(7), other, _event(1)], EVERYONE)
    assert isinstance(answers[0], LogUnavailable) and isinstance(answers[4], LogUnavailable)
    assert [getattr(a, "status", None) for a in answers[1:4]] == [
        "duplicate", "duplicate", "conflict"]  # fmt: skip
