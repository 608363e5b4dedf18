"""IngestService against in-memory ports, and the record codec it appends with."""

from __future__ import annotations

import dataclasses
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from services.core import codec
from services.core.codec import RecordRejected
from services.core.events import dump_event, field_errors, parse_event
from services.core.ports import LogMisconfigured, LogRecord, LogUnavailable, Receipt
from services.ingest.service import IngestService, digest_of
from tests.fakes import InMemoryLog, InMemoryReceipts
from tests.samples import make_event

TOPIC = "onevoice.events.test"
NOW = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
KST = timezone(timedelta(hours=9))


@dataclass
class Ingest:
    log: InMemoryLog
    receipts: InMemoryReceipts
    service: IngestService

    def records(self) -> list[LogRecord]:
        return self.log.all_records(TOPIC)

    def submit(self, *items: Any) -> list[dict[str, Any]]:
        return [r.as_json() for r in self.service.submit(list(items))]


@pytest.fixture
def ingest() -> Ingest:
    log = InMemoryLog()
    assert log.ensure_topic(TOPIC, 4) == 4
    receipts = InMemoryReceipts()
    return Ingest(log, receipts, IngestService(log, receipts, TOPIC, clock=lambda: NOW))


def reordered(body: dict[str, Any]) -> dict[str, Any]:
    """The same body with every object's keys in reverse order."""
    if isinstance(body, dict):
        return {k: reordered(body[k]) for k in reversed(list(body))}
    if isinstance(body, list):
        return [reordered(x) for x in body]
    return body


def position_of(record: LogRecord) -> dict[str, int]:
    return {"partition": record.partition, "offset": record.offset}


# --- accepted -------------------------------------------------------------------------------


def test_accepted_item_gets_a_position_and_one_record(ingest: Ingest) -> None:
    body = make_event()
    [result] = ingest.submit(body)
    [record] = ingest.records()
    assert result == {
        "index": 0,
        "status": "accepted",
        "event_id": body["event_id"],
        "position": position_of(record),
    }
    stored = codec.decode(record)
    assert stored.event_id == body["event_id"]
    assert stored.event.summary == body["summary"]
    assert ingest.receipts.rows[body["event_id"]].position == (record.partition, record.offset)


def test_accepted_events_of_one_account_share_a_partition(ingest: Ingest) -> None:
    results = ingest.submit(*[make_event() for _ in range(3)])
    assert [r["status"] for r in results] == ["accepted"] * 3
    assert {r["position"]["partition"] for r in results} == {results[0]["position"]["partition"]}
    assert [r["position"]["offset"] for r in results] == [0, 1, 2]


def test_missing_event_id_gets_a_server_uuid(ingest: Ingest) -> None:
    first, second = make_event(), make_event()
    del first["event_id"], second["event_id"]
    results = ingest.submit(first, second)
    assert [r["status"] for r in results] == ["accepted", "accepted"]
    ids = [r["event_id"] for r in results]
    assert [str(uuid.UUID(i)) for i in ids] == ids
    assert ids[0] != ids[1]
    assert [codec.decode(r).event_id for r in ingest.records()] == ids
    assert [dict(r.headers)["event_id"].decode() for r in ingest.records()] == ids


def test_recorded_at_is_set_from_the_clock(ingest: Ingest) -> None:
    ingest.submit(make_event())
    [record] = ingest.records()
    assert codec.decode(record).recorded_at == NOW
    assert json.loads(record.value)["recorded_at"] == "2026-11-20T00:00:00Z"


def test_client_sent_recorded_at_is_replaced_by_the_clock(ingest: Ingest) -> None:
    ingest.submit(make_event(recorded_at="2001-01-01T00:00:00Z"))
    [record] = ingest.records()
    assert codec.decode(record).recorded_at == NOW


# --- duplicates and conflicts across requests ----------------------------------------------


def test_same_id_and_same_body_is_a_duplicate(ingest: Ingest) -> None:
    body = make_event()
    [first] = ingest.submit(body)
    [again] = ingest.submit(reordered(body))
    assert again == {**first, "status": "duplicate"}
    assert len(ingest.records()) == 1


