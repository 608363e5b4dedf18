"""The broker killed with SIGKILL and restarted on the same data while clients keep posting:
each client retries the same body (same event id) on 503 and on timeouts until it is accepted.
Nothing the service accepted is lost from the log, nothing it did not accept is in it, and the
timelines list every accepted id exactly once, although retries may have left copies of an id
in the log.

The broker is this test's own (``deploy/local/kafka-up.sh`` in a private workdir): the session
broker serves every other test. The service is the single-process app (ingest + projector
thread + queries) on a real uvicorn server.
"""

from __future__ import annotations

import gc
import threading
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.bootstrap import build
from services.core.adapters.kafka_log import KafkaLog
from tests import backends
from tests.conftest import AUTH, LiveServer, make_settings
from tests.faults.servers import Broker
from tests.faults.views import (
    assert_each_id_once_on_its_timelines,
    assert_same_views,
    at_log_end,
    dead_letters,
    first_copies,
    pure_fold,
    read_log,
    wait_until,
)
from tests.faults.workload import Workload

CLIENTS = 4
PER_CLIENT = 120


class Client(threading.Thread):
    """Posts its bodies one at a time, each until the service accepts it: the same body again
    after a 503 (waiting ``Retry-After``), a timeout or a lost connection."""

    def __init__(self, base_url: str, bodies: list[dict[str, Any]], deadline: float) -> None:
        super().__init__(daemon=True)
        self.base_url, self.bodies, self.deadline = base_url, bodies, deadline
        self.stop = threading.Event()  # set when the test ends early
        self.accepted: dict[str, str] = {}  # event_id -> "accepted" | "duplicate"
        self.retries: Counter[str] = Counter()
        self.failure: str | None = None

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=20, headers=AUTH) as http:
            for body in self.bodies:
                status = self._post_until_taken(http, body)
                if status is None:
                    return
                self.accepted[body["event_id"]] = status

    def _post_until_taken(self, http: httpx.Client, body: dict[str, Any]) -> str | None:
        while time.monotonic() < self.deadline and not self.stop.is_set():
            try:
                answer = http.post("/v1/events", json=body)
            except httpx.TimeoutException:
                self.retries["timeout"] += 1
                continue
            except httpx.TransportError:
                self.retries["connection"] += 1
                time.sleep(0.2)
                continue
            if answer.status_code == 503:
                self.retries["503"] += 1
                time.sleep(float(answer.headers["retry-after"]))
                continue
            taken = {202: "accepted", 200: "duplicate"}.get(answer.status_code)
            if taken is None or answer.json()["status"] != taken:
                self.failure = f"{body['event_id']}: {answer.status_code} {answer.text[:300]}"
                return None
            return taken
        self.failure = f"{body['event_id']} still not accepted when the test stopped posting"
        return None


def timeline_ids(http: httpx.Client, account_id: str) -> list[str]:
    """Every event id on the account's timeline, page after page, in the order listed."""
    ids: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        page = http.get(f"/v1/accounts/{account_id}/timeline", params=params)
        assert page.status_code == 200, page.text
        ids += [item["event_id"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return ids


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_broker_killed_while_clients_retry_loses_nothing_and_lists_each_id_once(
    own_broker: Broker,
    pg_url: str,
    tmp_path: Path,
    closing: ExitStack,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bootstrap = own_broker.bootstrap
    settings = make_settings(
        tmp_path / "data", log_backend="kafka", kafka_bootstrap=bootstrap,
        database_url=pg_url, topic=backends.unique("faults-broker"), partitions=6,
        projector_group=backends.unique("projector"), kafka_send_timeout_s=3,
    )  # fmt: skip
    bodies = Workload(seed=3).bodies(CLIENTS * PER_CLIENT)
    threads_before = set(threading.enumerate())
    reader = KafkaLog(bootstrap)
    closing.callback(reader.close)
    services = build(settings)
    with (
        LiveServer(services) as base_url,
        httpx.Client(base_url=base_url, timeout=30, headers=AUTH) as http,
    ):
        deadline = time.monotonic() + 150
        clients = [Client(base_url, bodies[i::CLIENTS], deadline) for i in range(CLIENTS)]
        for client in clients:
            client.start()
            closing.callback(client.stop.set)
        wait_until(lambda: sum(len(c.accepted) for c in clients) >= len(bodies) // 4, 60,
                   "the clients to get a quarter of the events accepted")  # fmt: skip
        own_broker.kill()
        wait_until(lambda: sum(sum(c.retries.values()) for c in clients) > 0, 30,
                   "a client to be turned away while the broker is dead")  # fmt: skip
        assert own_broker.up() == bootstrap, "the broker came back on another port"
        for client in clients:
            client.join(timeout=max(0.0, deadline - time.monotonic()) + 5)
            assert not client.is_alive(), "a client thread is still posting"
            assert client.failure is None, client.failure
        wait_until(lambda: at_log_end(services.container.db, reader, settings.topic), 90,
                   "the projector to reach the log's end after the broker came back")  # fmt: skip
        accounts = {a for b in bodies for a in [b["account_id"], *b["related_account_ids"]]}
        listed = {account: timeline_ids(http, account) for account in sorted(accounts)}
        db = services.container.db
        assert dead_letters(db) == []
        records = read_log(reader, settings.topic)
        assert_each_id_once_on_its_timelines(db, records)
        fold = pure_fold(reader, settings.topic, tmp_path)
        closing.callback(fold.dispose)
        assert_same_views(db, fold)

    accepted = {event_id for c in clients for event_id in c.accepted}
    assert len(accepted) == len(bodies)
    in_log = {r.event_id for r in records}
    assert in_log == accepted, (
        f"lost: {sorted(accepted - in_log)[:5]}, never accepted: {sorted(in_log - accepted)[:5]}"
    )
    repeated = {a: [i for i, n in Counter(ids).items() if n > 1] for a, ids in listed.items()}
    assert all(not ids for ids in repeated.values()), repeated
    first = first_copies(records)
    for event_id in accepted:
        event = first[event_id].event
        for account in [event.account_id, *event.related_account_ids]:
            assert event_id in listed[account], f"{event_id} is not on {account}'s timeline"
    assert sum(len(ids) for ids in listed.values()) == sum(
        1 + len(first[i].event.related_account_ids) for i in accepted
    )
    retries = sum((c.retries for c in clients), Counter())
    print(f"log records {len(records)} for {len(accepted)} ids; client retries {dict(retries)}")
    # pytest keeps this test's log records, and through their tracebacks the producers the
    # service dropped: let them go now, so their finalizers run (and fail) in this test rather
    # than in whichever test comes next.
    caplog.clear()
    gc.collect()
    assert_no_producer_left_running(threads_before)


def producer_threads(since: set[threading.Thread]) -> list[str]:
    return [t.name for t in threading.enumerate()
            if t not in since and t.name.endswith("producer-network-thread")]  # fmt: skip


def assert_no_producer_left_running(since: set[threading.Thread], timeout_s: float = 10) -> None:
    """Once the service is closed, every Kafka producer it created is closed too."""
    deadline = time.monotonic() + timeout_s
    while producer_threads(since) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not producer_threads(since), (
        f"{len(producer_threads(since))} Kafka producer(s) still running {timeout_s:g} s after"
        " the service closed (kafka-python 3.0's close() raises KafkaTimeoutError while batches"
        " are pending, before marking the producer closed: a producer replaced after a failed"
        " write kept running, and its finalizer raised in a later test)"
    )
