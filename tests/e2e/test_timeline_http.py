"""End-to-end queries over real HTTP: timelines, single events, catalog, OpenAPI and health."""

from __future__ import annotations

import base64
import json
import unicodedata
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from services.bootstrap import Services
from tests.conftest import wait_projected
from tests.samples import SAMPLE_PAYLOADS, make_event

BASE = datetime(2025, 6, 1, tzinfo=UTC)
KST = timezone(timedelta(hours=9))

Key = tuple[int, int, int]  # (seconds after BASE, partition, offset): the timeline's sort key

# Backend-independent HTTP behaviour (parsing, validation, limits, docs) runs once, on the
# embedded backend, instead of once per backend (overrides the conftest ``backend`` param).
once = pytest.mark.parametrize("backend", ["embedded"])


# --- helpers --------------------------------------------------------------------------------


def at(seconds: float, tz: timezone = UTC) -> str:
    """RFC 3339 time ``seconds`` after BASE, written in ``tz``."""
    return (BASE + timedelta(seconds=seconds)).astimezone(tz).isoformat()


def utc_z(seconds: float) -> str:
    """How the API writes that instant back: UTC with a ``Z``."""
    return (BASE + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def post_batch(client: httpx.Client, events: list[dict[str, Any]]) -> dict[str, Any]:
    """Post up to 500 events; all must be accepted."""
    response = client.post("/v1/events/batch", json={"events": events})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert answer["accepted"] == len(events), answer
    return answer


def ingest(
    client: httpx.Client, services: Services, events: list[dict[str, Any]]
) -> dict[str, Any]:
    """Post a batch and wait until it is projected."""
    answer = post_batch(client, events)
    wait_projected(services, answer)
    return answer


def get_page(client: httpx.Client, account_id: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/v1/accounts/{account_id}/timeline", params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    assert page["account_id"] == account_id
    return page


def ids(page: dict[str, Any]) -> list[str]:
    return [item["event_id"] for item in page["items"]]


def keys_of(events: list[dict[str, Any]], answer: dict[str, Any]) -> dict[str, Key]:
    """event_id -> sort key, from the posted events and their ingest answer."""
    out = {}
    for event, item in zip(events, answer["items"], strict=True):
        moment = datetime.fromisoformat(event["occurred_at"]) - BASE
        seconds = int(moment.total_seconds())
        out[item["event_id"]] = (seconds, item["position"]["partition"], item["position"]["offset"])
    return out


def error_fields(response: httpx.Response, status: int, code: str) -> list[str]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return [field["path"] for field in body["error"].get("fields", [])]


# --- ordering -------------------------------------------------------------------------------


def test_newest_first_by_default_and_oldest_first_with_order_asc(
    client: httpx.Client, services: Services
) -> None:
    minutes = [30, 10, 50, 20, 40]  # posted out of order
    events = [make_event(account_id="order-acct", occurred_at=at(m * 60)) for m in minutes]
    ingest(client, services, events)
    by_minute = {m: e["event_id"] for m, e in zip(minutes, events, strict=True)}

    page = get_page(client, "order-acct")
    assert ids(page) == [by_minute[m] for m in (50, 40, 30, 20, 10)]
    assert [item["occurred_at"] for item in page["items"]] == [
        utc_z(m * 60) for m in (50, 40, 30, 20, 10)
    ]
    assert page["next_cursor"] is None
    assert ids(get_page(client, "order-acct", order="desc")) == ids(page)
    assert ids(get_page(client, "order-acct", order="asc")) == [
        by_minute[m] for m in (10, 20, 30, 40, 50)
    ]


def test_late_event_lands_in_its_place(client: httpx.Client, services: Services) -> None:
    early = [make_event(account_id="late-acct", occurred_at=at(m * 60)) for m in (10, 20, 30)]
    first = ingest(client, services, early)
    assert ids(get_page(client, "late-acct", order="asc")) == [e["event_id"] for e in early]

    oldest = make_event(account_id="late-acct", occurred_at=at(5 * 60, KST))
    middle = make_event(account_id="late-acct", occurred_at=at(15 * 60))
    late = ingest(client, services, [oldest, middle])
    # Appended last, so its log position is after the others ...
    offsets = [i["position"]["offset"] for i in first["items"] + late["items"]]
    assert offsets == sorted(offsets)
    # ... but it sorts by when it happened.
    expected = [oldest, early[0], middle, early[1], early[2]]
    assert ids(get_page(client, "late-acct", order="asc")) == [e["event_id"] for e in expected]
    assert ids(get_page(client, "late-acct")) == [e["event_id"] for e in reversed(expected)]


def test_ties_in_occurred_at_are_ordered_by_partition_then_offset(
    client: httpx.Client, services: Services
) -> None:
    same = at(3600)
    own = [
        make_event(account_id="tie-target", occurred_at=same, summary=f"own {i}") for i in range(3)
    ]
    others = [
        make_event(account_id=f"tie-x{i}", related_account_ids=["tie-target"], occurred_at=same)
        for i in range(1, 6)
    ]
    before = make_event(account_id="tie-target", occurred_at=at(3599))
    after = make_event(account_id="tie-target", occurred_at=at(3601))
    events = [others[0], own[0], others[1], after, own[1], others[2], own[2], others[3]]
    events += [others[4], before]
    answer = ingest(client, services, events)
    keys = keys_of(events, answer)
    tied = [e["event_id"] for e in events if e["occurred_at"] == same]
    assert len({keys[t][1] for t in tied}) >= 2, "the tie must span several partitions"
    by_position = sorted(tied, key=lambda t: keys[t])
    assert by_position != tied, "posting order must differ from log-position order"

    expected = [before["event_id"], *by_position, after["event_id"]]
    assert ids(get_page(client, "tie-target", order="asc")) == expected
    assert ids(get_page(client, "tie-target")) == expected[::-1]

    # Paging through the tie with a small page keeps the same total order.
    for order, want in (("asc", expected), ("desc", expected[::-1])):
        seen: list[str] = []
        params: dict[str, Any] = {"order": order, "limit": 2}
        while True:
            page = get_page(client, "tie-target", **params)
            seen += ids(page)
            if page["next_cursor"] is None:
                break
            params["cursor"] = page["next_cursor"]
        assert seen == want, order


# --- related accounts and single events -----------------------------------------------------


def test_related_accounts_see_the_event_and_it_can_be_read_by_id(
    client: httpx.Client, services: Services
) -> None:
    body = make_event(
        "leadership.meeting_held",
        account_id="hanbit-electronics",
        related_account_ids=["hanbit-group", "hanbit-logistics"],
        occurred_at=at(0, KST),
    )
    before = datetime.now(UTC)
    response = client.post("/v1/events", json=body)
    after = datetime.now(UTC)
    assert response.status_code == 202, response.text
    answer = response.json()
    wait_projected(services, answer)

    for account in ("hanbit-electronics", "hanbit-group", "hanbit-logistics"):
        assert ids(get_page(client, account)) == [body["event_id"]], account

    stored = client.get(f"/v1/events/{body['event_id']}")
    assert stored.status_code == 200, stored.text
    event = stored.json()
    assert event["event_id"] == body["event_id"]
    assert event["account_id"] == "hanbit-electronics"
    assert event["related_account_ids"] == ["hanbit-group", "hanbit-logistics"]
    assert event["position"] == answer["position"]
    assert event["occurred_at"] == utc_z(0)
    assert event["payload"] == body["payload"]
    assert event["recorded_at"].endswith("Z")
    recorded = datetime.fromisoformat(event["recorded_at"])
    assert before - timedelta(seconds=1) <= recorded <= after + timedelta(seconds=1)
    # The timeline item is the same stored event.
    assert get_page(client, "hanbit-group")["items"][0] == event
    # Upper-case UUIDs name the same event.
    assert client.get(f"/v1/events/{body['event_id'].upper()}").json() == event


@once
def test_unknown_event_is_404_and_a_malformed_id_is_422(client: httpx.Client) -> None:
    missing = client.get(f"/v1/events/{uuid.uuid4()}")
    assert error_fields(missing, 404, "event_not_found") == []
    assert error_fields(client.get("/v1/events/not-a-uuid"), 422, "invalid_request") == [
        "path.event_id"
    ]


# --- filters --------------------------------------------------------------------------------

FILTER_ACCT = "filter-acct"


def _filter_events() -> dict[str, dict[str, Any]]:
    """Named events on one account, one per minute (minute = position in this dict)."""

    def ev(kind: str, summary: str, department: str | None = None, **payload: Any) -> dict:
        body = make_event(kind, account_id=FILTER_ACCT, summary=summary)
        if department is not None:
            body["actor"]["department"] = department
        body["payload"].update(payload)
        return body

    events = {
        "sales_kickoff": ev("sales.meeting_held", "Kickoff with ACME procurement"),
        "ticket_open": ev("support.ticket_opened", "결제 오류 문의"),
        "ticket_resolved": ev("support.ticket_resolved", "티켓 종료", resolution="환불 처리 완료"),
        "campaign": ev("marketing.campaign_sent", "Year-end promo for acme corp"),
        "commitment": ev("commitment.made", "SLA 약속", "success"),
        "refund_request": ev("support.ticket_opened", "고객 환불 요청 접수"),
        "percent": ev("success.review_held", "만족도 100% 달성"),
        "thousand": ev("success.review_held", "만족도 1000점"),
        "underscore": ev("sales.call_logged", "renamed ticket_id field (v1/v2)"),
        "leadership": ev("leadership.meeting_held", "경영진 만찬", subject="AcMe 경영진 만찬"),
        "cafe": ev("sales.email_sent", "Visit to Café Müller, Hauptstraße 5", subject="Ölpreise"),
    }
    for minute, body in enumerate(events.values(), start=1):
        body["occurred_at"] = at(minute * 60)
    return events


FILTER_CASES: list[tuple[dict[str, Any], list[str]]] = [
    ({"department": "support"}, ["ticket_open", "ticket_resolved", "refund_request"]),
    ({"department": ["sales", "marketing"]}, ["sales_kickoff", "campaign", "underscore", "cafe"]),
    ({"department": "sales,marketing"}, ["sales_kickoff", "campaign", "underscore", "cafe"]),
    ({"department": "success"}, ["commitment", "percent", "thousand"]),
    (
        {"type": ["support.ticket_opened", "commitment.made"]},
        ["ticket_open", "commitment", "refund_request"],
    ),
    (
        {"type": "support.ticket_opened, commitment.made"},
        ["ticket_open", "commitment", "refund_request"],
    ),
    (
        {"type": ["success.review_held,sales.call_logged", "leadership.meeting_held"]},
        ["percent", "thousand", "underscore", "leadership"],
    ),
    ({"since": at(3 * 60), "until": at(6 * 60)}, ["ticket_resolved", "campaign", "commitment"]),
    (
        {"since": at(3 * 60, KST), "until": at(6 * 60, KST)},
        ["ticket_resolved", "campaign", "commitment"],
    ),
    (
        {"since": at(3 * 60 + 1), "until": at(6 * 60 + 1)},
        ["campaign", "commitment", "refund_request"],
    ),
    ({"until": at(3 * 60)}, ["sales_kickoff", "ticket_open"]),
    ({"since": at(9 * 60)}, ["underscore", "leadership", "cafe"]),
    ({"q": "ACME"}, ["sales_kickoff", "campaign", "leadership"]),
    ({"q": "acme"}, ["sales_kickoff", "campaign", "leadership"]),
    ({"q": "aCmE cOrP"}, ["campaign"]),
    ({"q": "CAFÉ MÜLLER"}, ["cafe"]),  # case-insensitive beyond ASCII
    ({"q": "HAUPTSTRASSE"}, ["cafe"]),  # full case folding: ß == ss
    ({"q": "ölPREISE"}, ["cafe"]),
    ({"q": "환불"}, ["ticket_resolved", "refund_request"]),
    ({"q": "환불 처리"}, ["ticket_resolved"]),
    ({"q": "처리 완료"}, ["ticket_resolved"]),
    ({"q": "경영진"}, ["leadership"]),
    ({"q": "100%"}, ["percent"]),
    ({"q": "%"}, ["percent"]),
    ({"q": "1000"}, ["thousand"]),
    ({"q": "_"}, ["underscore"]),
    ({"q": "ticket_id"}, ["underscore"]),
    ({"q": "/"}, ["underscore"]),
    ({"q": "만족도 1_0"}, []),
    ({"department": "support", "type": "support.ticket_opened", "q": "환불"}, ["refund_request"]),
    ({"department": "support", "since": at(3 * 60), "until": at(4 * 60)}, ["ticket_resolved"]),
    ({"department": "leadership", "type": "sales.meeting_held"}, []),
    ({"q": "존재하지 않는 말"}, []),
    ({"since": at(6 * 60), "until": at(6 * 60)}, []),
]


def test_filters(client: httpx.Client, services: Services) -> None:
    events = _filter_events()
    ingest(client, services, list(events.values()))
    name_of = {body["event_id"]: name for name, body in events.items()}
    order = list(events)
    wrong = {}
    for params, expected in FILTER_CASES:
        page = get_page(client, FILTER_ACCT, **params)
        got = [name_of[event_id] for event_id in ids(page)]
        want = sorted(expected, key=order.index, reverse=True)  # newest first
        if got != want or page["next_cursor"] is not None:
            wrong[json.dumps(params, ensure_ascii=False)] = got
    assert wrong == {}
    # Filters apply with order=asc too.
    page = get_page(client, FILTER_ACCT, q="환불", order="asc")
    assert [name_of[i] for i in ids(page)] == ["ticket_resolved", "refund_request"]


@once
def test_invalid_queries_are_422_naming_the_parameter(
    client: httpx.Client, services: Services
) -> None:
    ingest(client, services, [make_event(account_id="known")])
    garbage_cursors = [
        "zzz",
        "!!!",
        "한글",
        base64.urlsafe_b64encode(b"[1,2]").decode(),
        base64.urlsafe_b64encode(b'["a",1,2]').decode(),
        base64.urlsafe_b64encode(b"[1,2,true]").decode(),
        base64.urlsafe_b64encode(b'{"a":1}').decode(),
    ]
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"department": "operations"}, "query.department", "invalid_query"),
        ({"department": ["sales", "operations"]}, "query.department", "invalid_query"),
        ({"department": "sales,Support"}, "query.department", "invalid_query"),
        ({"type": "sales.lunch_eaten"}, "query.type", "invalid_query"),
        ({"type": "sales.meeting_held,nope"}, "query.type", "invalid_query"),
        ({"since": "2026-01-01T00:00:00"}, "query.since", "invalid_request"),
        ({"until": "2026-01-01T00:00:00"}, "query.until", "invalid_request"),
        ({"since": "yesterday"}, "query.since", "invalid_request"),
        ({"limit": 501}, "query.limit", "invalid_request"),
        ({"limit": 0}, "query.limit", "invalid_request"),
        ({"limit": "ten"}, "query.limit", "invalid_request"),
        ({"order": "newest"}, "query.order", "invalid_request"),
        ({"q": ""}, "query.q", "invalid_request"),
        ({"q": "x" * 201}, "query.q", "invalid_request"),
        *[({"cursor": c}, "query.cursor", "invalid_query") for c in garbage_cursors],
    ]
    wrong = {}
    for params, path, code in cases:
        response = client.get("/v1/accounts/known/timeline", params=params)
        error = response.json().get("error", {})
        got = (
            response.status_code,
            error.get("code"),
            [f["path"] for f in error.get("fields", [])],
        )
        if got != (422, code, [path]):
            wrong[str(params)] = got
    assert wrong == {}

    unknown = client.get("/v1/accounts/finance/timeline", params={"department": "operations"})
    assert error_fields(unknown, 422, "invalid_query") == ["query.department"]
    assert "operations" in unknown.json()["error"]["message"]
    types = client.get("/v1/accounts/known/timeline", params={"type": "nope"})
    problem = types.json()["error"]["fields"][0]["problem"]
    assert all(name in problem for name in SAMPLE_PAYLOADS)


