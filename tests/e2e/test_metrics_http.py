"""``GET /metrics`` through real HTTP: ingest outcomes, request latency by route template,
projection lag against known end offsets, applied and parked counts, multiprocess mode."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.bootstrap import Services, as_of_now, build, build_app
from services.core.deadletters import REASONS
from services.core.metrics.definitions import (
    HTTP_REQUEST_DURATION,
    INGEST_EVENTS,
    PROJECTION_EVENTS,
    PROJECTION_RECORDS_PARKED,
)
from services.core.ports import OutgoingRecord
from services.core.readmodels import state_history
from services.core.rebuilds import store
from services.core.settings import Settings
from tests.conftest import AUTH, LiveServer
from tests.samples import make_event
from tests.scrape import Scrape, scrape

ROOT = Path(__file__).resolve().parents[2]
PROJECTIONS = (
    "AccountTimeline",
    "AccountDirectory",
    "LeadershipLog",
    "OneVoiceView",
    "ReportFacts",
)
DURATION = "onevoice_http_request_duration_seconds_count"
once = pytest.mark.parametrize("backend", ["embedded"])


@pytest.fixture
def idle(settings: Settings) -> Iterator[Services]:
    """Services without a projector thread: the test applies the log itself (``catch_up``),
    so lag and applied counts are known exactly. Counts of earlier tests are cleared."""
    for metric in (INGEST_EVENTS, HTTP_REQUEST_DURATION, PROJECTION_EVENTS,
                   PROJECTION_RECORDS_PARKED):  # fmt: skip
        metric.clear()
    built = build(settings.model_copy(update={"run_projector": False}))
    yield built
    built.close()


@pytest.fixture
def http(idle: Services) -> Iterator[httpx.Client]:
    with (
        LiveServer(build_app(idle)) as base,
        httpx.Client(base_url=base, timeout=30, headers=AUTH) as client,
    ):
        yield client


def idle_ends(services: Services) -> list[int]:
    """The past period ends the refresher keeps states and sums at, by the app's clock."""
    settings = services.container.settings
    as_of = as_of_now(settings, services.container.clock)
    ends = state_history.ends(as_of, settings.kpi_history_weeks, settings.kpi_history_months)
    return [e for e in ends if e < as_of.now_us]


def ends_of(*answers: dict[str, Any]) -> dict[int, int]:
    """The log's end offsets after these accepted answers (a fresh topic, nothing else on it)."""
    ends: dict[int, int] = {}
    for answer in answers:
        position = answer["position"]
        ends[position["partition"]] = max(ends.get(position["partition"], 0),
                                          position["offset"] + 1)  # fmt: skip
    return ends


def test_ingest_outcomes_latency_and_lag(idle: Services, http: httpx.Client) -> None:
    first = make_event(account_id="m-1")
    answers = [http.post("/v1/events", json=first), http.post("/v1/events", json=first),
               http.post("/v1/events", json=make_event(account_id="m-2")),
               http.post("/v1/events", json={**first, "summary": "another body"})]  # fmt: skip
    assert [a.status_code for a in answers] == [202, 200, 202, 409]
    bad_payload = make_event("support.ticket_opened", payload={})
    batch = http.post("/v1/events/batch", json={"events": [
        make_event("leadership.meeting_held", account_id="m-3"), bad_payload,
        make_event(type="no.such_type"), "not an object",
    ]})  # fmt: skip
    assert batch.json()["accepted"] == 1 and batch.json()["rejected"] == 3
    assert http.get("/v1/accounts/m-1/timeline").status_code == 404  # not projected yet
    assert http.get("/v1/accounts/m-2%2Fx/timeline").status_code == 404
    assert http.get("/no/such/path").status_code == 404

    seen = scrape(http)
    assert seen.labelled("onevoice_ingest_events_total") == {
        (("status", "accepted"), ("type", "sales.meeting_held")): 2.0,
        (("status", "duplicate"), ("type", "sales.meeting_held")): 1.0,
        (("status", "conflict"), ("type", "sales.meeting_held")): 1.0,
        (("status", "accepted"), ("type", "leadership.meeting_held")): 1.0,
        (("status", "rejected"), ("type", "support.ticket_opened")): 1.0,
        (("status", "rejected"), ("type", "invalid")): 2.0,
    }
    events, timeline = "/v1/events", "/v1/accounts/{account_id}/timeline"
    assert seen.value(DURATION, route=events, method="POST", status="2xx") == 3
    assert seen.value(DURATION, route=events, method="POST", status="4xx") == 1
    assert seen.value(DURATION, route="/v1/events/batch", method="POST", status="2xx") == 1
    assert seen.value(DURATION, route=timeline, method="GET", status="4xx") == 2
    assert seen.value(DURATION, route="unmatched", method="GET", status="4xx") == 1
    assert not [s for s in seen.samples if "m-1" in s.labels.get("route", "")]

    accepted = [answers[0].json(), answers[2].json(), batch.json()["items"][0]]
    ends = ends_of(*accepted)
    for name in PROJECTIONS:
        for partition in range(4):
            lag = seen.value("onevoice_projection_lag_records", projection=name,
                             partition=str(partition))  # fmt: skip
            assert lag == ends.get(partition, 0), (name, partition)
            assert seen.value("onevoice_dead_letters", projection=name, reason="failed") == 0
    assert seen.value("onevoice_log_up") == 1 and seen.value("onevoice_database_up") == 1
    batches = seen.value("onevoice_projection_batch_duration_seconds_count")
    assert batches is not None

    idle.runner.catch_up(60)
    after = scrape(http)
    assert set(after.labelled("onevoice_projection_lag_records").values()) == {0.0}
    assert after.labelled("onevoice_projection_events_total") == {
        (("projection", name),): 3.0 for name in PROJECTIONS
    }
    assert after.value("onevoice_projection_batch_duration_seconds_count") - batches >= 1
    assert after.labelled("onevoice_projection_records_parked_total") == {}
    idle.health_refresher.refresh_all()  # the health cache, the state history, its sums
    refreshed = scrape(http)
    assert refreshed.value("onevoice_state_history_states", state="missing") == 0
    assert refreshed.value("onevoice_kpi_state_sums", state="missing") == 0
    assert refreshed.value("onevoice_kpi_state_sums", state="kept") == 3 * len(idle_ends(idle))
    # and the KPI figures of the current week and month and the kept periods, each grouping
    periods = idle.health_refresher.periods(as_of_now(idle.container.settings,
                                                      idle.container.clock))  # fmt: skip
    assert refreshed.value("onevoice_kpi_period_figures", state="missing") == 0
    assert refreshed.value("onevoice_kpi_period_figures", state="kept") == 3 * len(periods)