@pytest.mark.parametrize(
    "occurred_at", ["2026-11-20T01:00:00Z", "2026-11-19T20:00:00-05:00", "2026-11-20T01:00:00.000Z"]
)
def test_same_instant_in_another_timezone_is_a_duplicate(ingest: Ingest, occurred_at: str) -> None:
    body = make_event(occurred_at="2026-11-20T10:00:00+09:00")
    [first] = ingest.submit(body)
    [again] = ingest.submit({**body, "occurred_at": occurred_at})
    assert again["status"] == "duplicate"
    assert again["position"] == first["position"]
    assert len(ingest.records()) == 1


def test_a_different_client_recorded_at_is_still_a_duplicate(ingest: Ingest) -> None:
    body = make_event()
    [first] = ingest.submit(body)
    [again] = ingest.submit({**body, "recorded_at": "2001-01-01T00:00:00Z"})
    assert (again["status"], again["position"]) == ("duplicate", first["position"])


def test_same_id_and_different_body_is_a_conflict(ingest: Ingest) -> None:
    body = make_event()
    ingest.submit(body)
    digest = ingest.receipts.rows[body["event_id"]].digest
    [again] = ingest.submit({**body, "summary": "다른 내용"})
    assert again["status"] == "conflict"
    assert again["event_id"] == body["event_id"]
    assert "position" not in again
    assert [e["path"] for e in again["errors"]] == ["event_id"]
    assert len(ingest.records()) == 1
    assert codec.decode(ingest.records()[0]).event.summary == body["summary"]
    assert ingest.receipts.rows[body["event_id"]].digest == digest


def test_same_id_with_another_type_is_a_conflict(ingest: Ingest) -> None:
    body = make_event("sales.meeting_held")
    ingest.submit(body)
    [again] = ingest.submit(make_event("sales.email_sent", event_id=body["event_id"]))
    assert again["status"] == "conflict"
    assert len(ingest.records()) == 1


# --- duplicates and conflicts within one batch ----------------------------------------------


def test_repeat_in_batch_with_same_body_is_a_duplicate(ingest: Ingest) -> None:
    body = make_event()
    first, second = ingest.submit(body, reordered(body))
    assert first["status"] == "accepted"
    assert second == {**first, "index": 1, "status": "duplicate"}
    assert len(ingest.records()) == 1


def test_repeat_in_batch_with_different_body_is_a_conflict(ingest: Ingest) -> None:
    body = make_event()
    first, second, third = ingest.submit(body, {**body, "summary": "다름"}, body)
    assert first["status"] == "accepted"
    assert (second["index"], second["status"]) == (1, "conflict")
    assert [e["path"] for e in second["errors"]] == ["event_id"]
    assert (third["index"], third["status"], third["position"]) == (
        2,
        "duplicate",
        first["position"],
    )
    assert len(ingest.records()) == 1
    assert codec.decode(ingest.records()[0]).event.summary == body["summary"]


def test_repeat_in_batch_of_an_earlier_duplicate_is_a_duplicate(ingest: Ingest) -> None:
    body = make_event()
    [first] = ingest.submit(body)
    results = ingest.submit(body, body)
    assert [(r["status"], r["position"]) for r in results] == [
        ("duplicate", first["position"]),
        ("duplicate", first["position"]),
    ]
    assert len(ingest.records()) == 1


# --- rejected -------------------------------------------------------------------------------


def test_invalid_items_are_rejected_and_valid_ones_accepted_in_order(ingest: Ingest) -> None:
    good_1, good_2 = make_event(), make_event("support.csat_recorded")
    bad_payload = make_event("support.csat_recorded", payload={"score": 9})
    results = ingest.submit(good_1, bad_payload, ["not", "an", "object"], good_2)
    assert [(r["index"], r["status"]) for r in results] == [
        (0, "accepted"),
        (1, "rejected"),
        (2, "rejected"),
        (3, "accepted"),
    ]
    assert [e["path"] for e in results[1]["errors"]] == ["payload.score"]
    assert "JSON object" in results[2]["errors"][0]["problem"]
    assert [r["event_id"] for r in (results[0], results[3])] == [
        good_1["event_id"],
        good_2["event_id"],
    ]
    assert sorted(codec.decode(r).event_id for r in ingest.records()) == sorted(
        [good_1["event_id"], good_2["event_id"]]
    )
    assert bad_payload["event_id"] not in ingest.receipts.rows


