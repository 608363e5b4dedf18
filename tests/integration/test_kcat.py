"""A client no one here wrote: kcat (librdkafka) produces to and consumes from OneVoice's topic."""

from __future__ import annotations

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
from tests.conftest import LiveServer, make_settings, wait_projected
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
    with LiveServer(services) as base, httpx.Client(base_url=base, timeout=30) as http:
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
