"""A client no one here wrote: kcat (librdkafka) produces to and consumes from OneVoice's topic."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.bootstrap import Services, build
from services.core.settings import Settings
from tests import backends
from tests.conftest import AUTH, LiveServer, make_settings, wait_projected
from tests.samples import make_event


@pytest.fixture
def kcat() -> str:
    path = shutil.which("kcat")
    if path is None:
        backends.unavailable("the kcat tests need kcat: apt-get install -y kcat")
    assert path is not None
    return path


@pytest.fixture
def kafka_settings(kafka_bootstrap: str, pg_url: str, tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path / "data", log_backend="kafka", kafka_bootstrap=kafka_bootstrap,
        database_url=pg_url, topic=backends.unique("kcat"),
        projector_group=backends.unique("projector"),
    )  # fmt: skip


@pytest.fixture
def running(kafka_settings: Settings) -> Iterator[tuple[Services, httpx.Client]]:
    services = build(kafka_settings)
    with (
        LiveServer(services) as base,
        httpx.Client(base_url=base, timeout=30, headers=AUTH) as http,
    ):
        yield services, http


def test_an_event_kcat_produced_appears_on_the_timeline(
    kcat: str, kafka_settings: Settings, running: tuple[Services, httpx.Client]
) -> None:
    services, http = running
    body = make_event("support.ticket_opened", account_id="kcat-고객", summary="kcat이 보낸 불만")
    line = f"{body['account_id']}|{json.dumps(body, ensure_ascii=False)}\n"
    subprocess.run(
        [kcat, "-P", "-b", kafka_settings.kafka_bootstrap, "-t", kafka_settings.topic,
         "-K", "|", "-H", f"event_id={body['event_id']}", "-H", "type=support.ticket_opened"],
        input=line.encode(), check=True, timeout=60,
    )  # fmt: skip
    ends = services.container.log.end_offsets(kafka_settings.topic)
    ((partition, end),) = [(p, o) for p, o in ends.items() if o > 0]
    wait_projected(services, {"position": {"partition": partition, "offset": end - 1}})

    page = http.get(f"/v1/accounts/{body['account_id']}/timeline").json()
    (item,) = page["items"]
    assert item["event_id"] == body["event_id"]
    assert item["summary"] == "kcat이 보낸 불만"
    assert item["position"] == {"partition": partition, "offset": end - 1}
    assert item["recorded_at"].endswith("Z")  # taken from the record's timestamp


def test_kcat_reads_what_onevoice_produced(
    kcat: str, kafka_settings: Settings, running: tuple[Services, httpx.Client]
) -> None:
    _, http = running
    body = make_event("leadership.meeting_held", account_id="hanbit", summary="CEO 만찬")
    answer = http.post("/v1/events", json=body)
    assert answer.status_code == 202, answer.text
    position = answer.json()["position"]

    out = subprocess.run(
        [kcat, "-C", "-b", kafka_settings.kafka_bootstrap, "-t", kafka_settings.topic,
         "-o", "beginning", "-e", "-J", "-q"],
        capture_output=True, check=True, timeout=60,
    ).stdout.decode()  # fmt: skip
    (message,) = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert message["key"] == "hanbit"
    assert (message["partition"], message["offset"]) == (position["partition"], position["offset"])
    headers = dict(zip(message["headers"][::2], message["headers"][1::2], strict=True))
    assert headers == {"event_id": body["event_id"], "type": "leadership.meeting_held",
                       "schema_version": "1"}  # fmt: skip
    value = json.loads(message["payload"])
    assert value["event_id"] == body["event_id"]
    assert value["summary"] == "CEO 만찬"
    assert value["payload"] == body["payload"]


def test_a_tombstone_and_garbage_kcat_wrote_are_parked_and_the_next_event_flows(
    kcat: str, kafka_settings: Settings, running: tuple[Services, httpx.Client]
) -> None:
    services, http = running
    account = "kcat-묘비"
    # -Z: an empty value is sent as NULL (a tombstone); then bytes that are not UTF-8.
    lines = f"{account}|\n{account}|".encode() + b"\xff\xfe " + "쓰레기\n".encode()
    subprocess.run(
        [kcat, "-P", "-Z", "-b", kafka_settings.kafka_bootstrap, "-t", kafka_settings.topic,
         "-K", "|"],
        input=lines, check=True, timeout=60,
    )  # fmt: skip
    body = make_event("sales.call_logged", account_id=account, summary="묘비 다음의 통화")
    answer = http.post("/v1/events", json=body)
    assert answer.status_code == 202, answer.text
    wait_projected(services, answer.json())
    page = http.get(f"/v1/accounts/{account}/timeline").json()
    assert [i["event_id"] for i in page["items"]] == [body["event_id"]]

    listed = http.get("/v1/admin/dead-letters", params={"projection": "AccountTimeline"}).json()
    assert [(i["reason"], i["offset"]) for i in listed["items"]] == [
        ("undecodable", 0),
        ("undecodable", 1),
    ]
    assert listed["items"][0]["error"]["message"] == "the record has no value (a tombstone)"
    tombstone = http.get(f"/v1/admin/dead-letters/{listed['items'][0]['id']}").json()
    assert (tombstone["value"], tombstone["key"]) == (None, {"text": account})
    garbage = http.get(f"/v1/admin/dead-letters/{listed['items'][1]['id']}").json()
    assert base64.b64decode(garbage["value"]["base64"]).startswith(b"\xff\xfe ")
    assert http.get("/readyz").json()["projections"]["OneVoiceView"]["dead_letters"] == {
        "total": 2,
        "undecodable": 2,
    }