def test_occurred_at_more_than_24h_ahead_is_rejected(ingest: Ingest) -> None:
    ahead = NOW + timedelta(hours=24, microseconds=1)
    body = make_event(occurred_at=ahead.astimezone(KST).isoformat())
    [result] = ingest.submit(body)
    assert result["status"] == "rejected"
    assert result["event_id"] == body["event_id"]
    assert [(e["path"], e["kind"]) for e in result["errors"]] == [("occurred_at", "too_far_ahead")]
    assert "24 h" in result["errors"][0]["problem"]
    assert ingest.records() == []
    assert ingest.receipts.rows == {}


@pytest.mark.parametrize("zone", [UTC, KST, timezone(timedelta(hours=-8))])
def test_occurred_at_exactly_24h_ahead_is_accepted(ingest: Ingest, zone: timezone) -> None:
    body = make_event(occurred_at=(NOW + timedelta(hours=24)).astimezone(zone).isoformat())
    [result] = ingest.submit(body)
    assert result["status"] == "accepted"
    assert codec.decode(ingest.records()[0]).event.occurred_at == NOW + timedelta(hours=24)


def test_occurred_at_far_in_the_past_is_accepted(ingest: Ingest) -> None:
    [result] = ingest.submit(make_event(occurred_at="1999-01-01T00:00:00+09:00"))
    assert result["status"] == "accepted"


@pytest.mark.parametrize(
    ("kind", "field"), [("commitment.made", "due_at"), ("sales.proposal_sent", "valid_until")]
)
def test_payload_datetime_past_year_9999_in_utc_is_rejected_and_not_appended(
    ingest: Ingest, kind: str, field: str
) -> None:
    body = make_event(kind, account_id="한빛전자")
    body["payload"][field] = "9999-12-31T23:59:59-14:00"
    fine = make_event(kind, account_id="한빛전자")
    rejected, accepted = ingest.submit(body, fine)
    assert (rejected["status"], accepted["status"]) == ("rejected", "accepted")
    assert [(e["path"], e["kind"]) for e in rejected["errors"]] == [
        (f"payload.{field}", "datetime_out_of_range")
    ]
    assert [codec.decode(r).event_id for r in ingest.records()] == [fine["event_id"]]
    assert body["event_id"] not in ingest.receipts.rows


def test_payload_datetimes_are_appended_in_utc(ingest: Ingest) -> None:
    ingest.submit(make_event("commitment.made"), make_event("sales.proposal_sent"))
    made, proposal = (json.loads(r.value)["payload"] for r in ingest.records())
    assert made["due_at"] == "2026-11-30T09:00:00Z"  # sent as 18:00+09:00
    assert proposal["valid_until"] == "2026-12-31T14:59:59Z"  # sent as 23:59:59+09:00


def nested(levels: int) -> Any:
    value: Any = "메모"
    for _ in range(levels):
        value = [value]
    return value


def test_deeply_nested_item_is_rejected_and_the_others_accepted(ingest: Ingest) -> None:
    deep = make_event(payload={"subject": "분기 리뷰", "notes": nested(700)})
    fine = make_event()
    rejected, accepted = ingest.submit(deep, fine)
    assert (rejected["status"], accepted["status"]) == ("rejected", "accepted")
    [error] = rejected["errors"]
    assert error["kind"] == "nested_too_deeply"
    assert error["path"] == ".".join(["payload", "notes"] + ["0"] * 30)
    assert "32" in error["problem"]
    assert [codec.decode(r).event_id for r in ingest.records()] == [fine["event_id"]]


def with_fanout(contacts: int, related: int, **overrides: Any) -> dict[str, Any]:
    return make_event(
        account_id="hanbit",
        contacts=[{"id": f"c-{i}", "name": f"담당자 {i}"} for i in range(contacts)],
        related_account_ids=[f"hanbit-{i}" for i in range(related)],
        **overrides,
    )


def test_fanout_over_the_limit_is_rejected_at_contacts_with_the_numbers(ingest: Ingest) -> None:
    body = with_fanout(100, 100)
    [result] = ingest.submit(body)
    assert (result["status"], result["event_id"]) == ("rejected", body["event_id"])
    assert result["errors"] == [
        {
            "path": "contacts",
            "kind": "fanout_too_large",
            "problem": "100 contacts on 101 accounts (account_id and related_account_ids) "
            "with 1 of our people (actor and participants) may make 10100 view rows (one per"
            " contact, person and account); at most 1000 are allowed",
        }
    ]
    assert ingest.records() == []
    assert ingest.receipts.rows == {}