def test_unknown_account_is_404_and_known_account_with_no_match_is_empty(
    client: httpx.Client, services: Services
) -> None:
    ingest(client, services, [make_event(account_id="known", related_account_ids=["friend"])])
    missing = client.get("/v1/accounts/unknown-acct/timeline")
    assert error_fields(missing, 404, "account_not_found") == []
    assert "unknown-acct" in missing.json()["error"]["message"]
    filtered = client.get("/v1/accounts/unknown-acct/timeline", params={"q": "anything"})
    assert filtered.status_code == 404
    for account in ("known", "friend"):
        page = get_page(client, account, department="marketing")
        assert page == {"account_id": account, "items": [], "next_cursor": None}
    assert len(get_page(client, "friend")["items"]) == 1


# --- paging ---------------------------------------------------------------------------------


def test_limit_defaults_to_50_and_allows_500(client: httpx.Client, services: Services) -> None:
    events = [make_event(account_id="limit-acct", occurred_at=at(i)) for i in range(60)]
    ingest(client, services, events)
    newest_first = [e["event_id"] for e in reversed(events)]

    first = get_page(client, "limit-acct")
    assert ids(first) == newest_first[:50]
    assert first["next_cursor"] is not None
    rest = get_page(client, "limit-acct", cursor=first["next_cursor"])
    assert ids(rest) == newest_first[50:]
    assert rest["next_cursor"] is None
    everything = get_page(client, "limit-acct", limit=500)
    assert ids(everything) == newest_first
    assert everything["next_cursor"] is None
    exact = get_page(client, "limit-acct", limit=60)
    assert len(exact["items"]) == 60
    assert exact["next_cursor"] is None  # no empty trailing page