@once
def test_parked_records_are_counted_and_logged_with_their_position(
    idle: Services, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    topic = idle.container.settings.topic
    [(partition, offset)] = idle.container.log.append(topic, [OutgoingRecord(b"k", b"{not json")])
    with caplog.at_level(logging.ERROR, logger="services.projections.runner"):
        idle.runner.catch_up(60)
    seen = scrape(http)
    for name in PROJECTIONS:
        assert seen.value("onevoice_projection_records_parked_total", projection=name,
                          reason="undecodable") == 1  # fmt: skip
        assert {r: seen.value("onevoice_dead_letters", projection=name, reason=r)
                for r in REASONS} == {r: float(r == "undecodable") for r in REASONS}  # fmt: skip
    assert set(seen.labelled("onevoice_projection_events_total").values()) == {0.0}
    parked = [r for r in caplog.records if r.getMessage().startswith("parked ")]
    assert sorted(r.__dict__["projection"] for r in parked) == sorted(PROJECTIONS)
    assert {(r.__dict__["partition"], r.__dict__["offset"]) for r in parked} == {
        (partition, offset)
    }


@once
def test_every_answer_carries_a_request_id(http: httpx.Client) -> None:
    echoed = http.get("/healthz", headers={"X-Request-Id": "client-42:a.b_c"})
    assert echoed.headers["x-request-id"] == "client-42:a.b_c"
    refused = http.post(
        "/v1/events",
        content=b"{",
        headers={"X-Request-Id": "x" * 129, "Content-Type": "application/json"},
    )
    assert refused.status_code == 400
    assert len(refused.headers["x-request-id"]) == 32
    assert refused.headers["x-request-id"] != "x" * 129
    nul = http.get("/v1/accounts/a%00b/timeline")
    assert nul.status_code == 422 and len(nul.headers["x-request-id"]) == 32
    assert http.get("/metrics").headers["x-request-id"] != nul.headers["x-request-id"]


@pytest.mark.slow
def test_multiprocess_mode_adds_up_every_worker(tmp_path: Path) -> None:
    """Two worker processes count; a third (any worker answering a scrape) sees the sum."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    count = (
        "from services.core.metrics.definitions import INGEST_EVENTS as C;"
        " C.labels('accepted', 'sales.meeting_held').inc(int(__import__('sys').argv[1]))"
    )
    for times in ("2", "3"):
        subprocess.run([sys.executable, "-c", count, times], cwd=ROOT, env=env, check=True)
    show = ("import sys; from services.core.metrics.exposition import render;"
            " sys.stdout.write(render(None, [])[0].decode())")  # fmt: skip
    text = subprocess.run([sys.executable, "-c", show], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True).stdout  # fmt: skip
    seen = Scrape(text)
    assert seen.value("onevoice_ingest_events_total", status="accepted",
                      type="sales.meeting_held") == 5  # fmt: skip
    assert len(list(tmp_path.glob("counter_*.db"))) == 2


@once
def test_rebuild_progress_and_live_generations(idle: Services, http: httpx.Client) -> None:
    answers = [http.post("/v1/events", json=make_event(account_id=f"m-{i}")).json()
               for i in range(4)]  # fmt: skip
    assert all(a["status"] == "accepted" for a in answers)
    idle.runner.catch_up(30)
    before = scrape(http)
    assert before.value("onevoice_projection_generation", projection="OneVoiceView") == 1
    assert before.value("onevoice_rebuilds", state="switched") == 0
    assert before.labelled("onevoice_rebuild_events_applied") == {}
    rebuild = idle.rebuilder.start(["OneVoiceView"])
    stop = threading.Event()
    stop.set()  # the worker stops at once: the rebuild stays open, with its progress recorded
    idle.rebuilder.run(rebuild.id, stop=stop)
    with idle.container.db.transaction() as conn:
        store.renew(conn, store.get(conn, rebuild.id), store.worker_id(), 1, 1,  # type: ignore[arg-type]
                    {"events_applied": 3, "target": 4, "events_per_s": 1.5, "eta_s": 0.7,
                     "live_paused_s": 0})  # fmt: skip
    during = scrape(http)
    labels = {"rebuild": rebuild.id, "state": "running"}
    assert during.value("onevoice_rebuild_events_applied", **labels) == 3
    assert during.value("onevoice_rebuild_target_events", **labels) == 4
    assert during.value("onevoice_rebuild_eta_seconds", **labels) == 0.7
    assert during.value("onevoice_rebuilds", state="running") == 1
    done = idle.rebuilder.run(rebuild.id)
    assert done.state == "switched"
    after = scrape(http)
    assert after.value("onevoice_projection_generation", projection="OneVoiceView") == 2
    assert after.value("onevoice_rebuilds", state="switched") == 1
    assert after.labelled("onevoice_rebuild_events_applied") == {}
