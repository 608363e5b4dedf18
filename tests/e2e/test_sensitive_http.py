"""Sensitive reads, on both backends: a story whose contacts, executive notes and complaint
carry canary words; a key with ``read`` finds none of them in any answer of any read endpoint
(JSON and CSV) and sees ``[restricted]`` in their place; a key with ``read_sensitive`` sees
them. Counts, ids and dates stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.bootstrap import Services
from tests.conftest import wait_projected
from tests.samples import make_event

CANARY = "CANARY"
ACCOUNT = "acct-7"
CONTACT = {"id": "c-77", "name": "CANARY 윤서연", "email": "canary@canary.example",
           "title": "CANARY 구매팀장"}  # fmt: skip
NO_ID = {"name": "CANARY 김민지", "email": "Canary2@Canary.example"}  # keyed by email


def _story(now: datetime) -> list[dict[str, Any]]:
    at = (now - timedelta(days=1)).isoformat()
    sales = make_event("sales.meeting_held", account_id=ACCOUNT, occurred_at=at,
                       contacts=[CONTACT], summary="갱신 논의")  # fmt: skip
    leadership = make_event("leadership.meeting_held", account_id=ACCOUNT, occurred_at=at,
                            contacts=[CONTACT], summary="CANARY CEO 만찬",
                            actor={"id": "emp-ceo", "name": "대표", "department": "leadership",
                                   "title": "CEO"})  # fmt: skip
    leadership["payload"] = {"subject": "CANARY dinner", "heard": ["CANARY 확장 계획"],
                             "concerns": ["CANARY 가격 우려"], "complaints": ["CANARY 장애"],
                             "learnings": ["CANARY 경쟁사"]}  # fmt: skip
    complaint = make_event("support.ticket_opened", account_id=ACCOUNT, occurred_at=at,
                           contacts=[CONTACT], summary="CANARY 청구 오류 불만")  # fmt: skip
    complaint["payload"] = {
        "ticket_id": "T-CAN",
        "subject": "CANARY 청구서 금액 오류",
        "category": "billing",
        "severity": "high",
        "complaint": True,
    }
    signal = make_event("marketing.event_attended", account_id=ACCOUNT, occurred_at=at,
                        contacts=[CONTACT, NO_ID])  # fmt: skip
    return [sales, leadership, complaint, signal]


def _paths(now: datetime) -> list[str]:
    since = (now - timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    reads = [
        f"/v1/accounts/{ACCOUNT}/timeline", f"/v1/accounts/{ACCOUNT}/view", "/v1/accounts",
        f"/v1/accounts?q={ACCOUNT}", "/v1/accounts?sort=health", "/v1/needs?status=all",
        "/v1/feed?employee=u-park", "/v1/feed?employee=emp-ceo", "/v1/employees",
        "/v1/kpi-targets",
    ]  # fmt: skip
    reports = ["/v1/reports/coverage", f"/v1/reports/leadership?from={since}",
               f"/v1/reports/voice?from={since}", f"/v1/reports/complaints?from={since}",
               f"/v1/reports/handoffs?from={since}", f"/v1/reports/kpi?from={since}"]  # fmt: skip
    both = [f"{p}{'&' if '?' in p else '?'}format=csv" for p in reports]
    return reads + reports + both


@pytest.fixture
def story(client: httpx.Client, services: Services) -> dict[str, Any]:
    now = datetime.now(UTC)
    events = _story(now)
    posted = client.post("/v1/events/batch", json={"events": events}).json()
    assert posted["accepted"] == len(events), posted
    wait_projected(services, posted)
    secrets = {}
    for name, grant in (("reader", {"read": True}), ("insider", {"read_sensitive": True})):
        made = client.post("/v1/admin/keys", json={"name": name, **grant}).json()
        secrets[name] = made["secret"]
        assert made["key"]["read"] is True
    return {"now": now, "events": events, "secrets": secrets}


def _get(client: httpx.Client, path: str, secret: str) -> httpx.Response:
    answer = client.get(path, headers={"Authorization": f"Bearer {secret}"})
    assert answer.status_code == 200, (path, answer.text[:300])
    return answer


def test_a_reader_never_sees_the_canaries(client: httpx.Client, story: dict[str, Any]) -> None:
    leaks = []
    restricted = set()
    for path in _paths(story["now"]):
        answer = _get(client, path, story["secrets"]["reader"])
        if CANARY in answer.text.upper():  # the texts, and the emails in any case
            leaks.append((path, answer.text[max(0, answer.text.find(CANARY) - 200) :][:400]))
        if answer.headers.get("x-onevoice-restricted") == "true" and "csv" not in path:
            assert "[restricted]" in answer.text, path  # (a CSV may hold counts only)
            restricted.add(path.split("?")[0])
    for path, text in leaks:
        print("LEAK", path, text)
    assert leaks == []
    assert {f"/v1/accounts/{ACCOUNT}/timeline", f"/v1/accounts/{ACCOUNT}/view",
            "/v1/reports/leadership", "/v1/reports/voice"} <= restricted  # fmt: skip
    # What stays: ids, dates, types, categories, counts.
    timeline = _get(client, f"/v1/accounts/{ACCOUNT}/timeline",
                    story["secrets"]["reader"]).json()  # fmt: skip
    assert len(timeline["items"]) == len(story["events"])
    by_type = {i["type"]: i for i in timeline["items"]}
    ticket = by_type["support.ticket_opened"]
    assert ticket["payload"]["subject"] == "[restricted]"
    assert (ticket["payload"]["category"], ticket["payload"]["ticket_id"]) == ("billing", "T-CAN")
    assert ticket["contacts"] == [{"id": "c-77", "name": "[restricted]",
                                   "email": "[restricted]", "title": "[restricted]"}]  # fmt: skip
    notes = by_type["leadership.meeting_held"]["payload"]
    assert notes["heard"] == ["[restricted]"] and notes["concerns"] == ["[restricted]"]
    assert by_type["sales.meeting_held"]["summary"] == "갱신 논의"  # not sensitive


def test_an_insider_sees_them(client: httpx.Client, story: dict[str, Any]) -> None:
    secret = story["secrets"]["insider"]
    timeline = _get(client, f"/v1/accounts/{ACCOUNT}/timeline", secret)
    assert "x-onevoice-restricted" not in timeline.headers
    for word in ("CANARY 윤서연", "canary@canary.example", "CANARY 확장 계획",
                 "CANARY 청구서 금액 오류"):  # fmt: skip
        assert word in timeline.text, word
    leadership = _get(client, f"/v1/reports/leadership?from="
                      f"{(story['now'] - timedelta(days=10)).strftime('%Y-%m-%dT%H:%M:%SZ')}",
                      secret)  # fmt: skip
    assert "CANARY 가격 우려" in leadership.text