@pytest.mark.parametrize(("contacts", "related", "status"), [
    (10, 99, "accepted"),  # 10 x 100 = 1000, the limit
    (100, 9, "accepted"),  # 100 x 10 = 1000
    (11, 90, "rejected"),  # 11 x 91 = 1001
    (100, 0, "accepted"),
    (0, 100, "accepted"),
])  # fmt: skip
def test_fanout_limit_is_inclusive(
    ingest: Ingest, contacts: int, related: int, status: str
) -> None:
    [result] = ingest.submit(with_fanout(contacts, related))
    assert result["status"] == status
    assert len(ingest.records()) == (status == "accepted")


def test_fanout_limit_is_configurable() -> None:
    log, receipts = InMemoryLog(), InMemoryReceipts()
    log.ensure_topic(TOPIC, 4)
    service = IngestService(log, receipts, TOPIC, clock=lambda: NOW, max_fanout=5)
    results = service.submit([with_fanout(5, 0), with_fanout(3, 1)])
    assert [r.status for r in results] == ["accepted", "rejected"]
    assert "may make 6 view rows" in results[1].errors[0]["problem"]
    assert "at most 5 are allowed" in results[1].errors[0]["problem"]


def test_fanout_and_future_problems_are_reported_together(ingest: Ingest) -> None:
    ahead = (NOW + timedelta(hours=25)).isoformat()
    [result] = ingest.submit(with_fanout(50, 50, occurred_at=ahead))
    assert [(e["path"], e["kind"]) for e in result["errors"]] == [
        ("occurred_at", "too_far_ahead"),
        ("contacts", "fanout_too_large"),
    ]


def test_empty_batch_gives_no_results(ingest: Ingest) -> None:
    assert ingest.submit() == []
    assert ingest.records() == []


# --- log failures and unconfirmed claims ----------------------------------------------------


def test_log_unavailable_propagates_and_releases_the_claim(ingest: Ingest) -> None:
    body = make_event()
    ingest.log.fail_appends = True
    with pytest.raises(LogUnavailable):
        ingest.submit(body)
    assert ingest.receipts.rows == {}
    assert ingest.records() == []

    ingest.log.fail_appends = False
    [result] = ingest.submit(body)
    assert result["status"] == "accepted"
    assert len(ingest.records()) == 1
    assert ingest.receipts.rows[body["event_id"]].position is not None


def test_log_unavailable_then_retry_with_a_changed_body_is_accepted(ingest: Ingest) -> None:
    body = make_event()
    ingest.log.fail_appends = True
    with pytest.raises(LogUnavailable):
        ingest.submit(body)
    ingest.log.fail_appends = False
    [result] = ingest.submit({**body, "summary": "수정됨"})
    assert result["status"] == "accepted"
    assert codec.decode(ingest.records()[0]).event.summary == "수정됨"


def test_unconfirmed_receipt_is_appended_on_retry(ingest: Ingest) -> None:
    body = make_event()
    event_id = body["event_id"]
    ingest.receipts.rows[event_id] = Receipt(event_id, digest_of(parse_event(body)), None)
    [result] = ingest.submit(body)
    [record] = ingest.records()
    assert result["status"] == "accepted"
    assert result["position"] == position_of(record)
    assert ingest.receipts.rows[event_id].position == (record.partition, record.offset)


def test_unconfirmed_receipt_with_another_body_is_a_conflict(ingest: Ingest) -> None:
    body = make_event()
    event_id = body["event_id"]
    other = digest_of(parse_event({**body, "summary": "다른 요청"}))
    ingest.receipts.rows[event_id] = Receipt(event_id, other, None)
    [result] = ingest.submit(body)
    assert result["status"] == "conflict"
    assert ingest.records() == []


def test_unconfirmed_receipt_survives_a_failed_retry(ingest: Ingest) -> None:
    body = make_event()
    event_id = body["event_id"]
    receipt = Receipt(event_id, digest_of(parse_event(body)), None)
    ingest.receipts.rows[event_id] = receipt
    ingest.log.fail_appends = True
    with pytest.raises(LogUnavailable):
        ingest.submit(body)
    assert ingest.receipts.rows == {event_id: receipt}