def _walk(client: httpx.Client, account: str, **params: Any) -> list[dict[str, Any]]:
    pages = []
    while True:
        page = get_page(client, account, **params)
        pages.append(page)
        if page["next_cursor"] is None:
            return pages
        assert len(pages) < 100, "paging does not end"
        params["cursor"] = page["next_cursor"]


def test_paging_120_events_visits_each_exactly_once_in_order(
    client: httpx.Client, services: Services
) -> None:
    # Each minute appears three times (ties), and posting order differs from time order.
    events = [
        make_event(account_id="page-acct", occurred_at=at((i * 37 % 40) * 60)) for i in range(120)
    ]
    keys = keys_of(events, ingest(client, services, events))
    ascending = sorted(keys, key=keys.__getitem__)

    for order, expected in (("desc", ascending[::-1]), ("asc", ascending)):
        pages = _walk(client, "page-acct", order=order, limit=25)
        assert [len(p["items"]) for p in pages] == [25, 25, 25, 25, 20], order
        assert all(p["next_cursor"] for p in pages[:-1])
        assert pages[-1]["next_cursor"] is None
        seen = [event_id for page in pages for event_id in ids(page)]
        assert seen == expected, order


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_paging_is_stable_while_events_arrive(
    client: httpx.Client, services: Services, order: str
) -> None:
    account, limit = "stable-acct", 10
    original = [make_event(account_id=account, occurred_at=at(i * 60)) for i in range(60)]
    original = original[::2] + original[1::2]  # posted out of time order
    keys = keys_of(original, ingest(client, services, original))
    forward = order == "asc"

    def after(key: Key, cursor: Key | None) -> bool:
        return cursor is None or (key > cursor if forward else key < cursor)

    def expected_page(cursor: Key | None) -> list[str]:
        candidates = sorted((k for k in keys if after(keys[k], cursor)), key=keys.__getitem__)
        return (candidates if forward else candidates[::-1])[:limit]

    def arrive(cursor: Key) -> None:
        """Events newer, older and tied with the cursor, and at both ends of the timeline."""
        seconds = cursor[0]
        offsets = [-3600 * 2, -90, -1, 0, 0, 1, 90, 3600 * 2]
        late = [make_event(account_id=account, occurred_at=at(seconds + d)) for d in offsets]
        keys.update(keys_of(late, ingest(client, services, late)))

    seen: list[str] = []
    cursor_key: Key | None = None
    params: dict[str, Any] = {"order": order, "limit": limit}
    for page_number in range(100):
        page = get_page(client, account, **params)
        assert ids(page) == expected_page(cursor_key), f"page {page_number}"
        seen += ids(page)
        if page["next_cursor"] is None:
            break
        cursor_key = keys[ids(page)[-1]]
        if page_number in (0, 2):
            arrive(cursor_key)  # while the client is between pages
        params["cursor"] = page["next_cursor"]

    counts = Counter(seen)
    assert {e["event_id"]: counts[e["event_id"]] for e in original} == {
        e["event_id"]: 1 for e in original
    }
    assert max(counts.values()) == 1
    seen_keys = [keys[s] for s in seen]
    assert seen_keys == sorted(seen_keys, reverse=not forward)
    assert len(seen) > len(original)  # some arrivals were behind the cursor and were visited


