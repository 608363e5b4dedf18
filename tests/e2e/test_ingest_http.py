"""End-to-end ingest over real HTTP: POST /v1/events and POST /v1/events/batch."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.bootstrap import Services
from tests.conftest import wait_projected
from tests.samples import INVALID_PAYLOADS, SAMPLE_PAYLOADS, make_event

MAX_BODY = 1024 * 1024
PARTITIONS = 4  # tests/conftest.make_settings

# Backend-independent HTTP behaviour (parsing, validation, limits, docs) runs once, on the
# embedded backend, instead of once per backend (overrides the conftest ``backend`` param).
once = pytest.mark.parametrize("backend", ["embedded"])


# --- helpers --------------------------------------------------------------------------------


def assert_error_shape(response: httpx.Response, status: int, code: str | None = None) -> dict:
    """The response has ``status`` and the documented error body; returns ``body["error"]``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error
    if code is not None:
        assert error["code"] == code, error
    for item in error.get("fields", []):
        assert isinstance(item["path"], str), item
        assert isinstance(item["problem"], str) and item["problem"], item
    return error


def paths_of(error: dict) -> list[str]:
    return [item["path"] for item in error["fields"]]


def post(client: httpx.Client, body: Any) -> httpx.Response:
    return client.post("/v1/events", json=body)


