"""Poison records on both backends: each is refused at ingest (4xx) or parked where an operator
sees it (dead letters, /readyz, the admin API, the CLI); nothing stalls — a valid event posted
afterwards is visible at once — and re-driving a record after a fix leaves every read model
equal to a fresh pure fold of the log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection

from services.bootstrap import Services, build, projections
from services.core import codec
from services.core.adapters.sql import Database
from services.core.codec import StoredEvent
from services.core.events import parse_event
from services.core.ports import OutgoingRecord
from services.core.settings import Settings
from services.projections.onevoice import OneVoiceView
from services.projections.runner import ProjectionRunner
from tests import backends
from tests.conftest import make_settings, wait_projected
from tests.samples import make_event

ROOT = Path(__file__).resolve().parents[2]


def post(client: httpx.Client, services: Services, body: dict[str, Any]) -> dict[str, Any]:
    answer = client.post("/v1/events", json=body)
    assert answer.status_code == 202, answer.text
    wait_projected(services, answer.json(), timeout_s=60)
    return answer.json()


def append_raw(services: Services, *values: bytes, key: bytes = b"poison") -> None:
    """Write records straight to the topic, as a foreign producer would, and wait until the
    projector has passed them."""
    log, topic = services.container.log, services.container.settings.topic
    positions = log.append(topic, [OutgoingRecord(key, v) for v in values])
    wait_projected(services, {"items": [{"position": {"partition": p, "offset": o}}
                                        for p, o in positions]}, timeout_s=60)  # fmt: skip


def dead_letters(client: httpx.Client, **params: Any) -> dict[str, Any]:
    answer = client.get("/v1/admin/dead-letters", params=params)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def assert_still_flowing(client: httpx.Client, services: Services, account: str) -> None:
    body = make_event("sales.meeting_held", account_id=account, summary="독 이후의 정상 이벤트")
    post(client, services, body)
    items = client.get(f"/v1/accounts/{account}/timeline").json()["items"]
    assert [i["event_id"] for i in items] == [body["event_id"]]


def test_a_case_fold_that_outgrows_its_source_is_stored(
    client: httpx.Client, services: Services
) -> None:
    # "ß" folds to "ss", "ΐ" to three code points: keys longer than any source column.
    for category in ("ß" * 256, "ΐ" * 256, "ﬃ" * 200 + "Straße"):
        body = make_event("support.ticket_opened", account_id="fold-고객",
                          payload={"ticket_id": f"T-{uuid.uuid4()}", "subject": "접속 불가",
                                   "category": category, "severity": "high",
                                   "complaint": True})  # fmt: skip
        post(client, services, body)
    # A contact in the clear, as events appended before ingest sealed contacts hold them (a
    # sealed contact is grouped by its key's subject, which does not fold).
    contact = {"name": "ΐ" * 256, "email": "ΐ" * 300 + "@example.com"}
    old = parse_event(make_event("sales.call_logged", account_id="fold-고객", contacts=[contact]))
    append_raw(services, codec.encode(old.model_copy(update={"recorded_at": old.occurred_at}))
               .value, key="fold-고객".encode())  # fmt: skip
    view = client.get("/v1/accounts/fold-고객/view").json()
    assert len(view["support"]["open_complaints"]) == 3
    keys = [c["contact_key"] for c in view["relationships"]["contacts"]]
    assert "email:" + "ΐ".casefold() * 300 + "@example.com" in keys
    assert dead_letters(client)["items"] == []
    assert_still_flowing(client, services, "fold-after")


def test_garbage_and_foreign_records_are_parked_and_the_rest_flows(
    client: httpx.Client, services: Services
) -> None:
    newer = make_event("sales.meeting_held", account_id="newer", schema_version=2)
    unknown_field = {**make_event("sales.meeting_held", account_id="newer"), "mood": "good"}
    unknown_type = make_event("sales.meeting_held", account_id="newer")
    unknown_type["type"] = "sales.dinner_held"
    deep: Any = "바닥"
    for _ in range(700):
        deep = [deep]
    too_deep = make_event("success.review_held", account_id="deep",
                          payload={"subject": "x", "risks": deep})  # fmt: skip
    raw = [
        b"\xff\xfe not utf-8",
        b"{not json",
        b'"a string"',
        json.dumps(newer).encode(),
        json.dumps(unknown_field).encode(),
        json.dumps(unknown_type).encode(),
        json.dumps(too_deep).encode(),
    ]
    append_raw(services, *raw)
    listed = dead_letters(client, projection="AccountTimeline")
    reasons = [item["reason"] for item in listed["items"]]
    assert reasons == ["undecodable", "undecodable", "invalid", "unsupported", "unsupported",
                       "unsupported", "invalid"]  # fmt: skip
    assert listed["items"][3]["event_id"] == newer["event_id"]
    assert listed["items"][5]["event_type"] == "sales.dinner_held"
    # Parked once per read model: every view lacks them.
    every = dead_letters(client)["counts"]
    assert {name: c["total"] for name, c in every.items()} == {
        "AccountTimeline": 7,
        "AccountDirectory": 7,
        "LeadershipLog": 7,
        "OneVoiceView": 7,
        "ReportFacts": 7,
    }
    assert every["OneVoiceView"] == {"total": 7, "undecodable": 2, "invalid": 2,
                                     "unsupported": 3}  # fmt: skip
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready"
    assert ready["projections"]["OneVoiceView"]["dead_letters"]["total"] == 7
    assert ready["projections"]["OneVoiceView"]["lag"] == 0

    first = listed["items"][0]
    shown = client.get(f"/v1/admin/dead-letters/{first['id']}").json()
    assert shown["value"] == {"base64": "//4gbm90IHV0Zi04"}
    assert shown["key"] == {"text": "poison"}
    assert shown["partition"] == first["partition"] and shown["attempts"] == 1
    assert client.get("/v1/admin/dead-letters/999999").status_code == 404

    # Nothing in this version can apply them: a re-drive keeps them parked, counting attempts.
    again = client.post("/v1/admin/dead-letters/redrive",
                        json={"all": True, "projection": "AccountTimeline"}).json()  # fmt: skip
    assert again.get("redriven") == 0, again
    assert again["still_failing"] == 7
    after = dead_letters(client, projection="AccountTimeline")["items"]
    assert [i["attempts"] for i in after] == [2] * 7
    assert [i["reason"] for i in after] == reasons
    assert_still_flowing(client, services, "garbage-after")


def test_admin_requests_are_checked(client: httpx.Client) -> None:
    bad = [
        ("get", "/v1/admin/dead-letters", {"params": {"projection": "Nope"}}, "query.projection"),
        ("get", "/v1/admin/dead-letters", {"params": {"reason": "bored"}}, "query.reason"),
        ("get", "/v1/admin/dead-letters", {"params": {"cursor": "zzz"}}, "query.cursor"),
        ("post", "/v1/admin/dead-letters/redrive", {"json": {}}, "body"),
        ("post", "/v1/admin/dead-letters/redrive", {"json": {"ids": [1], "all": True}}, "body"),
        ("post", "/v1/admin/dead-letters/redrive",
         {"json": {"all": True, "projection": "Nope"}}, "projection"),
    ]  # fmt: skip
    for method, path, kwargs, where in bad:
        answer = getattr(client, method)(path, **kwargs)
        assert answer.status_code == 422, (path, kwargs, answer.text)
        assert answer.json()["error"]["fields"][0]["path"] == where, answer.text


def test_dead_letters_page_with_a_cursor(client: httpx.Client, services: Services) -> None:
    append_raw(services, *[f"junk {i}".encode() for i in range(5)])
    seen: list[int] = []
    cursor = None
    while True:
        page = dead_letters(client, projection="LeadershipLog", limit=2,
                            **({"cursor": cursor} if cursor else {}))  # fmt: skip
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5 and seen == sorted(seen)


class FlakyView(OneVoiceView):
    """OneVoiceView with a bug: it cannot apply events whose summary says so."""

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        if any(e.event.summary == "trips the bug" for e in events):
            raise ValueError("bug: cannot handle this event")
        super().apply(conn, events)


def digests(db: Database) -> dict[str, dict[str, str]]:
    with db.reading() as conn:
        return {p.name: p.digest(conn) for p in projections()}


@pytest.fixture
def story(settings: Settings) -> Iterator[Services]:
    services = build(settings)
    yield services
    services.close()


def test_a_record_a_bug_could_not_apply_is_parked_then_redriven_to_a_pure_fold(
    story: Services, settings: Settings, tmp_path: Path
) -> None:
    log, db, topic = story.container.log, story.container.db, settings.topic
    acct = "bug-고객"
    bodies = [
        make_event("account.registered", account_id=acct),
        make_event("commitment.made", account_id=acct, summary="trips the bug",
                   payload={"commitment_id": "C-1", "text": "재발 방지 보고서 전달",
                            "due_at": "2026-12-01T09:00:00+09:00"}),
        make_event("support.ticket_opened", account_id=acct, summary="trips the bug"),
        make_event("commitment.fulfilled", account_id=acct, payload={"commitment_id": "C-1"}),
        make_event("sales.meeting_held", account_id=acct, contacts=[{"name": "김민지"}]),
    ]  # fmt: skip
    log.append(topic, [codec.encode(parse_event(b)) for b in bodies])
    buggy = [FlakyView() if p.name == "OneVoiceView" else p for p in projections()]
    ProjectionRunner(log, db, topic, buggy, group=backends.unique("buggy")).catch_up(60)

    with db.reading() as conn:
        from services.core.deadletters import store

        parked, _ = store.list_page(conn, store.Filters(), None, 10)
    assert [(p["projection"], p["reason"], p["event_id"]) for p in parked] == [
        ("OneVoiceView", "failed", bodies[1]["event_id"]),
        ("OneVoiceView", "failed", bodies[2]["event_id"]),
    ]
    assert parked[0]["error"] == {"class": "ValueError", "message": "bug: cannot handle this event"}

    # The fix is deployed: re-drive with the real projections.
    report = story.redriver.redrive()
    assert sorted(report.redriven) == sorted(p["id"] for p in parked) and not report.failed

    fresh = make_settings(tmp_path / "fresh")
    fresh_db = Database(fresh.resolved_database_url())
    from services.bootstrap import migrate

    migrate(fresh_db)
    ProjectionRunner(log, fresh_db, topic, projections(), group=backends.unique("fold")).catch_up(
        60
    )
    assert digests(db) == digests(fresh_db)
    fresh_db.dispose()


def test_the_cli_lists_shows_and_redrives(
    story: Services, settings: Settings, tmp_path: Path
) -> None:
    log, topic = story.container.log, settings.topic
    positions = log.append(topic, [OutgoingRecord(b"cli", "쓰레기 {".encode())])
    story.runner.catch_up(30)
    env = {**os.environ, "ONEVOICE_DATA_DIR": str(settings.data_dir),
           "ONEVOICE_DATABASE_URL": settings.database_url}  # fmt: skip

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "services", "dead-letters", *args],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
                              check=False)  # fmt: skip

    listed = cli("list", "--projection", "AccountTimeline")
    assert listed.returncode == 0, listed.stderr
    (line, counts) = listed.stdout.strip().splitlines()
    dead_id = int(line.split()[0])
    (partition, offset) = positions[0]
    assert f"{partition}@{offset}" in line and "undecodable" in line
    assert json.loads(counts.removeprefix("parked: "))["AccountTimeline"]["undecodable"] == 1
    shown = cli("show", str(dead_id))
    assert json.loads(shown.stdout)["value"] == {"text": "쓰레기 {"}
    redriven = cli("redrive", str(dead_id))
    assert redriven.returncode == 1  # still undecodable
    assert json.loads(redriven.stdout)["still_failing"] == 1
    assert cli("redrive").returncode == 2