# --- text -----------------------------------------------------------------------------------


def test_korean_text_round_trips_exactly(client: httpx.Client, services: Services) -> None:
    summary = "결제 오류로 인한 불만 접수 — 담당: 김철수 😀 (ＡＢＣ)"
    actor_name = "박영희 팀장"
    decomposed = unicodedata.normalize("NFD", "한글 자모 분해")  # must not be re-normalised
    notes = f"{decomposed} / e\u0301 / 가\u200b나 / 👩\u200d💻"
    next_steps = '견적 송부\n줄바꿈\t탭 "따옴표" \\ 백슬래시'
    body = make_event(account_id="한빛-전자", summary=summary)
    body["actor"]["name"] = actor_name
    body["payload"] = {"subject": "분기 리뷰", "notes": notes, "next_steps": next_steps}
    body["contacts"][0]["name"] = "이민수"
    answer = client.post("/v1/events", json=body)
    assert answer.status_code == 202, answer.text
    wait_projected(services, answer.json())

    for response in (
        client.get("/v1/accounts/한빛-전자/timeline"),
        client.get(f"/v1/events/{body['event_id']}"),
    ):
        assert response.status_code == 200, response.text
        text = response.content.decode("utf-8")  # strict: the raw bytes are valid UTF-8
        data = json.loads(text)
        event = data["items"][0] if "items" in data else data
        sent = [summary, actor_name, notes, next_steps, "이민수"]
        got = [
            event["summary"],
            event["actor"]["name"],
            event["payload"]["notes"],
            event["payload"]["next_steps"],
            event["contacts"][0]["name"],
        ]
        assert [g.encode("utf-8") for g in got] == [s.encode("utf-8") for s in sent]
        assert event["account_id"] == "한빛-전자"
        assert event["payload"] == body["payload"]
        for plain in (summary, actor_name, notes):
            assert json.dumps(plain, ensure_ascii=False).encode("utf-8") in response.content
    # And the search finds it by a decomposed fragment exactly as sent.
    found = get_page(client, "한빛-전자", q=decomposed[:4])
    assert ids(found) == [body["event_id"]]