def accepted(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = post(client, body)
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    return answer


def settle(client: httpx.Client, services: Services, account_id: str, *answers: dict) -> None:
    """Wait until everything appended so far for ``account_id`` has been projected.

    A sentinel event on the same account lands on the same partition after every earlier
    record of that account, so waiting for it also covers any (unwanted) extra append.
    """
    sentinel = accepted(
        client, make_event(account_id=account_id, summary="sentinel", occurred_at=_iso(-1e6))
    )
    wait_projected(services, sentinel, *answers)


def timeline_ids(client: httpx.Client, account_id: str) -> list[str]:
    response = client.get(
        f"/v1/accounts/{account_id}/timeline", params={"limit": 500, "order": "asc"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["next_cursor"] is None
    return [item["event_id"] for item in response.json()["items"] if item["summary"] != "sentinel"]


def _iso(hours_from_now: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours_from_now)).isoformat()


def valid_position(position: Any) -> bool:
    return (
        isinstance(position, dict)
        and set(position) == {"partition", "offset"}
        and isinstance(position["partition"], int)
        and 0 <= position["partition"] < PARTITIONS
        and isinstance(position["offset"], int)
        and position["offset"] >= 0
    )


# --- single event ---------------------------------------------------------------------------


def test_post_event_is_accepted_with_its_id_and_position(
    client: httpx.Client, services: Services
) -> None:
    body = make_event("support.ticket_opened")
    response = post(client, body)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["status"] == "accepted"
    assert answer["event_id"] == body["event_id"]
    assert valid_position(answer["position"]), answer
    assert "index" not in answer

    second = accepted(client, make_event("support.ticket_opened"))
    assert second["position"]["partition"] == answer["position"]["partition"]  # same account
    assert second["position"]["offset"] > answer["position"]["offset"]

    wait_projected(services, answer, second)
    stored = client.get(f"/v1/events/{body['event_id']}")
    assert stored.status_code == 200, stored.text
    assert stored.json()["position"] == answer["position"]


def test_event_without_event_id_gets_a_server_uuid(
    client: httpx.Client, services: Services
) -> None:
    body = make_event()
    del body["event_id"]
    first = accepted(client, body)
    again = accepted(client, body)  # no id -> no idempotency: a second, distinct event
    assert first["status"] == again["status"] == "accepted"
    ids = [uuid.UUID(first["event_id"]), uuid.UUID(again["event_id"])]
    assert str(ids[0]) == first["event_id"]  # canonical lower-case form
    assert ids[0] != ids[1]
    assert ids[0].version == 4

    wait_projected(services, first, again)
    stored = client.get(f"/v1/events/{first['event_id']}")
    assert stored.status_code == 200, stored.text
    assert stored.json()["event_id"] == first["event_id"]
    assert timeline_ids(client, "acme-kr") == [first["event_id"], again["event_id"]]


def test_same_event_id_and_body_is_a_duplicate_with_the_same_position(
    client: httpx.Client, services: Services
) -> None:
    body = make_event("sales.proposal_sent", account_id="dup-acct")
    first = accepted(client, body)

    # The same event again: same JSON, then reordered keys, extra whitespace and the same
    # instant written in another timezone.
    reordered = dict(reversed(list(body.items())))
    reordered["occurred_at"] = "2026-11-20T01:00:00Z"  # == 2026-11-20T10:00:00+09:00
    raw = json.dumps(reordered, indent=3, ensure_ascii=False).encode()
    for response in (
        post(client, body),
        client.post("/v1/events", content=raw, headers={"content-type": "application/json"}),
    ):
        assert response.status_code == 200, response.text
        assert response.json() == {
            "status": "duplicate",
            "event_id": body["event_id"],
            "position": first["position"],
            "consistency_token": first["consistency_token"],
        }

    settle(client, services, "dup-acct", first)
    assert timeline_ids(client, "dup-acct") == [body["event_id"]]


def test_concurrent_single_posts_each_get_their_own_answer(
    client: httpx.Client, services: Services
) -> None:
    """Single POSTs in flight together are submitted together (the group commit): each still
    gets its own answer — a refused event 403 alone, a client's retry of an id in flight the
    same position, a different body under a used id 409 — and each event is appended once."""
    made = client.post("/v1/admin/keys", json={"name": "desk", "write_departments": ["support"]})
    assert made.status_code == 201, made.text
    desk = made.json()["secret"]
    account = "concurrent-acct"
    bodies = [make_event("support.ticket_opened", account_id=account,
                         payload={**SAMPLE_PAYLOADS["support.ticket_opened"],
                                  "subject": f"동시 접수 {n}"}) for n in range(24)]  # fmt: skip
    retried = bodies[3]
    other = {**bodies[5], "payload": {**bodies[5]["payload"], "subject": "다른 내용"}}
    refused = make_event("sales.call_logged", account_id=account)
    sends = [(b, desk) for b in bodies] + [(retried, desk), (other, desk), (refused, desk)]
    before = _group_sum(client)
    with ThreadPoolExecutor(len(sends)) as pool:
        answers = list(pool.map(lambda s: client.post("/v1/events", json=s[0], headers={
            "Authorization": f"Bearer {s[1]}"}), sends))  # fmt: skip
    codes = [r.status_code for r in answers]
    assert [c for i, c in enumerate(codes[:24]) if i not in (3, 5)] == [202] * 22, codes
    assert sorted([codes[3], codes[24]]) == [200, 202]  # whichever came first is appended
    assert answers[24].json()["position"] == answers[3].json()["position"]
    assert sorted([codes[5], codes[25]]) == [202, 409]
    assert codes[26] == 403
    assert paths_of(answers[26].json()["error"]) == ["actor.department"]
    assert _group_sum(client) - before == len(sends)  # every single POST went through a group
    settle(client, services, account, *[a.json() for a in answers if a.status_code == 202])
    kept = {b["event_id"] for b in bodies}
    assert sorted(timeline_ids(client, account)) == sorted(kept)


def _group_sum(client: httpx.Client) -> float:
    text = client.get("/metrics").text
    for line in text.splitlines():
        if line.startswith("onevoice_ingest_group_events_sum "):
            return float(line.split()[1])
    return 0.0


def test_same_event_id_with_a_different_body_is_a_conflict(
    client: httpx.Client, services: Services
) -> None:
    body = make_event(account_id="conflict-acct", summary="original")
    first = accepted(client, body)
    changed = {**body, "summary": "changed"}
    error = assert_error_shape(post(client, changed), 409, "event_id_conflict")
    assert error["fields"][0]["path"] == "event_id"
    assert error["event_id"] == body["event_id"]

    # Still a conflict when retried; the original is still a duplicate.
    assert post(client, changed).status_code == 409
    assert post(client, body).status_code == 200

    settle(client, services, "conflict-acct", first)
    assert timeline_ids(client, "conflict-acct") == [body["event_id"]]
    stored = client.get(f"/v1/events/{body['event_id']}").json()
    assert stored["summary"] == "original"


def _wrong_department(body: dict[str, Any]) -> None:
    body["actor"]["department"] = "support"


def _bad_amount(body: dict[str, Any]) -> None:
    body["payload"]["amount"] = "lots"


def _naive_occurred_at(body: dict[str, Any]) -> None:
    body["occurred_at"] = "2026-11-20T10:00:00"


def _unknown_type(body: dict[str, Any]) -> None:
    body["type"] = "sales.lunch_eaten"


def _missing_type(body: dict[str, Any]) -> None:
    del body["type"]


def _unknown_field(body: dict[str, Any]) -> None:
    body["priority"] = "high"


def _client_position(body: dict[str, Any]) -> None:
    body["position"] = {"partition": 0, "offset": 0}


def _related_repeats_account(body: dict[str, Any]) -> None:
    body["related_account_ids"] = ["other", body["account_id"]]


def _bad_email(body: dict[str, Any]) -> None:
    body["contacts"][0]["email"] = "not an email"


def _event_id_not_uuid(body: dict[str, Any]) -> None:
    body["event_id"] = "12345"


INVALID_CASES: list[tuple[Callable[[dict[str, Any]], None], str]] = [
    (_bad_amount, "payload.amount"),
    (_naive_occurred_at, "occurred_at"),
    (_wrong_department, "actor.department"),
    (_unknown_type, "type"),
    (_missing_type, "type"),
    (_unknown_field, "priority"),
    (_client_position, "position"),
    (_related_repeats_account, "related_account_ids"),
    (_bad_email, "contacts.0.email"),
    (_event_id_not_uuid, "event_id"),
]


@once
def test_invalid_event_is_422_naming_the_field(client: httpx.Client) -> None:
    wrong = {}
    for mutate, path in INVALID_CASES:
        body = make_event("sales.proposal_sent")
        mutate(body)
        error = assert_error_shape(post(client, body), 422, "invalid_event")
        if paths_of(error) != [path]:
            wrong[mutate.__name__] = error
            continue
        problem = error["fields"][0]["problem"]
        if path == "type" and not all(name in problem for name in SAMPLE_PAYLOADS):
            wrong[mutate.__name__] = error  # must name every allowed type
        if path == "actor.department" and "'sales'" not in problem:
            wrong[mutate.__name__] = error
    assert wrong == {}


@once
def test_422_lists_every_bad_field(client: httpx.Client) -> None:
    body = make_event("sales.proposal_sent")
    _bad_amount(body)
    _naive_occurred_at(body)
    _bad_email(body)
    body["payload"]["currency"] = "krw"
    error = assert_error_shape(post(client, body), 422, "invalid_event")
    assert sorted(paths_of(error)) == sorted(
        ["occurred_at", "contacts.0.email", "payload.amount", "payload.currency"]
    )


@once
def test_invalid_payload_of_every_type_is_422_at_its_path(client: httpx.Client) -> None:
    wrong = {}
    for kind, (payload, path) in INVALID_PAYLOADS.items():
        response = post(client, make_event(kind, payload=payload))
        error = assert_error_shape(response, 422, "invalid_event")
        if path not in paths_of(error):
            wrong[kind] = paths_of(error)
    assert wrong == {}
    assert len(INVALID_PAYLOADS) == len(SAMPLE_PAYLOADS)


@once
def test_a_body_that_is_not_an_object_is_422(client: httpx.Client) -> None:
    for body in ([], 42, "event", None, [make_event()]):
        response = client.post(
            "/v1/events", content=json.dumps(body), headers={"content-type": "application/json"}
        )
        error = assert_error_shape(response, 422, "invalid_event")
        assert paths_of(error) == [""], body
        assert error["fields"][0]["problem"] == "the event must be a JSON object"


@once
def test_rejected_event_is_not_appended(client: httpx.Client, services: Services) -> None:
    body = make_event(account_id="reject-acct")
    _bad_email(body)
    assert post(client, body).status_code == 422
    settle(client, services, "reject-acct")
    assert timeline_ids(client, "reject-acct") == []
    assert client.get(f"/v1/events/{body['event_id']}").status_code == 404
    # The id was not burned: the corrected event is accepted under it.
    fixed = {**body, "contacts": []}
    assert accepted(client, fixed)["event_id"] == body["event_id"]


@once
def test_occurred_at_more_than_24h_ahead_is_422(client: httpx.Client) -> None:
    body = make_event(occurred_at=_iso(25))
    error = assert_error_shape(post(client, body), 422, "invalid_event")
    assert paths_of(error) == ["occurred_at"]
    assert "future" in error["fields"][0]["problem"]
    # 23 hours ahead is within the allowed clock skew.
    assert accepted(client, make_event(occurred_at=_iso(23)))["status"] == "accepted"


# --- malformed bodies -----------------------------------------------------------------------


URLS = ("/v1/events", "/v1/events/batch")
MALFORMED = [
    b"",
    b"{",
    b'{"type": "sales.meeting_held",}',
    b"not json",
    b"{} {}",
    b"{'a': 1}",
    b"[" * 100_000 + b"]" * 100_000,  # nested too deeply for the parser
]
NOT_UTF8 = [
    b'{"summary": "caf\xe9"}',  # Latin-1
    b'{"a": "\x80\x81"}',  # stray continuation bytes
    json.dumps(make_event(summary="X")).encode().replace(b'"X"', b'"\xc3\x28"'),  # bad sequence
]


@once
def test_malformed_json_is_400(client: httpx.Client) -> None:
    for url in URLS:
        for raw in MALFORMED:
            response = client.post(url, content=raw, headers={"content-type": "application/json"})
            error = assert_error_shape(response, 400, "malformed_json")
            assert "not valid JSON" in error["message"], (url, raw)


@once
def test_non_utf8_body_is_400(client: httpx.Client) -> None:
    for url in URLS:
        for raw in NOT_UTF8:
            response = client.post(url, content=raw, headers={"content-type": "application/json"})
            error = assert_error_shape(response, 400, "malformed_json")
            assert "UTF-8" in error["message"], (url, raw)


@once
def test_utf16_utf32_and_surrogate_bodies_are_400(client: httpx.Client) -> None:
    """Regression: json.loads(bytes) guessed UTF-16/32 (202) and let surrogates through (422)."""
    bodies = {
        enc: json.dumps(make_event()).encode(enc) for enc in ("utf-16-le", "utf-16", "utf-32")
    }
    # UTF-8-style bytes of a lone surrogate (CESU-8) are not UTF-8 either.
    bodies["surrogate"] = (
        json.dumps(make_event(summary="X")).encode().replace(b'"X"', b'"\xed\xa0\x80"')
    )
    answers = {}
    for url in URLS:
        for name, raw in bodies.items():
            if url.endswith("batch"):
                raw = b'{"events": [' + raw + b"]}" if name == "surrogate" else raw
            response = client.post(url, content=raw, headers={"content-type": "application/json"})
            answers[(url, name)] = (response.status_code, response.json()["error"]["code"])
    assert answers == dict.fromkeys(answers, (400, "malformed_json"))


def _padded(body: dict[str, Any], size: int) -> bytes:
    """``body`` as JSON padded with whitespace to exactly ``size`` bytes."""
    raw = json.dumps(body, ensure_ascii=False).encode()
    assert len(raw) <= size
    return raw + b" " * (size - len(raw))


def _body_for(url: str) -> dict[str, Any]:
    return make_event() if url == "/v1/events" else {"events": [make_event()]}


def _chunks(raw: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(raw), size):
        yield raw[start : start + size]


@once
def test_body_over_1mib_with_content_length_is_413(client: httpx.Client) -> None:
    for url in URLS:
        raw = _padded(_body_for(url), MAX_BODY + 1)
        response = client.post(url, content=raw, headers={"content-type": "application/json"})
        assert response.request.headers["content-length"] == str(MAX_BODY + 1)
        error = assert_error_shape(response, 413, "body_too_large")
        assert str(MAX_BODY) in error["message"]


@once
def test_chunked_body_over_1mib_without_content_length_is_413(client: httpx.Client) -> None:
    for url in URLS:
        raw = _padded(_body_for(url), MAX_BODY + 100)
        response = client.post(
            url, content=_chunks(raw), headers={"content-type": "application/json"}
        )
        assert "content-length" not in response.request.headers
        assert response.request.headers["transfer-encoding"] == "chunked"
        assert_error_shape(response, 413, "body_too_large")


@once
def test_bodies_up_to_1mib_are_accepted_with_and_without_content_length(
    client: httpx.Client,
) -> None:
    for url in URLS:
        for chunked in (False, True):
            body = _body_for(url)
            raw = _padded(body, MAX_BODY)
            response = client.post(
                url,
                content=_chunks(raw) if chunked else raw,
                headers={"content-type": "application/json"},
            )
            assert ("content-length" in response.request.headers) is not chunked
            assert response.status_code == (202 if url == "/v1/events" else 200), response.text
            event_id = (body["events"][0] if "events" in body else body)["event_id"]
            answer = response.json()
            assert answer.get("items", [answer])[0]["event_id"] == event_id


# --- batch ----------------------------------------------------------------------------------


def test_batch_answers_each_item_in_order(client: httpx.Client, services: Services) -> None:
    earlier_body = make_event(account_id="batch-a", summary="posted before the batch")
    earlier = accepted(client, earlier_body)

    a = make_event(account_id="batch-a", summary="valid a")
    bad = make_event("sales.proposal_sent", account_id="batch-a")
    _bad_amount(bad)
    related = make_event(account_id="batch-b", related_account_ids=["batch-a"], summary="rel")
    no_id = make_event(account_id="batch-b", summary="no id")
    del no_id["event_id"]
    items = [
        a,  # 0 accepted
        bad,  # 1 rejected
        related,  # 2 accepted
        json.loads(json.dumps(a)),  # 3 duplicate of item 0 (in this batch)
        {**a, "summary": "a, but different"},  # 4 conflicts with item 0
        earlier_body,  # 5 duplicate of an earlier request
        {**earlier_body, "summary": "changed"},  # 6 conflicts with an earlier request
        no_id,  # 7 accepted, id assigned
        42,  # 8 rejected: not an object
        {**related, "summary": "rel changed"},  # 9 conflicts with item 2
    ]
    response = client.post("/v1/events/batch", json={"events": items})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert [(item["index"], item["status"]) for item in answer["items"]] == [
        (0, "accepted"),
        (1, "rejected"),
        (2, "accepted"),
        (3, "duplicate"),
        (4, "conflict"),
        (5, "duplicate"),
        (6, "conflict"),
        (7, "accepted"),
        (8, "rejected"),
        (9, "conflict"),
    ]
    assert (answer["accepted"], answer["duplicates"], answer["rejected"], answer["conflicts"]) == (
        3,
        2,
        2,
        3,
    )
    by_index = answer["items"]
    assert by_index[0]["event_id"] == a["event_id"]
    assert valid_position(by_index[0]["position"])
    assert by_index[3]["position"] == by_index[0]["position"]
    assert by_index[3]["event_id"] == a["event_id"]
    assert by_index[5]["position"] == earlier["position"]
    for index in (4, 6, 9):
        assert [e["path"] for e in by_index[index]["errors"]] == ["event_id"]
        assert "position" not in by_index[index]
    assert [e["path"] for e in by_index[1]["errors"]] == ["payload.amount"]
    assert [e["path"] for e in by_index[8]["errors"]] == [""]
    assert "position" not in by_index[1]
    assigned = by_index[7]["event_id"]
    assert uuid.UUID(assigned).version == 4
    assert by_index[2]["position"]["partition"] == by_index[7]["position"]["partition"]
    assert by_index[7]["position"]["offset"] > by_index[2]["position"]["offset"]

    settle(client, services, "batch-a", answer)
    settle(client, services, "batch-b", answer)
    # Same occurred_at everywhere: the timeline orders them by log position.
    on_a = [
        (earlier["position"], earlier_body["event_id"]),
        (by_index[0]["position"], a["event_id"]),
        (by_index[2]["position"], related["event_id"]),
    ]
    on_a.sort(key=lambda pair: (pair[0]["partition"], pair[0]["offset"]))
    assert timeline_ids(client, "batch-a") == [event_id for _, event_id in on_a]
    assert sorted(timeline_ids(client, "batch-b")) == sorted([related["event_id"], assigned])
    assert client.get(f"/v1/events/{a['event_id']}").json()["summary"] == "valid a"


def test_batch_of_500_is_accepted_and_501_is_422(client: httpx.Client, services: Services) -> None:
    too_many = [make_event(account_id=f"acct-{i % 7}") for i in range(501)]
    error = assert_error_shape(
        client.post("/v1/events/batch", json={"events": too_many}), 422, "invalid_batch"
    )
    assert paths_of(error) == ["events"]
    assert "501" in error["fields"][0]["problem"]

    response = client.post("/v1/events/batch", json={"events": too_many[:500]})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["accepted"] == 500
    assert [item["index"] for item in answer["items"]] == list(range(500))
    assert {item["event_id"] for item in answer["items"]} == {e["event_id"] for e in too_many[:500]}
    positions = {(i["position"]["partition"], i["position"]["offset"]) for i in answer["items"]}
    assert len(positions) == 500
    wait_projected(services, answer)
    # The 501st was not appended by the refused batch.
    assert client.get(f"/v1/events/{too_many[500]['event_id']}").status_code == 404


BAD_BATCHES: list[tuple[Any, str]] = [
    ([make_event()], ""),
    ("events", ""),
    (None, ""),
    ({}, "events"),
    ({"events": None}, "events"),
    ({"events": make_event()}, "events"),
    ({"events": []}, "events"),
    ({"events": [make_event()], "dry_run": True}, "dry_run"),
]


@once
def test_batch_body_of_the_wrong_shape_is_422(client: httpx.Client, services: Services) -> None:
    wrong = {}
    for body, path in BAD_BATCHES:
        response = client.post(
            "/v1/events/batch",
            content=json.dumps(body),
            headers={"content-type": "application/json"},
        )
        error = assert_error_shape(response, 422, "invalid_batch")
        if paths_of(error) != [path]:
            wrong[json.dumps(body)[:40]] = error
    assert wrong == {}
    # Nothing from the refused batches was appended.
    settle(client, services, "acme-kr")
    assert timeline_ids(client, "acme-kr") == []


@once
def test_batch_item_too_far_in_the_future_is_rejected_alone(
    client: httpx.Client, services: Services
) -> None:
    ahead = make_event(occurred_at=_iso(25))
    fine = make_event()
    response = client.post("/v1/events/batch", json={"events": [ahead, fine]})
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [i["status"] for i in items] == ["rejected", "accepted"]
    assert [e["path"] for e in items[0]["errors"]] == ["occurred_at"]
    settle(client, services, "acme-kr", response.json())
    assert timeline_ids(client, "acme-kr") == [fine["event_id"]]


# --- regressions (bugs found by these tests) ------------------------------------------------


@once
@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:30:00-01:00"])
def test_occurred_at_out_of_range_in_utc_is_422(client: httpx.Client, moment: str) -> None:
    """Regression: EnvelopeBase._to_utc raised OverflowError -> 500."""
    response = post(client, make_event(occurred_at=moment))
    error = assert_error_shape(response, 422, "invalid_event")
    assert paths_of(error) == ["occurred_at"]


@once
def test_non_finite_numbers_are_400(client: httpx.Client, services: Services) -> None:
    """Regression: Infinity and 1e400 were accepted (202) and read back as amount null."""
    answers = {}
    for token in ("Infinity", "-Infinity", "NaN", "1e400", "-1e400"):
        body = make_event("sales.deal_stage_changed", account_id="finite")
        body["payload"]["amount"] = "AMOUNT"
        raw = json.dumps(body).replace('"AMOUNT"', token)
        assert f'"amount": {token}' in raw
        for url, data in (("/v1/events", raw), ("/v1/events/batch", f'{{"events": [{raw}]}}')):
            response = client.post(url, content=data, headers={"content-type": "application/json"})
            answers[(url, token)] = (response.status_code, response.json()["error"]["code"])
    assert answers == dict.fromkeys(answers, (400, "malformed_json"))
    # Large but finite numbers are fine.
    body = make_event("sales.deal_stage_changed", account_id="finite")
    body["payload"]["amount"] = 1e300
    answer = accepted(client, body)
    wait_projected(services, answer)
    assert client.get(f"/v1/events/{body['event_id']}").json()["payload"]["amount"] == 1e300
