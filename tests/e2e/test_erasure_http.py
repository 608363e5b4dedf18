"""Erasure by crypto-shredding, on both backends: a story whose contacts carry canary names and
emails; erase them (``DELETE /v1/admin/contacts``); then search the log's files (the embedded
log, or the broker's segments), the database's (the SQLite files, or a ``pg_dump``) and every
answer of every read endpoint for the canary bytes — 0 hits — and for the destroyed keys —
there before, gone after. Rebuild every view and replay: still 0 hits."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.bootstrap import Services
from services.core import codec
from services.core.events import parse_event
from services.core.ports import OutgoingRecord
from services.core.settings import Settings
from services.projections.replay import replay
from tests import backends
from tests.conftest import wait_projected
from tests.samples import make_event

ACCOUNT = "acct-erase"
GONE = {"id": "c-erase", "name": "ZQX 지워질 사람", "email": "zqx.gone@erase.example",
        "title": "ZQX 구매이사"}  # fmt: skip
GONE_BY_MAIL = {"email": "ZQX.GONE@Erase.example"}  # the same person, met without the id
MAIL_ONLY = {"name": "ZQX 메일만", "email": "ZQX.Mail@Erase.example"}
KEEP = {"id": "c-keep", "name": "남을 사람", "email": "keep@erase.example", "title": "CFO"}
CANARIES = [c.lower() for c in (GONE["name"], GONE["email"], GONE["title"], MAIL_ONLY["name"],
                                MAIL_ONLY["email"])]  # fmt: skip
"""Searched case-insensitively. Each holds a character base64 cannot (Korean, '@'), so no
ciphertext can hold one by chance."""


def _found(data: bytes) -> list[str]:
    data = data.lower()
    return [c for c in CANARIES if c.encode() in data]


def _story(now: datetime) -> list[dict[str, Any]]:
    at = (now - timedelta(days=1)).isoformat()
    registered = make_event("account.registered", account_id=ACCOUNT,
                            occurred_at=(now - timedelta(days=30)).isoformat())  # fmt: skip
    registered["payload"] = {"name": "지움 상사", "segment": "enterprise",
                             "owners": {"sales": "u-park"}}  # fmt: skip
    meeting = make_event("sales.meeting_held", account_id=ACCOUNT, occurred_at=at,
                         contacts=[GONE, KEEP])  # fmt: skip
    signal = make_event("marketing.event_attended", account_id=ACCOUNT, occurred_at=at,
                        contacts=[GONE, MAIL_ONLY])  # fmt: skip
    complaint = make_event("support.ticket_opened", account_id=ACCOUNT, occurred_at=at,
                           contacts=[GONE])  # fmt: skip
    complaint["payload"] = {"ticket_id": "T-ER", "subject": "청구 오류", "category": "billing",
                            "severity": "high", "complaint": True}  # fmt: skip
    dinner = make_event(
        "leadership.meeting_held",
        account_id=ACCOUNT,
        occurred_at=at,
        contacts=[GONE],
        actor={"id": "emp-ceo", "name": "대표", "department": "leadership", "title": "CEO"},
    )
    call = make_event("sales.call_logged", account_id=ACCOUNT, occurred_at=at,
                      contacts=[GONE_BY_MAIL])  # fmt: skip
    return [registered, meeting, signal, complaint, dinner, call]


def _paths(now: datetime, events: list[dict[str, Any]]) -> list[str]:
    since = (now - timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    reads = [f"/v1/accounts/{ACCOUNT}/timeline", f"/v1/accounts/{ACCOUNT}/view",
             f"/v1/accounts?q={ACCOUNT}", "/v1/accounts?sort=health", "/v1/needs?status=all",
             "/v1/feed?employee=u-park", "/v1/feed?employee=emp-ceo", "/v1/employees",
             *(f"/v1/events/{e['event_id']}" for e in events)]  # fmt: skip
    reports = ["/v1/reports/coverage", f"/v1/reports/leadership?from={since}",
               f"/v1/reports/voice?from={since}", f"/v1/reports/complaints?from={since}",
               f"/v1/reports/handoffs?from={since}", f"/v1/reports/kpi?from={since}"]  # fmt: skip
    return reads + reports + [f"{p}{'&' if '?' in p else '?'}format=csv" for p in reports]


def _answers(client: httpx.Client, paths: list[str]) -> dict[str, str]:
    found = {}
    for path in paths:
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.text[:300])
        found[path] = answer.text
    return found


def _leaks(answers: dict[str, str]) -> list[str]:
    return [p for p, text in answers.items() if _found(text.encode())]


def _stored_files(settings: Settings, kafka_dir: Path | None) -> tuple[bytes, bytes]:
    """The bytes of the log's files and of the database's (embedded: the data folder's two
    SQLite databases with their WAL; Kafka: the broker's folder, and a ``pg_dump``)."""
    if settings.log_backend == "embedded":
        data = Path(settings.data_dir)
        log = b"".join(p.read_bytes() for p in sorted(data.glob("log.sqlite3*")))
        db = b"".join(p.read_bytes() for p in sorted(data.glob("onevoice.sqlite3*")))
        return log, db
    assert kafka_dir is not None
    log = b"".join(p.read_bytes() for p in sorted(kafka_dir.rglob("*")) if p.is_file())
    return log, backends.pg_dump(settings.database_url)


def _key_traces(db: bytes, keys: dict[str, bytes]) -> set[str]:
    """The subjects whose key (raw, or as pg_dump's hex) is in ``db``. (A subject's id stays in
    the views, in each sealed value: a pseudonym, nothing without its key.)"""
    return {s for s, k in keys.items() if k in db or k.hex().encode() in db}


@pytest.fixture
def kafka_dir(settings: Settings, request: pytest.FixtureRequest) -> Path | None:
    if settings.log_backend == "embedded":
        return None
    found: Path = request.getfixturevalue("kafka_data_dir")
    return found


@pytest.mark.timeout(300)  # reads the worker's whole broker folder: 66-93 s in make test
def test_an_erased_contact_is_gone_from_log_database_answers_and_rebuilds(
    client: httpx.Client, services: Services, settings: Settings, kafka_dir: Path | None
) -> None:
    now = datetime.now(UTC)
    events = _story(now)
    posted = client.post("/v1/events/batch", json={"events": events}).json()
    assert posted["accepted"] == len(events), posted
    wait_projected(services, posted)
    paths = _paths(now, events)
    before = _answers(client, paths)  # the test key reads sensitive data
    assert f"/v1/accounts/{ACCOUNT}/timeline" in _leaks(before)  # the canaries are readable
    vault = services.container.vault
    gone = vault.find(ACCOUNT, contact_id="c-erase")
    mail_only = vault.find(ACCOUNT, email="zqx.mail@erase.example")
    assert len(gone) == 2 and len(mail_only) == 1  # by id; by email alone, linked by the email
    keys = vault.keys([*gone, *mail_only])
    assert len(keys) == 3
    log, db = _stored_files(settings, kafka_dir)
    assert _found(log) == [] and _found(db) == []  # sealed before the append
    assert _key_traces(db, keys) == set(keys)  # the search finds keys while they exist

    erased = client.request("DELETE", "/v1/admin/contacts",
                            json={"account_id": ACCOUNT, "contact_id": "c-erase"})  # fmt: skip
    assert erased.status_code == 200, erased.text
    assert erased.json()["subjects"] == 2
    by_mail = client.request(
        "DELETE",
        "/v1/admin/contacts",
        json={"account_id": ACCOUNT, "email": "zqx.mail@ERASE.example"},
    )
    assert by_mail.status_code == 200 and by_mail.json()["subjects"] == 1, by_mail.text
    again = client.request("DELETE", "/v1/admin/contacts",
                           json={"account_id": ACCOUNT, "contact_id": "c-erase"})  # fmt: skip
    assert again.status_code == 404 and again.json()["error"]["fields"][0]["path"] == "contact_id"
    wait_projected(services, *erased.json()["events"], *by_mail.json()["events"])

    after = _answers(client, paths)
    assert _leaks(after) == []
    _assert_erased_in_place(client)
    log, db = _stored_files(settings, kafka_dir)
    assert _found(log) == [] and _found(db) == []
    assert _key_traces(db, keys) == set()  # no key left in the database's files
    assert vault.keys(keys) == {}

    _rebuild_all(client)
    assert _leaks(_answers(client, paths)) == []
    _assert_erased_in_place(client)
    services.stop_projector()
    replay(services.runner, services.container.db, 300, __import__("io").StringIO())
    assert _leaks(_answers(client, paths)) == []
    _assert_erased_in_place(client)


def _assert_erased_in_place(client: httpx.Client) -> None:
    """What stays: the events, ids, the kept contact; the erased ones read ``[erased]``."""
    items = client.get(f"/v1/accounts/{ACCOUNT}/timeline").json()["items"]
    [meeting] = [i for i in items if i["type"] == "sales.meeting_held"]
    erased = {"name": "[erased]", "email": "[erased]", "title": "[erased]"}
    assert meeting["contacts"] == [{"id": "c-erase", **erased}, KEEP]
    [signal] = [i for i in items if i["type"] == "marketing.event_attended"]
    assert signal["contacts"] == [{"id": "c-erase", **erased},
                                  {"name": "[erased]", "email": "[erased]"}]  # fmt: skip
    [call] = [i for i in items if i["type"] == "sales.call_logged"]
    assert call["contacts"] == [{"email": "[erased]"}]
    assert len(items) == 6  # the erasure is a record, not a touch: no timeline entry


def _rebuild_all(client: httpx.Client) -> None:
    started = client.post("/v1/admin/rebuilds", json={"projections": "all"})
    assert started.status_code == 202, started.text
    deadline = time.monotonic() + 300
    while True:
        state = client.get(f"/v1/admin/rebuilds/{started.json()['id']}").json()
        if state["state"] in ("switched", "failed", "diff", "cancelled"):
            break
        assert time.monotonic() < deadline, state
        time.sleep(0.1)
    assert state["state"] == "switched", state


def test_after_erasure_a_new_touch_starts_a_new_record(
    client: httpx.Client, services: Services
) -> None:
    first = make_event("sales.meeting_held", account_id=ACCOUNT, contacts=[GONE])
    wait_projected(services, client.post("/v1/events", json=first).json())
    done = client.request(
        "DELETE", "/v1/admin/contacts", json={"account_id": ACCOUNT, "email": GONE["email"].upper()}
    )
    assert done.status_code == 200, done.text
    later = make_event("sales.meeting_held", account_id=ACCOUNT, contacts=[GONE])
    wait_projected(services, client.post("/v1/events", json=later).json())
    shown = {i["event_id"]: i["contacts"] for i in
             client.get(f"/v1/accounts/{ACCOUNT}/timeline").json()["items"]}  # fmt: skip
    assert shown[first["event_id"]][0]["email"] == "[erased]"
    assert shown[later["event_id"]] == [GONE]  # given after the erasure: a new key


def test_erasure_requests_are_checked(client: httpx.Client) -> None:
    def erase(body: Any, **headers: str) -> httpx.Response:
        return client.request("DELETE", "/v1/admin/contacts", json=body, headers=headers)

    both = erase({"account_id": ACCOUNT, "email": "a@b.example", "contact_id": "c-1"})
    assert both.status_code == 422 and "one of them" in both.text
    assert erase({"account_id": ACCOUNT}).status_code == 422
    bad = erase({"account_id": ACCOUNT, "email": "not an email"})
    assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["path"] == "body.email"
    unknown = erase({"account_id": ACCOUNT, "email": "nobody@erase.example"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "contact_not_found"
    reader = client.post("/v1/admin/keys", json={"name": "er-reader", "read_sensitive": True})
    refused = erase({"account_id": ACCOUNT, "email": "a@b.example"},
                    Authorization=f"Bearer {reader.json()['secret']}")  # fmt: skip
    assert refused.status_code == 403 and "admin" in refused.text


def test_clients_cannot_post_sealed_contacts_or_erasure_records(client: httpx.Client) -> None:
    sealed = make_event(contacts=[{"id": "c-1", "sealed": "ov1." + "a" * 32 + ".n." + "A" * 60}])
    answer = client.post("/v1/events", json=sealed)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["fields"][0]["path"] == "contacts.0.sealed"
    record = make_event("sales.meeting_held")
    record.update(type="contact.erased", contacts=[],
                  payload={"subjects": ["a" * 32], "requested_by": "email"})  # fmt: skip
    answer = client.post("/v1/events", json=record)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["fields"][0]["path"] == "type"


def _record(subjects: list[str]) -> OutgoingRecord:
    event = parse_event(
        {
            "type": "contact.erased",
            "account_id": ACCOUNT,
            "source": "kcat",
            "occurred_at": datetime.now(UTC).isoformat(),
            "payload": {"subjects": subjects, "requested_by": "contact_id"},
        }
    )
    return codec.encode(
        event.model_copy(update={"event_id": uuid.uuid4(), "recorded_at": datetime.now(UTC)})
    )


def test_an_unfinished_erasure_is_settled_by_the_projector_and_a_forged_one_destroys_nothing(
    client: httpx.Client, services: Services
) -> None:
    posted = client.post("/v1/events", json=make_event(account_id=ACCOUNT, contacts=[GONE, KEEP]))
    wait_projected(services, posted.json())
    vault, log = services.container.vault, services.container.log
    topic = services.container.settings.topic
    gone, keep = vault.find(ACCOUNT, contact_id="c-erase"), vault.find(ACCOUNT, contact_id="c-keep")
    # Anyone who can write to the topic can write a record naming a subject (the views show
    # them as ref:…); without the database's note of it, it destroys nothing.
    forged = _record(keep)
    # An erasure whose request died after appending its record, before destroying the keys.
    unfinished = _record(gone)
    vault.pending([dict(unfinished.headers)["event_id"].decode()], gone)
    positions = log.append(topic, [forged, unfinished])
    wait_projected(services, *({"position": {"partition": p, "offset": o}} for p, o in positions))
    assert vault.keys(gone) == {} and set(vault.keys(keep)) == set(keep)
    [item] = client.get(f"/v1/accounts/{ACCOUNT}/timeline").json()["items"]
    assert item["contacts"] == [{"id": "c-erase", "name": "[erased]", "email": "[erased]",
                                 "title": "[erased]"}, KEEP]  # fmt: skip