# --- catalog, OpenAPI, health ---------------------------------------------------------------


@once
def test_schemas_list_every_type(client: httpx.Client) -> None:
    response = client.get("/v1/schemas")
    assert response.status_code == 200, response.text
    types = response.json()["types"]
    assert set(types) == set(SAMPLE_PAYLOADS)
    for name, schema in types.items():
        assert schema["properties"]["type"]["const"] == name, name
        assert {"event_id", "account_id", "occurred_at", "actor", "payload"} <= set(
            schema["properties"]
        ), name
        assert schema["additionalProperties"] is False, name
        assert schema["examples"][0]["type"] == name, name
    assert response.json()["departments"][:6] == ["sales", "marketing", "support", "success",
                                                  "leadership", "product"]  # fmt: skip


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


@once
def test_openapi_documents_the_event_body(client: httpx.Client) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200, response.text
    spec = response.json()
    components = spec["components"]["schemas"]
    event = components["Event"]
    assert event["discriminator"]["propertyName"] == "type"
    assert set(event["discriminator"]["mapping"]) == set(SAMPLE_PAYLOADS)
    assert len(event["oneOf"]) == len(SAMPLE_PAYLOADS)

    post_event = spec["paths"]["/v1/events"]["post"]
    schema = post_event["requestBody"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/Event"}
    assert post_event["requestBody"]["required"] is True
    batch = spec["paths"]["/v1/events/batch"]["post"]["requestBody"]["content"]
    items = batch["application/json"]["schema"]["properties"]["events"]["items"]
    assert items == {"$ref": "#/components/schemas/Event"}
    assert "get" in spec["paths"]["/v1/accounts/{account_id}/timeline"]
    # Every reference in the document resolves.
    prefix = "#/components/schemas/"
    dangling = {
        r for r in _refs(spec) if not r.startswith(prefix) or r[len(prefix) :] not in components
    }
    assert dangling == set()


def test_healthz_and_readyz(client: httpx.Client, services: Services) -> None:
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}

    events = [make_event(account_id=f"ready-{i}") for i in range(12)]
    answer = ingest(client, services, events)
    assert len({i["position"]["partition"] for i in answer["items"]}) > 1
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {
        "database": "ok",
        "log": "ok",
        "projections": {
            name: {"lag": 0, "dead_letters": {"total": 0}}
            for name in (
                "AccountTimeline",
                "AccountDirectory",
                "LeadershipLog",
                "OneVoiceView",
                "ReportFacts",
            )
        },
        "status": "ready",
    }


