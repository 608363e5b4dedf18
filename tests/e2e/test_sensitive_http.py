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
    registered = make_event("account.registered", account_id=ACCOUNT,
                            occurred_at=(now - timedelta(days=30)).isoformat())  # fmt: skip
    registered["payload"] = {"name": "칠번 상사", "segment": "enterprise",
                             "owners": {"sales": "u-park", "support": "u-kim"}}  # fmt: skip
    # An older complaint, resolved with a cause and a prevention; the one above recurs after
    # that fix.
    before = (now - timedelta(days=20)).isoformat()
    first = make_event("support.ticket_opened", account_id=ACCOUNT, occurred_at=before,
                       contacts=[NO_ID], summary="CANARY first complaint")  # fmt: skip
    first["payload"] = {
        "ticket_id": "T-OLD",
        "subject": "CANARY 지난 청구 오류",
        "category": "billing",
        "severity": "high",
        "complaint": True,
    }
    resolved = make_event("support.ticket_resolved", account_id=ACCOUNT,
                          occurred_at=(now - timedelta(days=19)).isoformat(),
                          summary="CANARY resolved")  # fmt: skip
    resolved["payload"] = {
        "ticket_id": "T-OLD",
        "resolution": "CANARY 환불",
        "cause": {"category": "billing", "text": "CANARY 원인"},
        "prevention": {"action": "CANARY 재발 방지", "owner": "u-kim"},
    }
    return [registered, first, resolved, sales, leadership, complaint, signal]


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
    reports += ["/v1/reports/voice?kind=complaint", "/v1/reports/voice?kind=executive_concern",
                f"/v1/reports/complaints?from={since}&group_by=owner",
                f"/v1/reports/handoffs?from={since}&format=json",
                f"/v1/accounts/{ACCOUNT}/timeline?include_children=true",
                f"/v1/accounts/{ACCOUNT}/view?include_children=true",
                "/v1/feed?employee=u-kim"]  # fmt: skip
    both = [f"{p}{'&' if '?' in p else '?'}format=csv" for p in reports if "/reports/" in p
            and "format=" not in p]  # fmt: skip
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
    for event in story["events"]:  # each event alone, and a report asked for by Accept
        answer = _get(client, f"/v1/events/{event['event_id']}", story["secrets"]["reader"])
        if CANARY in answer.text.upper():
            leaks.append((f"/v1/events/{event['event_id']}", answer.text[:300]))
    answer = client.get(
        "/v1/reports/coverage",
        headers={"Authorization": f"Bearer {story['secrets']['reader']}", "Accept": "text/csv"},
    )
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["x-onevoice-restricted"] == "true"
    if CANARY in answer.text.upper():
        leaks.append(("/v1/reports/coverage (Accept: text/csv)", answer.text[:300]))
    assert leaks == []
    assert {f"/v1/accounts/{ACCOUNT}/timeline", f"/v1/accounts/{ACCOUNT}/view",
            "/v1/reports/leadership", "/v1/reports/voice", "/v1/reports/coverage",
            "/v1/feed", "/v1/accounts"} <= restricted  # fmt: skip
    # A search of the text would tell what it holds: refused.
    searched = client.get(
        f"/v1/accounts/{ACCOUNT}/timeline?q=CANARY",
        headers={"Authorization": f"Bearer {story['secrets']['reader']}"},
    )
    assert searched.status_code == 403 and "read-sensitive" in searched.text
    # The view still says a complaint is open, recurs after a fix, and which.
    view = _get(client, f"/v1/accounts/{ACCOUNT}/view", story["secrets"]["reader"]).json()
    [open_complaint] = view["support"]["open_complaints"]
    assert (open_complaint["ticket_id"], open_complaint["category"],
            open_complaint["subject"]) == ("T-CAN", "billing", "[restricted]")  # fmt: skip
    [again] = view["support"]["recurrences_after_fix"]
    assert again["ticket_id"] == "T-CAN" and again["subject"] == "[restricted]"
    assert view["support"]["open_tickets"]["count"] == 1
    # What stays: ids, dates, types, categories, counts.
    timeline = _get(client, f"/v1/accounts/{ACCOUNT}/timeline",
                    story["secrets"]["reader"]).json()  # fmt: skip
    assert len(timeline["items"]) == len(story["events"])
    by_type = {i["type"]: i for i in timeline["items"]}
    [ticket] = [i for i in timeline["items"] if i["payload"].get("ticket_id") == "T-CAN"
                and i["type"] == "support.ticket_opened"]  # fmt: skip
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
    searched = _get(client, f"/v1/accounts/{ACCOUNT}/timeline?q=CANARY", secret).json()
    assert len(searched["items"]) == 4  # the summaries that say it
