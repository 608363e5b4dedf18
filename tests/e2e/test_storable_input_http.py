"""Input the views can always store, over real HTTP on both backends.

Each hostile request below once answered 202 (and broke a read later) or 500; each must now be a
4xx naming the field, after which a valid event is still accepted and on its timeline.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from services.bootstrap import Services, build
from tests.conftest import AUTH, LiveServer, make_settings, wait_projected
from tests.e2e.test_ingest_http import accepted, assert_error_shape, paths_of, post
from tests.samples import make_event

FAR = "9999-12-31T23:59:59-14:00"  # year 10000 once in UTC
LAST = "9999-12-31T09:59:59-14:00"  # == 9999-12-31T23:59:59Z, the last storable second
FIRST = "0001-01-01T09:00:00+09:00"  # == 0001-01-01T00:00:00Z, the first


def hours_ago(hours: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours)).isoformat()


def timeline_ids(client: httpx.Client, account_id: str, **params: Any) -> list[str]:
    response = client.get(
        f"/v1/accounts/{quote(account_id, safe='')}/timeline",
        params={"order": "asc", "limit": 500, **params},
    )
    assert response.status_code == 200, response.text
    return [item["event_id"] for item in response.json()["items"]]


def still_serving(client: httpx.Client, services: Services, account_id: str) -> str:
    """Post a valid event on ``account_id``; it is accepted and on the timeline. Its id."""
    body = make_event(
        "support.ticket_opened", account_id=account_id, occurred_at=hours_ago(0.5),
        summary="정상 접수: 결제 오류 문의 — 거절된 요청 다음에도 받아야 함",
    )  # fmt: skip
    answer = accepted(client, body)
    wait_projected(services, answer)
    assert body["event_id"] in timeline_ids(client, account_id)
    return str(body["event_id"])


def field_kinds(error: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f["path"], f["kind"]) for f in error["fields"]]


# --- date-times -----------------------------------------------------------------------------


def test_datetimes_past_year_9999_in_utc_are_422_naming_the_path(
    client: httpx.Client, services: Services
) -> None:
    due = make_event("commitment.made", account_id="far-acct", summary="먼 미래 약속")
    due["payload"]["due_at"] = FAR
    offer = make_event("sales.proposal_sent", account_id="far-acct")
    offer["payload"]["valid_until"] = FAR
    error = assert_error_shape(post(client, due), 422, "invalid_event")
    assert field_kinds(error) == [("payload.due_at", "datetime_out_of_range")]
    assert "0001-9999" in error["fields"][0]["problem"]
    error = assert_error_shape(post(client, offer), 422, "invalid_event")
    assert field_kinds(error) == [("payload.valid_until", "datetime_out_of_range")]

    batch = client.post("/v1/events/batch", json={"events": [due, offer]})
    assert batch.status_code == 200, batch.text
    assert [(i["status"], [e["path"] for e in i["errors"]]) for i in batch.json()["items"]] == [
        ("rejected", ["payload.due_at"]),
        ("rejected", ["payload.valid_until"]),
    ]
    newest = still_serving(client, services, "far-acct")
    assert timeline_ids(client, "far-acct") == [newest]  # nothing refused was appended


def test_datetimes_at_the_edges_of_the_range_are_stored_and_every_view_renders_them(
    client: httpx.Client, services: Services
) -> None:
    """The first and last storable instants are accepted, stored in UTC and rendered by every
    read that once answered 500 for one second beyond them: the view's commitments, the
    conflicting offers behind GET /v1/accounts?sort=health, and the coverage report."""
    last_due = make_event("commitment.made", account_id="edge-acct", occurred_at=hours_ago(2),
                          payload={"commitment_id": "CM-LAST", "text": "영원한 약속",
                                   "due_at": LAST})  # fmt: skip
    first_due = make_event("commitment.made", account_id="edge-acct", occurred_at=hours_ago(2),
                           payload={"commitment_id": "CM-FIRST", "text": "아주 오래된 약속",
                                    "due_at": FIRST})  # fmt: skip
    proposal = make_event("sales.proposal_sent", account_id="edge-acct", occurred_at=hours_ago(1))
    proposal["payload"]["valid_until"] = LAST
    campaign = make_event(
        "marketing.campaign_sent", account_id="edge-acct", occurred_at=hours_ago(1)
    )  # same product, 25% against 10%: a conflict
    answer = client.post("/v1/events/batch", json={"events": [last_due, first_due, proposal,
                                                              campaign]})  # fmt: skip
    assert answer.json()["accepted"] == 4, answer.text
    wait_projected(services, answer.json())

    view = client.get("/v1/accounts/edge-acct/view")
    assert view.status_code == 200, view.text
    commitments = {c["commitment_id"]: c for c in view.json()["commitments"]["open"]}
    assert {k: (c["due_at"], c["overdue"]) for k, c in commitments.items()} == {
        "CM-LAST": ("9999-12-31T23:59:59Z", False),
        "CM-FIRST": ("0001-01-01T00:00:00Z", True),
    }
    (conflict,) = view.json()["messaging"]["conflicts"]
    assert [o["valid_until"] for o in conflict["offers"]] == ["9999-12-31T23:59:59Z", None]

    by_health = client.get("/v1/accounts", params={"sort": "health"})
    assert by_health.status_code == 200, by_health.text
    (item,) = by_health.json()["items"]
    # 100 - 15 (CM-FIRST overdue) - 10 (the conflict) - 10 (every touch by u-park)
    assert (item["account_id"], item["health"]["score"]) == ("edge-acct", 65)
    coverage = client.get("/v1/reports/coverage")
    assert coverage.status_code == 200, coverage.text
    overdue = coverage.json()["overdue_commitments"]["items"]
    assert [(i["commitment_id"], i["due_at"]) for i in overdue] == [
        ("CM-FIRST", "0001-01-01T00:00:00Z")
    ]
    stored = client.get(f"/v1/events/{proposal['event_id']}").json()
    assert stored["payload"]["valid_until"] == "9999-12-31T23:59:59Z"
    still_serving(client, services, "edge-acct")


# --- nesting depth --------------------------------------------------------------------------


def nested(levels: int) -> Any:
    value: Any = "메모"
    for _ in range(levels):
        value = [value]
    return value


def test_a_payload_nested_700_deep_is_422_naming_the_problem(
    client: httpx.Client, services: Services
) -> None:
    """Regression: the NUL check recursed, and 700 nested lists answered 500 (RecursionError)."""
    deep = make_event(account_id="deep-acct", payload={"subject": "분기 리뷰",
                                                       "notes": nested(700)})  # fmt: skip
    error = assert_error_shape(post(client, deep), 422, "invalid_event")
    too_deep = ".".join(["payload", "notes"] + ["0"] * 30)
    assert error["fields"] == [{
        "path": too_deep, "kind": "nested_too_deeply",
        "problem": "must not nest objects and lists more than 32 levels deep",
    }]  # fmt: skip

    fine = make_event(account_id="deep-acct", summary="같은 배치의 정상 이벤트")
    batch = client.post("/v1/events/batch", json={"events": [deep, fine]})
    assert batch.status_code == 200, batch.text
    items = batch.json()["items"]
    assert [i["status"] for i in items] == ["rejected", "accepted"]
    assert [e["kind"] for e in items[0]["errors"]] == ["nested_too_deeply"]
    wait_projected(services, batch.json())

    # Far deeper than the JSON parser goes is still the parser's 400, not a crash.
    raw = b'{"events": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = client.post("/v1/events/batch", content=raw,
                           headers={"content-type": "application/json"})  # fmt: skip
    assert "nested too deeply" in assert_error_shape(response, 400, "malformed_json")["message"]
    newest = still_serving(client, services, "deep-acct")
    assert timeline_ids(client, "deep-acct") == [fine["event_id"], newest]


def test_a_lone_surrogate_escape_is_422_naming_the_field(
    client: httpx.Client, services: Services
) -> None:
    """``"\\ud800"`` is valid JSON text but no Unicode text: no record, no UTF-8 column can hold
    it. Refused where it is, in a single POST and in a batch beside a valid event."""
    body = make_event(account_id="surrogate-acct", summary="PLACEHOLDER")
    raw = json.dumps(body, ensure_ascii=False).replace("PLACEHOLDER", "깨진 \\ud800 글자")
    response = client.post("/v1/events", content=raw.encode(),
                           headers={"content-type": "application/json"})  # fmt: skip
    error = assert_error_shape(response, 422, "invalid_event")
    assert paths_of(error) == ["summary"]
    fine = make_event(account_id="surrogate-acct", summary="같은 배치의 정상 이벤트")
    batch = json.dumps({"events": [body, fine]}, ensure_ascii=False).replace(
        "PLACEHOLDER", "\\udfff")  # fmt: skip
    answer = client.post("/v1/events/batch", content=batch.encode(),
                         headers={"content-type": "application/json"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    items = answer.json()["items"]
    assert [i["status"] for i in items] == ["rejected", "accepted"]
    assert [e["path"] for e in items[0]["errors"]] == ["summary"]
    wait_projected(services, answer.json())
    assert timeline_ids(client, "surrogate-acct") == [fine["event_id"]]


# --- NUL in the path and the query ----------------------------------------------------------

NUL_REQUESTS: list[tuple[str, list[str]]] = [
    ("/v1/accounts/abc%00def/timeline", ["path"]),
    ("/v1/accounts/abc%00def/view", ["path"]),
    ("/v1/events/%00", ["path"]),
    ("/v1/no-such-route%00", ["path"]),
    ("/v1/accounts?owner=u%00kim&segment=ent%00&q=ok", ["query.owner", "query.segment"]),
    ("/v1/accounts/nul-acct/timeline?q=%EA%B2%B0%00%EC%A0%9C", ["query.q"]),
    ("/v1/accounts/nul-acct/timeline?type=sales.meeting_held&type=%00", ["query.type"]),
    ("/v1/accounts/a%00b/timeline?since=%00", ["path", "query.since"]),
    ("/v1/feed?employee=u-park%00", ["query.employee"]),
    ("/v1/reports/leadership?to=%00", ["query.to"]),
    ("/v1/reports/coverage?x%00y=1", ["query.x\x00y"]),
    ("/healthz?probe=%00", ["query.probe"]),
]


def test_nul_in_the_path_or_a_query_parameter_is_422_on_every_route(
    client: httpx.Client, services: Services
) -> None:
    """Regression: on PostgreSQL, a NUL in a path or query parameter answered 500."""
    answers = {}
    for url, _ in NUL_REQUESTS:
        error = assert_error_shape(client.get(url), 422, "invalid_request")
        answers[url] = paths_of(error)
        assert all("NUL" in f["problem"] for f in error["fields"]), error
    assert answers == dict(NUL_REQUESTS)

    body = make_event(account_id="nul-acct", summary="쿼리에 NUL이 있는 요청")
    error = assert_error_shape(client.post("/v1/events?source=%00", json=body), 422)
    assert paths_of(error) == ["query.source"]
    newest = still_serving(client, services, "nul-acct")
    assert timeline_ids(client, "nul-acct") == [newest]  # the refused POST appended nothing
    assert timeline_ids(client, "nul-acct", q="결제") == [newest]


# --- date-time query parameters -------------------------------------------------------------

BAD_QUERIES: list[tuple[str, dict[str, str], str]] = [
    ("/v1/reports/leadership", {"to": "0001-01-01T00:00:00Z"}, "query.to"),  # to - 7 days
    ("/v1/reports/leadership", {"to": "0001-01-07T23:59:59Z"}, "query.to"),
    ("/v1/reports/leadership", {"to": FAR}, "query.to"),
    ("/v1/reports/leadership", {"from": FAR}, "query.from"),
    ("/v1/reports/leadership", {"from": "0001-01-01T00:00:00+01:00"}, "query.from"),
    ("/v1/feed", {"employee": "u-kim", "since": FAR}, "query.since"),
    ("/v1/feed", {"employee": "u-kim", "since": "0001-01-01T00:00:00+01:00"}, "query.since"),
]


def test_out_of_range_datetimes_in_the_reports_and_the_feed_are_422(
    client: httpx.Client, services: Services
) -> None:
    """Regression: `to=0001-01-01T00:00:00Z` (to - 7 days) and `since=9999-12-31T23:59:59-14:00`
    answered 500."""
    mine = make_event(account_id="range-acct", occurred_at=hours_ago(3),
                      actor={"id": "u-kim", "department": "sales"})  # fmt: skip
    theirs = make_event(account_id="range-acct", occurred_at=hours_ago(2), summary="동료의 미팅")
    answer = client.post("/v1/events/batch", json={"events": [mine, theirs]})
    wait_projected(services, answer.json())

    wrong = {}
    for url, params, path in BAD_QUERIES:
        error = assert_error_shape(client.get(url, params=params), 422)
        if paths_of(error) != [path]:
            wrong[(url, str(params))] = error
    assert wrong == {}

    # The edges of the range are fine: a report window may start in year 10 (it compares with
    # the window before it), and end at the end of the calendar.
    week_one = client.get("/v1/reports/leadership", params={"to": "0001-01-08T00:00:00Z"})
    assert paths_of(assert_error_shape(week_one, 422)) == ["query.to"]
    first = client.get(
        "/v1/reports/leadership",
        params={"from": "0010-01-01T00:00:00Z", "to": "0010-01-08T00:00:00Z"},
    )
    assert first.status_code == 200, first.text
    assert [e["counts"]["customers_met"] for e in first.json()["executives"]] == [
        0] * len(first.json()["executives"])  # fmt: skip
    last_week = client.get("/v1/reports/leadership", params={"to": LAST})
    assert last_week.json()["from"] == "9999-12-24T23:59:59Z", last_week.text
    feed = client.get("/v1/feed", params={"employee": "u-kim", "since": FIRST})
    assert feed.status_code == 200, feed.text
    assert (feed.json()["since"], [i["event_id"] for i in feed.json()["items"]]) == (
        "0001-01-01T00:00:00Z", [theirs["event_id"]])  # fmt: skip
    # The timeline's since/until only compare, so any instant is fine there (see
    # test_timeline_http.test_since_until_at_the_edges_of_the_calendar).
    everything = {"since": "0001-01-01T00:00:00+14:00", "until": FAR}
    assert timeline_ids(client, "range-acct", **everything) == [mine["event_id"],
                                                                theirs["event_id"]]  # fmt: skip
    still_serving(client, services, "range-acct")


# --- fan-out --------------------------------------------------------------------------------


def wide(account_id: str, contacts: int, related: int) -> dict[str, Any]:
    return make_event(
        "sales.meeting_held", account_id=account_id, summary="전사 설명회",
        contacts=[{"id": f"c-{i}", "name": f"참석자 {i}"} for i in range(contacts)],
        related_account_ids=[f"{account_id}-{i}" for i in range(related)],
    )  # fmt: skip


def test_fanout_over_max_fanout_is_422_at_contacts_and_the_limit_itself_is_accepted(
    client: httpx.Client, services: Services
) -> None:
    """Regression: one event with 100 contacts and 100 related accounts made 10,100 view rows."""
    error = assert_error_shape(post(client, wide("fan-acct", 100, 100)), 422, "invalid_event")
    assert field_kinds(error) == [("contacts", "fanout_too_large")]
    problem = error["fields"][0]["problem"]
    assert ("100 contacts on 101 accounts" in problem and "10100 view rows" in problem
            and "at most 1000" in problem), problem  # fmt: skip

    at_limit = wide("fan-acct", 10, 99)  # 10 x 100 = 1000
    answer = accepted(client, at_limit)
    wait_projected(services, answer)
    assert timeline_ids(client, "fan-acct-98") == [at_limit["event_id"]]
    view = client.get("/v1/accounts/fan-acct-98/view")
    assert view.json()["relationships"]["contacts_total"] == 10, view.text
    newest = still_serving(client, services, "fan-acct")
    assert timeline_ids(client, "fan-acct") == [at_limit["event_id"], newest]


def test_the_fanout_limit_is_the_onevoice_max_fanout_setting(tmp_path: Path) -> None:
    """Wiring: the setting reaches ingest (embedded backend only; the rule is the service's)."""
    services = build(make_settings(tmp_path / "data", max_fanout=4))
    try:
        with (
            LiveServer(services) as base_url,
            httpx.Client(base_url=base_url, headers=AUTH) as client,
        ):
            error = assert_error_shape(post(client, wide("small", 5, 0)), 422, "invalid_event")
            assert "at most 4 are allowed" in error["fields"][0]["problem"]
            assert accepted(client, wide("small", 2, 1))["status"] == "accepted"
    finally:
        services.close()