# --- regressions (bugs found by these tests) ------------------------------------------------


@once
def test_since_until_at_the_edges_of_the_calendar(client: httpx.Client, services: Services) -> None:
    """Regression: to_micros' astimezone(UTC) overflowed for these instants -> 500."""
    events = [make_event(account_id="known", occurred_at=at(i * 60)) for i in range(3)]
    ingest(client, services, events)
    newest_first = [e["event_id"] for e in reversed(events)]
    cases = [
        ({"since": "0001-01-01T00:00:00+14:00"}, newest_first),
        ({"until": "9999-12-31T23:59:59-14:00"}, newest_first),
        ({"since": "9999-12-31T23:59:59-14:00"}, []),
        ({"until": "0001-01-01T00:00:00+14:00"}, []),
    ]
    for params, expected in cases:
        assert ids(get_page(client, "known", **params)) == expected, params


def test_cursor_with_out_of_range_numbers_is_422(client: httpx.Client, services: Services) -> None:
    """Regression: ints beyond 64 bits reached the database (OverflowError) -> 500."""
    ingest(client, services, [make_event(account_id="known")])
    for key in ([10**30, 0, 0], [0, 2**63, 0], [0, 0, -(2**63) - 1]):
        cursor = base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")
        response = client.get("/v1/accounts/known/timeline", params={"cursor": cursor})
        assert error_fields(response, 422, "invalid_query") == ["query.cursor"], key
    # The extremes of the 64-bit range are valid keys (and match nothing here).
    for key, order in (([2**63 - 1, 0, 0], "asc"), ([-(2**63), 0, 0], "desc")):
        cursor = base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")
        page = get_page(client, "known", cursor=cursor, order=order)
        assert page["items"] == [], key


