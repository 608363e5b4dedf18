"""HTTP load: concurrent batch ingest, and a steady open-loop load with end-to-end lag.

Lag is measured as post start -> first time the event is visible on a timeline read over HTTP.
Every lag event also names a probe account in ``related_account_ids``, so one timeline read
(``since`` = the oldest pending event's ``occurred_at``) shows which pending events became visible;
one poll covers all in-flight events instead of one GET per event.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from bench.base import AUTH

JSON = {"content-type": "application/json"}


@dataclass
class IngestResult:
    seconds: float
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    conflicts: int = 0
    retries: int = 0
    request_s: list[float] = field(default_factory=list)


def post_batches(base_url: str, bodies: Sequence[bytes], clients: int) -> IngestResult:
    """POST every pre-serialised batch with ``clients`` concurrent clients; 503s are retried."""
    result = IngestResult(0.0)
    lock = threading.Lock()
    next_index = itertools.count()

    def worker() -> None:
        with httpx.Client(base_url=base_url, timeout=120, headers=AUTH) as http:
            while (i := next(next_index)) < len(bodies):
                while True:
                    t0 = time.perf_counter()
                    answer = http.post("/v1/events/batch", content=bodies[i], headers=JSON)
                    took = time.perf_counter() - t0
                    if answer.status_code != 503:
                        break
                    with lock:
                        result.retries += 1
                    time.sleep(1)
                answer.raise_for_status()
                data = answer.json()
                with lock:
                    result.request_s.append(took)
                    result.accepted += data["accepted"]
                    result.duplicates += data["duplicates"]
                    result.rejected += data["rejected"]
                    result.conflicts += data["conflicts"]

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, name=f"client-{k}") for k in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - started
    return result


@dataclass
class LagResult:
    sent: int
    seconds: float
    lag_ms: list[float]
    ack_ms: list[float]
    skew_ms: list[float]
    after_ack_ms: list[float]  # ack received -> seen on the timeline (the projection's share)
    unseen: int
    errors: int
    polls: int
    poll_ms: list[float]


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def steady_load(
    base_url: str,
    bodies: Sequence[dict[str, Any]],
    rate: float,
    probe: str,
    *,
    settle_s: float = 30.0,
    senders: int = 64,
) -> LagResult:
    """Post ``bodies`` one per request at ``rate``/s (open loop); poll visibility meanwhile."""
    posted: dict[str, tuple[float, str]] = {}  # event_id -> (post start, occurred_at)
    pending: dict[str, tuple[float, str]] = {}
    lag_ms: list[float] = []
    ack_ms: list[float] = []
    errors = [0]
    lock = threading.Lock()
    done_sending = threading.Event()
    limits = httpx.Limits(max_connections=senders, max_keepalive_connections=senders)
    http = httpx.Client(base_url=base_url, timeout=60, limits=limits, headers=AUTH)

    skew_ms: list[float] = []
    acked: dict[str, float] = {}
    seen: dict[str, float] = {}

    def send(body: dict[str, Any], due: float) -> None:
        # Lag counts from ``due`` (when the open-loop schedule posts), so a late sender thread
        # cannot hide queueing; the skew between the two is reported.
        body = {**body, "occurred_at": _stamp(datetime.now(UTC)), "related_account_ids": [probe]}
        t0 = time.perf_counter()
        with lock:
            skew_ms.append((t0 - due) * 1000)
            posted[body["event_id"]] = pending[body["event_id"]] = (due, body["occurred_at"])
        answer = http.post("/v1/events", json=body)
        with lock:
            acked[body["event_id"]] = time.perf_counter()
            ack_ms.append((acked[body["event_id"]] - t0) * 1000)
            if answer.status_code != 202:
                errors[0] += 1
                pending.pop(body["event_id"], None)

    polls: list[float] = []

    def poll() -> None:
        reader = httpx.Client(base_url=base_url, timeout=30, headers=AUTH)
        deadline: float | None = None
        while True:
            with lock:
                oldest = min(pending.values(), key=lambda v: v[1], default=None)
            if oldest is None:
                if done_sending.is_set():
                    return
                time.sleep(0.002)
                continue
            if done_sending.is_set():
                deadline = deadline or time.perf_counter() + settle_s
                if time.perf_counter() > deadline:
                    return
            t0 = time.perf_counter()
            page = reader.get(
                f"/v1/accounts/{probe}/timeline",
                params={"since": oldest[1], "order": "asc", "limit": 500},
            )
            seen_at = time.perf_counter()
            polls.append((seen_at - t0) * 1000)
            if page.status_code == 200:
                with lock:
                    for item in page.json()["items"]:
                        started = pending.pop(item["event_id"], None)
                        if started is not None:
                            lag_ms.append((seen_at - started[0]) * 1000)
                            seen[item["event_id"]] = seen_at
            time.sleep(0.002)

    poller = threading.Thread(target=poll, name="lag-poller")
    poller.start()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=senders, thread_name_prefix="sender") as pool:
        for i, body in enumerate(bodies):
            due = started + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(send, body, due)
    seconds = time.perf_counter() - started
    done_sending.set()
    poller.join()
    http.close()
    return LagResult(
        len(posted),
        seconds,
        lag_ms,
        ack_ms,
        skew_ms,
        [(seen[e] - acked[e]) * 1000 for e in seen if e in acked],
        len(pending),
        errors[0],
        len(polls),
        polls,
    )


def wait_visible(base_url: str, event_id: str, timeout_s: float = 60) -> None:
    """Block until ``GET /v1/events/{id}`` answers 200."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=base_url, timeout=10, headers=AUTH) as http:
        while http.get(f"/v1/events/{event_id}").status_code != 200:
            if time.monotonic() > deadline:
                raise TimeoutError(f"event {event_id} not visible after {timeout_s}s")
            time.sleep(0.05)