def test_confirmed_receipt_answers_a_duplicate_with_its_position(ingest: Ingest) -> None:
    body = make_event()
    event_id = body["event_id"]
    ingest.receipts.rows[event_id] = Receipt(event_id, digest_of(parse_event(body)), (2, 41))
    [result] = ingest.submit(body)
    assert result == {
        "index": 0,
        "status": "duplicate",
        "event_id": event_id,
        "position": {"partition": 2, "offset": 41},
    }
    assert ingest.records() == []


# --- codec ----------------------------------------------------------------------------------


def ready_event(**overrides: Any) -> Any:
    return parse_event(make_event(recorded_at="2026-11-20T00:00:01Z", **overrides))


def as_log_record(value: bytes, timestamp_ms: int = 0) -> LogRecord:
    return LogRecord(TOPIC, 3, 99, b"acme-kr", value, timestamp_ms)


def test_encode_sets_key_value_and_headers() -> None:
    event = ready_event(account_id="한빛전자")
    record = codec.encode(event)
    assert record.key == "한빛전자".encode()
    assert record.headers == (
        ("event_id", str(event.event_id).encode()),
        ("type", b"sales.meeting_held"),
        ("schema_version", b"1"),
    )
    assert json.loads(record.value) == dump_event(event)
    assert "한빛전자".encode() in record.value  # UTF-8, not \\u escapes


def test_encode_requires_an_event_id() -> None:
    body = make_event()
    del body["event_id"]
    with pytest.raises(ValueError, match="event_id"):
        codec.encode(parse_event(body))


def test_decode_round_trips_an_encoded_event() -> None:
    event = ready_event()
    stored = codec.decode(as_log_record(codec.encode(event).value, timestamp_ms=1))
    assert stored.event == event
    assert (stored.event_id, stored.partition, stored.offset) == (str(event.event_id), 3, 99)
    assert stored.recorded_at == datetime(2026, 11, 20, 0, 0, 1, tzinfo=UTC)
    assert stored.type == "sales.meeting_held"
    body = stored.body()
    assert body["position"] == {"partition": 3, "offset": 99}
    assert body["recorded_at"] == "2026-11-20T00:00:01Z"


def test_decode_of_a_foreign_record_uses_the_record_timestamp() -> None:
    value = json.dumps(make_event()).encode()
    stored = codec.decode(as_log_record(value, timestamp_ms=1_795_136_400_123))
    assert stored.recorded_at == datetime(2026, 11, 20, 1, 0, 0, 123_000, tzinfo=UTC)


@pytest.mark.parametrize("value", [b"", b"not json", b"{", b"\xc3\x28", b"\xff\xfe\xfd"])
def test_decode_of_non_json_raises_value_error(value: bytes) -> None:
    with pytest.raises(ValueError, match="not JSON"):
        codec.decode(as_log_record(value))


@pytest.mark.parametrize(
    ("data", "reason", "message"),
    [
        ([make_event()], "invalid", "JSON but not an object"),
        ("event", "invalid", "JSON but not an object"),
        ({"type": "sales.meeting_held"}, "invalid", "not a valid event"),
        (make_event(type="lunch"), "invalid", "unknown event type"),
        (make_event(type="sales.lunch_eaten"), "unsupported", "not in this version's catalog"),
        (make_event(position={"partition": 0, "offset": 0}), "unsupported", "fields this version"),
        (make_event(schema_version=2), "unsupported", "schema_version 2 is newer"),
        (make_event(schema_version=0), "invalid", "greater than or equal to 1"),
        (make_event(schema_version=2, payload={}), "unsupported", "schema_version 2 is newer"),
    ],
)
def test_decode_says_why_and_of_which_kind_an_event_is_refused(
    data: Any, reason: str, message: str
) -> None:
    with pytest.raises(codec.RecordRejected, match=message) as refused:
        codec.decode(as_log_record(json.dumps(data).encode()))
    assert refused.value.reason == reason
    assert isinstance(refused.value, ValueError)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [(None, r"no value \(a tombstone\)"), (b"\xff\xfe", "not UTF-8"), (b"{", "not JSON"),
     (b"[" * 5000 + b"]" * 5000, "nested too deeply")],
)  # fmt: skip
def test_records_that_are_not_json_are_undecodable(raw: bytes | None, problem: str) -> None:
    record = dataclasses.replace(as_log_record(b"{}"), value=raw)
    with pytest.raises(codec.RecordRejected, match=problem) as refused:
        codec.decode(record)
    assert refused.value.reason == "undecodable"