# --- open bugs ------------------------------------------------------------------------------


def test_every_accepted_account_id_has_a_reachable_timeline(
    client: httpx.Client, services: Services
) -> None:
    body = make_event(account_id="acme/kr")
    response = client.post("/v1/events", json=body)
    if response.status_code == 422:  # refusing such ids at ingest is a fix too
        assert [f["path"] for f in response.json()["error"]["fields"]] == ["account_id"]
        return
    assert response.status_code == 202, response.text
    wait_projected(services, response.json())
    page = client.get("/v1/accounts/acme%2Fkr/timeline")
    assert page.status_code == 200, page.text
    assert ids(page.json()) == [body["event_id"]]


def test_text_with_a_nul_character_does_not_stall_the_timeline(
    client: httpx.Client, services: Services
) -> None:
    first = make_event(account_id="nul-acct", summary="before\x00after", occurred_at=at(0))
    response = client.post("/v1/events", json=first)
    refused = response.status_code == 422  # refusing NUL at ingest would be a fix too
    assert refused or response.status_code == 202, response.text
    second = make_event(account_id="nul-acct", summary="next", occurred_at=at(60))
    answer = client.post("/v1/events", json=second)
    assert answer.status_code == 202, answer.text
    wait_projected(services, answer.json())  # behind the first on its partition
    page = get_page(client, "nul-acct")
    expected = [second["event_id"]] + ([] if refused else [first["event_id"]])
    assert ids(page) == expected
    if not refused:
        assert page["items"][1]["summary"] == "before\x00after"
        assert ids(get_page(client, "nul-acct", q="e\x00a")) == [first["event_id"]]
    ready = client.get("/readyz").json()
    assert ready["projections"]["AccountTimeline"]["lag"] == 0
    nul_query = client.get("/v1/accounts/nul-acct/timeline", params={"q": "e\x00a"})
    assert nul_query.status_code == 422, nul_query.text
    assert nul_query.json()["error"]["fields"][0]["path"] == "query.q"
