"""GET /v1/reports/leadership: the weekly question, answered from the LeadershipLog projection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from services.bootstrap import Services
from tests.conftest import wait_projected
from tests.samples import make_event

NOW = datetime.now(UTC).replace(microsecond=0)
CEO = {"id": "emp-choi", "name": "최민호", "department": "leadership", "title": "CEO"}
CFO = {"id": "emp-han", "name": "한지수", "department": "leadership", "title": "CFO"}


def ago(days: float) -> str:
    return (NOW - timedelta(days=days)).isoformat()


def report(client: httpx.Client, **params: Any) -> dict[str, Any]:
    answer = client.get("/v1/reports/leadership", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_the_weekly_leadership_report(client: httpx.Client, services: Services) -> None:
    events = [
        make_event("account.registered", account_id="hanbit", occurred_at=ago(300),
                   payload={"name": "한빛전자"}),
        make_event("leadership.meeting_held", account_id="hanbit", occurred_at=ago(3), actor=CEO,
                   summary="CEO 만찬", payload={"subject": "만찬", "heard": ["해외 확장"],
                   "concerns": ["가격 인상 우려"], "complaints": ["장애 대응 지연"]}),
        make_event("commitment.made", account_id="hanbit", occurred_at=ago(3), actor=CEO,
                   payload={"commitment_id": "CM-1", "text": "재발 방지책 공유"}),
        make_event("leadership.meeting_held", account_id="northwind", occurred_at=ago(2),
                   actor=CFO, payload={"subject": "golf", "concerns": ["budget cuts"]}),
        make_event("leadership.meeting_held", account_id="hanbit", occurred_at=ago(20),
                   actor=CEO, payload={"subject": "old dinner", "heard": ["not this week"]}),
        make_event("sales.meeting_held", account_id="hanbit", occurred_at=ago(1)),
    ]  # fmt: skip
    answer = client.post("/v1/events/batch", json={"events": events})
    assert answer.json()["accepted"] == len(events), answer.text
    wait_projected(services, answer.json())

    week = report(client)
    assert [e["executive"]["id"] for e in week["executives"]] == ["emp-choi", "emp-han"]
    ceo, cfo = week["executives"]
    assert ceo["executive"] == CEO
    assert ceo["customers"] == [
        {
            "account_id": "hanbit",
            "name": "한빛전자",
            "touches": 2,
            "last_at": events[2]["occurred_at"].replace("+00:00", "Z"),
        }
    ]
    assert [t["event_id"] for t in ceo["touches"]] == [events[1]["event_id"]]
    assert ceo["touches"][0]["subject"] == "만찬"
    assert ceo["heard"] == [
        {"text": "해외 확장", "account_id": "hanbit", "event_id": events[1]["event_id"]}
    ]
    assert [c["text"] for c in ceo["concerns"]] == ["가격 인상 우려"]
    assert [c["text"] for c in ceo["complaints"]] == ["장애 대응 지연"]
    assert [(c["commitment_id"], c["text"]) for c in ceo["commitments"]] == [
        ("CM-1", "재발 방지책 공유")
    ]
    assert cfo["customers"][0]["name"] is None  # northwind was never registered
    assert [c["text"] for c in cfo["concerns"]] == ["budget cuts"]

    # Both executives are on the roster (seen in events): listed in every window, with zeros
    # where they met nobody.
    older = report(client, **{"from": ago(30), "to": ago(10)})
    ceo_then, cfo_then = older["executives"]
    assert [h["text"] for h in ceo_then["heard"]] == ["not this week"]
    assert cfo_then["executive"]["id"] == "emp-han" and cfo_then["customers"] == []
    assert cfo_then["counts"] == dict.fromkeys(cfo_then["counts"], 0)
    quiet = report(client, **{"from": ago(1.5), "to": ago(0)})["executives"]
    assert [(e["executive"]["id"], e["counts"]["touches"]) for e in quiet] == [
        ("emp-choi", 0), ("emp-han", 0)]  # fmt: skip
    assert quiet[0]["previous"]["customers_met"] == 1  # [3.0, 1.5) days ago: the dinner
    assert week["executives"][0]["previous"]["customers_met"] == 0
    assert ceo["counts"] == {"customers_met": 1, "touches": 1, "commitments": 1, "heard": 1,
                             "concerns": 1, "complaints": 1, "learnings": 0}  # fmt: skip


def test_bad_windows_name_the_parameter(client: httpx.Client) -> None:
    for params, path in [({"from": ago(1), "to": ago(2)}, "query.from"),
                         ({"from": ago(400), "to": ago(0)}, "query.from"),
                         ({"from": "2026-11-01T00:00:00"}, "query.from")]:  # fmt: skip
        answer = client.get("/v1/reports/leadership", params=params)
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["fields"][0]["path"] == path


PARK = {"id": "emp-park", "name": "박영희", "department": "sales"}
KIM = {"id": "emp-kim", "name": "김지원", "department": "support"}


def test_the_feed_shows_what_others_said_to_my_customers(
    client: httpx.Client, services: Services
) -> None:
    events = [
        make_event("account.registered", account_id="hanbit", occurred_at=ago(100),
                   payload={"name": "한빛전자", "owners": {"sales": "emp-park"}}),
        make_event("sales.call_logged", account_id="northwind", occurred_at=ago(50), actor=PARK,
                   payload={}),  # touched, so northwind is one of mine
        make_event("leadership.meeting_held", account_id="hanbit", occurred_at=ago(3), actor=CEO,
                   payload={"subject": "CEO 만찬"}),
        make_event("support.ticket_opened", account_id="northwind", occurred_at=ago(2), actor=KIM,
                   payload={"ticket_id": "T-9", "subject": "login", "category": "auth",
                            "severity": "high"}),
        make_event("sales.call_logged", account_id="hanbit", occurred_at=ago(1), actor=PARK,
                   payload={}),  # my own: not in my feed
        make_event("support.csat_recorded", account_id="elsewhere", occurred_at=ago(1),
                   actor=KIM, payload={"score": 5}),  # not my account
        make_event("support.csat_recorded", account_id="hanbit", occurred_at=ago(30),
                   actor=KIM, payload={"score": 4}),  # older than the default week
    ]  # fmt: skip
    answer = client.post("/v1/events/batch", json={"events": events})
    assert answer.json()["accepted"] == len(events), answer.text
    wait_projected(services, answer.json())

    feed = client.get("/v1/feed", params={"employee": "emp-park"}).json()
    assert feed["accounts"] == ["hanbit", "northwind"]
    assert [i["event_id"] for i in feed["items"]] == [events[3]["event_id"], events[2]["event_id"]]
    month = client.get("/v1/feed", params={"employee": "emp-park", "since": ago(40)}).json()
    assert [i["event_id"] for i in month["items"]] == [
        events[3]["event_id"], events[2]["event_id"], events[6]["event_id"]]  # fmt: skip
    paged, cursor = [], None
    while True:
        params: dict[str, Any] = {"employee": "emp-park", "since": ago(40), "limit": 1}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/feed", params=params).json()
        paged += [i["event_id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert paged == [i["event_id"] for i in month["items"]]
    nobody = client.get("/v1/feed", params={"employee": "emp-nobody"}).json()
    assert (nobody["accounts"], nobody["items"]) == ([], [])
    assert client.get("/v1/feed").status_code == 422
    bad = client.get("/v1/feed", params={"employee": "emp-park", "cursor": "nope"})
    assert bad.json()["error"]["fields"][0]["path"] == "query.cursor"