def test_decode_of_an_event_without_event_id_raises_value_error() -> None:
    body = make_event()
    del body["event_id"]
    with pytest.raises(ValueError, match="event_id is missing"):
        codec.decode(as_log_record(json.dumps(body).encode()))


def test_decode_of_deeply_nested_json_raises_value_error() -> None:
    with pytest.raises(ValueError):
        codec.decode(as_log_record(b"[" * 100_000))


def test_receipts_past_the_log_end_refuse_to_start(ingest: Ingest) -> None:
    ingest.submit(make_event(account_id="a"), make_event(account_id="a"))
    ingest.service.check_receipts()  # receipts and log agree
    ingest.log.topics[TOPIC] = [[] for _ in range(4)]  # the log was recreated
    with pytest.raises(LogMisconfigured, match=r"partition \d offset 1, but the log ends at 0"):
        ingest.service.check_receipts()


def test_decode_of_a_record_nested_too_deeply_raises_value_error() -> None:
    body = make_event(payload={"subject": "분기 리뷰", "notes": nested(700)})
    raw = json.dumps(body).encode()
    assert codec.loads_strict(raw)["payload"]["notes"][0][0] == nested(698)  # JSON can hold it
    with pytest.raises(ValueError, match="nested_too_deeply"):
        codec.decode(as_log_record(raw))


@pytest.mark.parametrize("depth", [31, 32, 33])
def test_decode_refuses_a_record_exactly_as_deep_as_parse_event_does(depth: int) -> None:
    """Decoding skips the walk over every value when the record's text cannot nest
    ``MAX_DEPTH`` deep; at the edge it must still agree with ``parse_event`` on its own."""
    body = make_event(payload={"subject": "깊이", "notes": None})
    body["payload"]["notes"] = nested(depth - 2)  # the envelope and the payload: two levels
    raw = json.dumps(body, ensure_ascii=False).encode()
    try:
        parse_event(codec.loads_strict(raw))
        alone = None
    except ValidationError as exc:
        alone = [e["kind"] for e in field_errors(exc)]
    try:
        codec.decode(as_log_record(raw))
        decoded = None
    except RecordRejected as exc:
        decoded = str(exc)
    assert (alone is None) == (decoded is None), (alone, decoded)
    if alone is not None:
        assert alone[0] in decoded  # type: ignore[operator]


@pytest.mark.parametrize("text", [r"a\u0000b", r"a\\u0000b", "{[{[" * 10, r"\\" + "[" * 40])
def test_decode_finds_a_nul_and_ignores_brackets_and_escapes_inside_strings(text: str) -> None:
    body = make_event(payload={"subject": "x"})
    raw = json.dumps(body, ensure_ascii=False).encode().replace(b'"x"', f'"{text}"'.encode())
    if text == r"a\u0000b":  # JSON text: the escape of U+0000
        with pytest.raises(RecordRejected, match="nul_character"):
            codec.decode(as_log_record(raw))
    else:  # an escaped backslash before u0000, brackets in text: an ordinary subject
        assert codec.decode(as_log_record(raw)).event.payload.subject == json.loads(
            f'"{text}"')  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "field"), [("commitment.made", "due_at"), ("sales.proposal_sent", "valid_until")]
)
def test_decode_of_a_record_with_a_datetime_past_year_9999_raises_value_error(
    kind: str, field: str
) -> None:
    body = make_event(kind)
    body["payload"][field] = "9999-12-31T23:59:59-14:00"
    with pytest.raises(ValueError, match=f"payload.{field}.*datetime_out_of_range"):
        codec.decode(as_log_record(json.dumps(body).encode()))


def test_a_record_over_the_fanout_limit_still_decodes() -> None:
    """The fan-out limit is an ingest rule: what is already on the log stays readable."""
    body = with_fanout(100, 100)
    stored = codec.decode(as_log_record(json.dumps(body).encode()))
    assert (len(stored.event.contacts), len(stored.event.related_account_ids)) == (100, 100)
