"""Zero-downtime rebuild over HTTP on real Kafka + PostgreSQL (and the embedded default):
reads keep answering, nothing visible disappears, and the switched views are a pure fold."""

from __future__ import annotations

import io
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.bootstrap import Services
from services.projections.replay import replay
from tests.conftest import wait_projected
from tests.samples import ORGANISATION_TYPES, SAMPLE_PAYLOADS, make_event

KNOWN = "acct-known"
TYPES = sorted(t for t in SAMPLE_PAYLOADS if t != "account.registered")


def _event(i: int, account: str | None = None) -> dict[str, Any]:
    at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=i)
    kind = TYPES[i % len(TYPES)]
    if kind in ORGANISATION_TYPES and account is None:  # the roster and KPI targets, rebuilt too
        return make_event(kind, occurred_at=at.isoformat())
    if kind in ORGANISATION_TYPES:
        kind = "sales.call_logged"
    return make_event(
        kind, account_id=account or f"acct-{i % 500}",
        related_account_ids=[f"group-{i % 13}"], occurred_at=at.isoformat(),
        summary=f"고객 접점 {i}",
    )  # fmt: skip


def digests(services: Services) -> dict[str, dict[str, str]]:
    with services.container.db.reading() as conn:
        return {p.name: p.digest(conn) for p in services.runner.projections}


class Reader(threading.Thread):
    """Reads the known account's timeline and view every 100 ms; records every failure and
    every event that was visible once and is not any more."""

    def __init__(self, http: httpx.Client) -> None:
        super().__init__(daemon=True)
        self.http, self.stop = http, threading.Event()
        self.reads, self.failures, self.lost = 0, [], []  # type: ignore[var-annotated]
        self.seen: set[str] = set()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            timeline = self.http.get(f"/v1/accounts/{KNOWN}/timeline", params={"limit": 500})
            view = self.http.get(f"/v1/accounts/{KNOWN}/view")
            self.reads += 1
            for answer in (timeline, view):
                if answer.status_code != 200:
                    self.failures.append((answer.status_code, answer.text[:200]))
            if timeline.status_code == 200:
                now = {item["event_id"] for item in timeline.json()["items"]}
                self.lost += sorted(self.seen - now)
                self.seen |= now


@pytest.mark.timeout(400)  # 8,000 events loaded, projected, rebuilt and replayed: ~45 s idle
@pytest.mark.parametrize("backend", ["kafka", "embedded"], indirect=True)
def test_rebuild_every_read_model_while_serving(
    services: Services, client: httpx.Client, backend: str
) -> None:
    # Enough for the rebuild to run for seconds while the reader and the writes go on (the
    # loop below posts and reads every ~50 ms until it switches).
    total = 8_000 if backend == "kafka" else 4_000
    bodies = [_event(i, KNOWN if i % 100 == 0 else None) for i in range(total)]
    for start in range(0, total, 500):
        results = services.ingest.submit(bodies[start : start + 500])
        assert {r.status for r in results} == {"accepted"}
    ends = services.container.log.end_offsets(services.container.settings.topic)
    assert services.runner.wait_for({p: o - 1 for p, o in ends.items() if o}, 300)
    reader = Reader(client)
    reader.start()
    started = client.post("/v1/admin/rebuilds", json={"projections": "all"})
    assert started.status_code == 202, started.text
    rebuild_id = started.json()["id"]
    assert started.headers["location"] == f"/v1/admin/rebuilds/{rebuild_id}"
    states, answers, i = [], [], total
    deadline = time.monotonic() + 600
    while True:
        posted = client.post("/v1/events", json=_event(i, KNOWN if i % 3 == 0 else None))
        assert posted.status_code == 202, posted.text
        answers.append(posted.json())
        i += 1
        state = client.get(f"/v1/admin/rebuilds/{rebuild_id}").json()
        states.append(state["state"])
        if state["state"] in ("switched", "failed", "diff", "cancelled"):
            break
        assert time.monotonic() < deadline, state
        time.sleep(0.05)
    wait_projected(services, *answers)
    time.sleep(0.5)  # a few reads after the switch
    reader.stop.set()
    reader.join()
    assert state["state"] == "switched", state
    assert state["verification"]["result"] == "equal", state["verification"]["summary"]
    assert "running" in states
    assert state["progress"]["events_applied"] >= total
    assert reader.reads >= 5 and reader.failures == [] and reader.lost == []
    status = client.get("/v1/admin/projections").json()
    assert {p["name"]: (p["generation"], p["state"]) for p in status["projections"]} == {
        name: (2, "live") for name in services.container.projections
    }
    services.stop_projector()
    after = digests(services)
    replay(services.runner, services.container.db, 300, io.StringIO())
    assert digests(services) == after  # the switched views are a pure fold of the log
