"""Read-your-writes: an ingest answer's consistency token makes a later read wait for it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from services.bootstrap import Services, build
from services.core.consistency import parse_token, token_for
from services.core.settings import Settings
from tests.conftest import AUTH, LiveServer, wait_projected
from tests.samples import make_event

TOKEN = "X-Consistency-Token"


@pytest.fixture
def paused(settings: Settings) -> Iterator[tuple[Services, httpx.Client]]:
    """The whole app with its projector NOT started: the test decides when views catch up."""
    services = build(settings.model_copy(update={"run_projector": False,
                                                 "consistency_wait_s": 0.5}))  # fmt: skip
    with (
        LiveServer(services) as base,
        httpx.Client(base_url=base, timeout=30, headers=AUTH) as http,
    ):
        yield services, http


def test_a_read_with_the_token_waits_for_the_write(paused: tuple[Services, httpx.Client]) -> None:
    services, http = paused
    first = http.post("/v1/events", json=make_event(account_id="ryw"))
    assert first.status_code == 202
    services.start_projector()
    services.runner.wait_for({first.json()["position"]["partition"]:
                              first.json()["position"]["offset"]}, 60)  # fmt: skip
    services.stop_projector()

    body = make_event(account_id="ryw", summary="방금 쓴 이벤트")
    answer = http.post("/v1/events", json=body)
    token = answer.json()["consistency_token"]
    assert answer.headers[TOKEN] == token
    assert parse_token(token) == {answer.json()["position"]["partition"]:
                                  answer.json()["position"]["offset"]}  # fmt: skip

    stale = http.get("/v1/accounts/ryw/timeline", headers={TOKEN: token})
    assert stale.status_code == 200
    assert stale.headers["X-OneVoice-Stale"] == "true"
    assert [i["event_id"] for i in stale.json()["items"]] == [first.json()["event_id"]]
    no_token = http.get("/v1/accounts/ryw/timeline")
    assert "X-OneVoice-Stale" not in no_token.headers
    # the view answers through its own JSON response; the header must survive that
    stale_view = http.get("/v1/accounts/ryw/view", headers={TOKEN: token})
    assert stale_view.status_code == 200 and stale_view.headers["X-OneVoice-Stale"] == "true"
    assert stale_view.json()["last_touch"]["overall"]["event_id"] == first.json()["event_id"]

    services.start_projector()
    # The read waits ONEVOICE_CONSISTENCY_WAIT_S (0.5 s here) for the apply, not for the
    # projector to join its consumer group: on a loaded machine a Kafka join alone took
    # longer (CI-like run beside a bench: the read below came back stale).
    _wait_assigned(services)
    fresh = http.get("/v1/accounts/ryw/timeline", headers={TOKEN: token})
    assert "X-OneVoice-Stale" not in fresh.headers
    assert fresh.json()["items"][0]["summary"] == "방금 쓴 이벤트"
    event = http.get(f"/v1/events/{body['event_id']}", headers={TOKEN: token})
    assert event.status_code == 200 and "X-OneVoice-Stale" not in event.headers
    fresh_view = http.get("/v1/accounts/ryw/view", headers={TOKEN: token})
    assert "X-OneVoice-Stale" not in fresh_view.headers
    assert fresh_view.json()["last_touch"]["overall"]["event_id"] == body["event_id"]


def _wait_assigned(services: Services, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        consumer = services.runner.diagnostics()["consumer"]
        if isinstance(consumer, dict) and consumer["assignment"]:
            return
        time.sleep(0.02)
    raise AssertionError(f"the projector was not assigned: {services.runner.diagnostics()}")


def test_batch_token_covers_every_item_and_duplicates_get_one_too(
    paused: tuple[Services, httpx.Client],
) -> None:
    _, http = paused
    events = [make_event(account_id=f"acct-{i}") for i in range(20)]
    answer = http.post("/v1/events/batch", json={"events": events}).json()
    positions = [(i["position"]["partition"], i["position"]["offset"]) for i in answer["items"]]
    assert answer["consistency_token"] == token_for(positions)
    again = http.post("/v1/events", json=events[3]).json()
    assert again["status"] == "duplicate"
    assert parse_token(again["consistency_token"]) == dict([positions[3]])


def test_a_bad_token_is_a_422_naming_the_header(paused: tuple[Services, httpx.Client]) -> None:
    _, http = paused
    http.post("/v1/events", json=make_event(account_id="ryw"))
    for bad in ("nonsense", "v1.1-x", "v1.-3"):
        answer = http.get("/v1/accounts/ryw/timeline", headers={TOKEN: bad})
        assert answer.status_code == 422, bad
        assert answer.json()["error"]["fields"][0]["path"] == "header.X-Consistency-Token"


@pytest.fixture
def patient(settings: Settings) -> Iterator[tuple[Services, httpx.Client]]:
    """Like ``paused``, with a 20 s consistency wait: a read that waits is unmistakable."""
    services = build(settings.model_copy(update={"run_projector": False,
                                                 "consistency_wait_s": 20}))  # fmt: skip
    with (
        LiveServer(services) as base,
        httpx.Client(base_url=base, timeout=60, headers=AUTH) as http,
    ):
        yield services, http


def test_a_token_this_log_could_not_have_issued_is_a_422_at_once(
    patient: tuple[Services, httpx.Client], settings: Settings
) -> None:
    services, http = patient
    answer = http.post("/v1/events", json=make_event(account_id="ryw")).json()
    partition, offset = answer["position"]["partition"], answer["position"]["offset"]
    cases = {
        f"v1.{settings.partitions}-0": f"partition {settings.partitions} does not exist",
        f"v1.{partition}-{offset + 1}": f"offset {offset + 1} of partition {partition} is at or"
        f" past the log's end ({offset + 1})",
        f"v1.{partition}-99999999999": "not a token of this log",
    }
    for token, problem in cases.items():
        started = time.monotonic()
        refused = http.get("/v1/accounts/ryw/timeline", headers={TOKEN: token})
        assert refused.status_code == 422, token
        assert problem in refused.json()["error"]["fields"][0]["problem"], refused.text
        assert time.monotonic() - started < 10, f"{token} waited instead of answering at once"
    # the token the write returned is fine: the read waits until the projector applied it
    services.start_projector()
    fresh = http.get("/v1/accounts/ryw/timeline", headers={TOKEN: answer["consistency_token"]})
    assert fresh.status_code == 200 and "X-OneVoice-Stale" not in fresh.headers
    assert [i["event_id"] for i in fresh.json()["items"]] == [answer["event_id"]]


REPORTS = ["/v1/reports/leadership", "/v1/reports/coverage", "/v1/reports/voice",
           "/v1/reports/complaints", "/v1/reports/handoffs", "/v1/reports/kpi"]  # fmt: skip


def test_every_report_says_it_is_stale_as_json_and_as_csv(
    paused: tuple[Services, httpx.Client],
) -> None:
    """A report answers through its own response (JSON or CSV): the stale header survives."""
    services, http = paused
    posted = http.post("/v1/events", json=make_event(account_id="ryw-report")).json()
    token = posted["consistency_token"]
    for path in REPORTS:
        for fmt in ("json", "csv"):
            stale = http.get(path, params={"format": fmt}, headers={TOKEN: token})
            assert stale.status_code == 200, (path, fmt, stale.text)
            assert stale.headers.get("X-OneVoice-Stale") == "true", (path, fmt)
            assert stale.headers["content-type"].startswith(
                "text/csv" if fmt == "csv" else "application/json"
            )
    services.start_projector()
    wait_projected(services, posted)  # the reads' own wait is short (0.5 s): a loaded machine
    for path in REPORTS:
        fresh = http.get(path, headers={TOKEN: token, "accept": "text/csv"})
        assert fresh.status_code == 200 and "X-OneVoice-Stale" not in fresh.headers, path
