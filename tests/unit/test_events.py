"""The event contract: every catalog type, the envelope rules and the JSON schemas."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from services.core.event_examples import examples
from services.core.events import (
    DEFAULT_DEPARTMENTS,
    EVENT_TYPES,
    MAX_DEPTH,
    PAYLOADS,
    TYPE_DEPARTMENTS,
    UtcDatetime,
    dump_event,
    event_json_schemas,
    event_payload,
    event_type,
    field_errors,
    parse_event,
)
from tests.samples import INVALID_PAYLOADS, ORGANISATION_TYPES, SAMPLE_PAYLOADS, make_event


def errors_of(body: Any) -> list[dict[str, str]]:
    """The field errors of a body that must be rejected."""
    with pytest.raises(ValidationError) as info:
        parse_event(body)
    return field_errors(info.value)


def paths_of(body: Any) -> list[str]:
    return [e["path"] for e in errors_of(body)]


# --- the catalog ----------------------------------------------------------------------------


def test_samples_cover_every_type() -> None:
    assert set(SAMPLE_PAYLOADS) == set(EVENT_TYPES)
    assert set(INVALID_PAYLOADS) == set(EVENT_TYPES)


@pytest.mark.parametrize("kind", EVENT_TYPES)
def test_sample_of_every_type_validates(kind: str) -> None:
    body = make_event(kind)
    event = parse_event(body)
    assert event_type(event) == kind
    assert str(event.event_id) == body["event_id"]
    assert event.account_id == (None if kind in ORGANISATION_TYPES else "acme-kr")
    dumped = dump_event(event)
    assert dumped["type"] == kind
    assert dumped["payload"].keys() == SAMPLE_PAYLOADS[kind].keys()
    assert isinstance(event_payload(event), PAYLOADS[kind])


@pytest.mark.parametrize("kind", EVENT_TYPES)
def test_invalid_payload_of_every_type_is_rejected_at_its_path(kind: str) -> None:
    payload, expected = INVALID_PAYLOADS[kind]
    paths = paths_of(make_event(kind, payload=payload))
    assert expected in paths
    # Only the payload is broken, so no envelope field may be blamed.
    assert all(p.startswith("payload.") for p in paths), paths


# --- envelope -------------------------------------------------------------------------------


def test_naive_occurred_at_is_rejected() -> None:
    assert paths_of(make_event(occurred_at="2026-11-20T10:00:00")) == ["occurred_at"]


def test_occurred_at_is_normalised_to_utc() -> None:
    event = parse_event(make_event(occurred_at="2026-11-20T10:00:00.123456+09:00"))
    assert event.occurred_at == datetime(2026, 11, 20, 1, 0, 0, 123456, tzinfo=UTC)
    assert event.occurred_at.utcoffset() is not None
    assert event.occurred_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert dump_event(event)["occurred_at"] == "2026-11-20T01:00:00.123456Z"


@pytest.mark.parametrize("field", ["foo", "received_by", "Type"])
def test_unknown_envelope_field_is_forbidden(field: str) -> None:
    errors = errors_of(make_event(**{field: "x"}))
    assert [(e["path"], e["kind"]) for e in errors] == [(field, "extra_forbidden")]


def test_unknown_field_in_actor_is_forbidden() -> None:
    body = make_event()
    body["actor"]["nickname"] = "x"
    errors = errors_of(body)
    assert [(e["path"], e["kind"]) for e in errors] == [("actor.nickname", "extra_forbidden")]


def test_unknown_type_names_every_allowed_type() -> None:
    errors = errors_of(make_event(type="sales.lunch_eaten"))
    assert [e["path"] for e in errors] == ["type"]
    for kind in EVENT_TYPES:
        assert kind in errors[0]["problem"]


def test_missing_type_is_reported_at_type() -> None:
    body = make_event()
    del body["type"]
    errors = errors_of(body)
    assert [e["path"] for e in errors] == ["type"]
    for kind in EVENT_TYPES:
        assert kind in errors[0]["problem"]


@pytest.mark.parametrize("account_id", ["", "a" * 129])
def test_account_id_length_is_bounded(account_id: str) -> None:
    assert paths_of(make_event(account_id=account_id)) == ["account_id"]


def test_account_id_of_128_chars_is_accepted() -> None:
    assert parse_event(make_event(account_id="a" * 128)).account_id == "a" * 128


def test_summary_of_1000_korean_characters_is_accepted() -> None:
    summary = "가" * 1000
    assert len(summary.encode()) == 3000
    assert parse_event(make_event(summary=summary)).summary == summary


def test_summary_of_1001_korean_characters_is_rejected() -> None:
    assert paths_of(make_event(summary="가" * 1001)) == ["summary"]


@pytest.mark.parametrize("kind", [t for t in EVENT_TYPES if t.split(".", 1)[0] in TYPE_DEPARTMENTS])
def test_department_must_match_a_department_prefixed_type(kind: str) -> None:
    prefix = kind.split(".", 1)[0]
    other = next(d for d in DEFAULT_DEPARTMENTS if d != prefix)
    body = make_event(kind)
    body["actor"]["department"] = other
    errors = errors_of(body)
    assert [e["path"] for e in errors] == ["actor.department"]
    assert prefix in errors[0]["problem"]
    assert other in errors[0]["problem"]


@pytest.mark.parametrize(
    "kind",
    ["account.registered", "commitment.made", "commitment.fulfilled", "commitment.cancelled"],
)
@pytest.mark.parametrize("department", DEFAULT_DEPARTMENTS)
def test_unprefixed_types_accept_any_department(kind: str, department: str) -> None:
    body = make_event(kind)
    body["actor"]["department"] = department
    assert parse_event(body, DEFAULT_DEPARTMENTS).actor.department == department


def test_event_id_is_optional() -> None:
    body = make_event()
    del body["event_id"]
    assert parse_event(body).event_id is None


@pytest.mark.parametrize("event_id", ["abc", "1234", "", 123])
def test_event_id_must_be_a_uuid(event_id: Any) -> None:
    assert paths_of(make_event(event_id=event_id)) == ["event_id"]


def test_event_id_is_parsed_as_uuid() -> None:
    given = uuid.uuid4()
    assert parse_event(make_event(event_id=str(given).upper())).event_id == given


def test_schema_version_defaults_to_1() -> None:
    event = parse_event(make_event())
    assert event.schema_version == 1
    assert dump_event(event)["schema_version"] == 1


@pytest.mark.parametrize("version", [0, 2])
def test_unsupported_schema_version_is_rejected(version: int) -> None:
    assert paths_of(make_event(schema_version=version)) == ["schema_version"]


def test_client_sent_position_is_rejected() -> None:
    errors = errors_of(make_event(position={"partition": 0, "offset": 1}))
    assert [(e["path"], e["kind"]) for e in errors] == [("position", "extra_forbidden")]


@pytest.mark.parametrize("body", [[make_event()], "event", 7, None])
def test_a_non_object_body_must_be_a_json_object(body: Any) -> None:
    errors = errors_of(body)
    assert len(errors) == 1
    assert "JSON object" in errors[0]["problem"]


def test_related_account_ids_must_not_repeat_account_id() -> None:
    body = make_event(related_account_ids=["acme-jp", "acme-kr"])
    assert paths_of(body) == ["related_account_ids"]


def test_related_account_ids_other_accounts_are_accepted() -> None:
    event = parse_event(make_event(related_account_ids=["acme-jp", "acme-us"]))
    assert event.related_account_ids == ["acme-jp", "acme-us"]


def test_korean_text_round_trips_exactly() -> None:
    body = make_event("leadership.meeting_held", summary="고객 만족도 — 「개선」 필요 😀")
    dumped = dump_event(parse_event(body))
    assert dumped["summary"] == "고객 만족도 — 「개선」 필요 😀"
    assert dumped["actor"]["name"] == "박영희"
    assert dumped["contacts"][0]["name"] == "이민수"
    assert dumped["payload"] == SAMPLE_PAYLOADS["leadership.meeting_held"]
    assert dump_event(parse_event(dumped)) == dumped


def test_dump_drops_none_fields() -> None:
    body = make_event("sales.email_sent", summary=None)
    assert "summary" not in dump_event(parse_event(body))
    assert "recorded_at" not in dump_event(parse_event(body))


# --- JSON schemas ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schemas() -> dict[str, Any]:
    return event_json_schemas()


def test_one_json_schema_per_type(schemas: dict[str, Any]) -> None:
    assert list(schemas) == list(EVENT_TYPES)
    for kind, schema in schemas.items():
        assert schema["properties"]["type"]["const"] == kind


@pytest.mark.parametrize("kind", EVENT_TYPES)
def test_json_schema_forbids_additional_properties(schemas: dict[str, Any], kind: str) -> None:
    schema = schemas[kind]
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert "position" not in schema["properties"]


# --- storable input: date-time range, nesting depth, NUL ------------------------------------

DATETIME_FIELDS = [
    ("sales.meeting_held", "occurred_at"),
    ("sales.meeting_held", "recorded_at"),
    ("commitment.made", "payload.due_at"),
    ("sales.proposal_sent", "payload.valid_until"),
]


def with_datetime(kind: str, path: str, value: str) -> dict[str, Any]:
    body = make_event(kind)
    if path.startswith("payload."):
        body["payload"][path.removeprefix("payload.")] = value
    else:
        body[path] = value
    return body


def datetime_at(event: Any, path: str) -> datetime:
    holder = event.payload if path.startswith("payload.") else event
    value: datetime = getattr(holder, path.removeprefix("payload."))
    return value


@pytest.mark.parametrize(("kind", "path"), DATETIME_FIELDS)
@pytest.mark.parametrize(
    "moment",
    [
        "9999-12-31T23:59:59-14:00",  # year 10000 in UTC
        "9999-12-31T23:30:00-01:00",
        "0001-01-01T00:00:00+01:00",  # year 0 in UTC
        "0001-01-01T13:59:59.999999+14:00",
    ],
)
def test_every_datetime_outside_years_1_to_9999_in_utc_is_rejected(
    kind: str, path: str, moment: str
) -> None:
    errors = errors_of(with_datetime(kind, path, moment))
    assert [(e["path"], e["kind"]) for e in errors] == [(path, "datetime_out_of_range")]
    assert errors[0]["problem"] == "must lie within years 0001-9999 once converted to UTC"


@pytest.mark.parametrize(("kind", "path"), DATETIME_FIELDS)
@pytest.mark.parametrize(
    ("moment", "utc"),
    [
        ("9999-12-31T09:59:59.999999-14:00", datetime(9999, 12, 31, 23, 59, 59, 999999, UTC)),
        ("0001-01-01T14:00:00+14:00", datetime(1, 1, 1, tzinfo=UTC)),
        ("2026-11-30T18:00:00+09:00", datetime(2026, 11, 30, 9, tzinfo=UTC)),
    ],
)
def test_every_datetime_is_normalised_to_utc_up_to_the_edges(
    kind: str, path: str, moment: str, utc: datetime
) -> None:
    event = parse_event(with_datetime(kind, path, moment))
    value = datetime_at(event, path)
    assert (value, value.utcoffset()) == (utc, timedelta(0))
    dumped = dump_event(event)
    text = dumped["payload"][path[8:]] if path.startswith("payload.") else dumped[path]
    assert text == utc.isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(("kind", "path"), DATETIME_FIELDS)
def test_every_datetime_must_carry_a_timezone(kind: str, path: str) -> None:
    errors = errors_of(with_datetime(kind, path, "2026-11-30T18:00:00"))
    assert [(e["path"], e["kind"]) for e in errors] == [(path, "timezone_aware")]


def test_utc_datetime_type_on_its_own() -> None:
    adapter: TypeAdapter[datetime] = TypeAdapter(UtcDatetime)
    kst = adapter.validate_python("2026-11-20T10:00:00+09:00")
    assert (kst, kst.tzinfo) == (datetime(2026, 11, 20, 1, tzinfo=UTC), UTC)
    with pytest.raises(ValidationError) as info:
        adapter.validate_python("9999-12-31T23:59:59-14:00")
    assert [e["type"] for e in info.value.errors()] == ["datetime_out_of_range"]
    assert adapter.json_schema() == {"format": "date-time", "type": "string"}


def nested(levels: int, leaf: Any = "x") -> Any:
    """``leaf`` inside ``levels`` lists (built without recursion)."""
    value = leaf
    for _ in range(levels):
        value = [value]
    return value


def with_notes(notes: Any) -> dict[str, Any]:
    return make_event(payload={"subject": "분기 리뷰", "notes": notes})


def test_nesting_up_to_max_depth_reaches_the_usual_validation() -> None:
    # envelope (1) > payload (2) > 30 lists: the deepest list sits at MAX_DEPTH exactly
    assert MAX_DEPTH == 32
    errors = errors_of(with_notes(nested(MAX_DEPTH - 2)))
    assert [(e["path"], e["kind"]) for e in errors] == [("payload.notes", "string_type")]


# 10,000 is ten times Python's default recursion limit: the walk must not recurse.
@pytest.mark.parametrize("levels", [MAX_DEPTH - 1, 700, 10_000])
def test_nesting_deeper_than_max_depth_is_one_error_at_the_first_container_too_deep(
    levels: int,
) -> None:
    errors = errors_of(with_notes(nested(levels)))
    too_deep = ".".join(["payload", "notes"] + ["0"] * (MAX_DEPTH - 2))
    assert errors == [
        {
            "path": too_deep,
            "problem": "must not nest objects and lists more than 32 levels deep",
            "kind": "nested_too_deeply",
        }
    ]


def test_deep_objects_count_like_deep_lists_and_the_first_in_document_order_is_named() -> None:
    deep_object: Any = "x"
    for _ in range(MAX_DEPTH):
        deep_object = {"k": deep_object}
    body = make_event("leadership.meeting_held")
    body["payload"]["heard"] = ["fine", nested(3), deep_object, nested(MAX_DEPTH)]
    errors = errors_of(body)
    expected = ".".join(["payload", "heard", "2"] + ["k"] * (MAX_DEPTH - 3))
    assert [(e["path"], e["kind"]) for e in errors] == [(expected, "nested_too_deeply")]


def test_nul_is_reported_in_values_and_keys_in_document_order() -> None:
    """Document order, an object's keys before what its values hold."""
    body = make_event("leadership.meeting_held", summary="요약\x00")
    body["payload"]["heard"] = ["ok", "확장\x00계획"]
    body["payload"]["nul\x00key"] = "x"
    body["contacts"][0]["name"] = "\x00"
    errors = errors_of(body)
    assert [(e["path"], e["kind"]) for e in errors] == [
        ("contacts.0.name", "nul_character"),
        ("summary", "nul_character"),
        ("payload.nul\x00key", "nul_character"),
        ("payload.heard.1", "nul_character"),
    ]


def test_nul_deep_inside_a_wide_value_is_found_without_recursion() -> None:
    body = make_event("leadership.meeting_held")
    body["payload"]["heard"] = [f"항목 {i}" for i in range(50_000)] + [
        nested(MAX_DEPTH - 4, "\x00")
    ]
    errors = errors_of(body)
    expected = ".".join(["payload", "heard", "50000"] + ["0"] * (MAX_DEPTH - 4))
    assert [(e["path"], e["kind"]) for e in errors] == [(expected, "nul_character")]


def test_every_type_has_an_example_that_the_contract_accepts() -> None:
    found = examples()
    assert set(found) == set(EVENT_TYPES)
    for kind, body in found.items():
        assert parse_event(body, DEFAULT_DEPARTMENTS).type == kind  # type: ignore[attr-defined]


@pytest.mark.parametrize("amount", ["Infinity", "NaN", "1e400", 1e16])
def test_amounts_must_be_finite_and_bounded(amount: object) -> None:
    payload = {"order_id": "O-1", "amount": amount, "currency": "KRW"}
    assert paths_of(make_event("sales.order_placed", payload=payload)) == ["payload.amount"]


def test_a_renewal_amount_needs_its_currency() -> None:
    payload = {"contract_id": "K-1", "renews_at": "2027-01-01T00:00:00Z", "amount": 5}
    assert paths_of(make_event("success.renewal_scheduled", payload=payload)) == [
        "payload.currency"]  # fmt: skip


# --- organisation events ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ORGANISATION_TYPES)
@pytest.mark.parametrize("field,value", [
    ("account_id", "acme-kr"), ("related_account_ids", ["b"]),
    ("contacts", [{"name": "x"}]), ("participants", []),
])  # fmt: skip
def test_an_organisation_event_names_no_customer(kind: str, field: str, value: Any) -> None:
    errors = errors_of(make_event(kind, **{field: value}))
    assert len(errors) == 1, errors
    assert errors[0]["path"] == field
    problem = f"'{kind}' is about our organisation, not a customer: leave out {field}"
    assert errors[0]["problem"] == problem


@pytest.mark.parametrize("kind", [t for t in EVENT_TYPES if t not in ORGANISATION_TYPES])
def test_a_customer_event_needs_its_account(kind: str) -> None:
    body = make_event(kind)
    del body["account_id"]
    assert paths_of(body) == ["account_id"]


def test_organisation_events_are_keyed_by_what_they_are_about() -> None:
    registered = parse_event(make_event("employee.registered"))
    target = parse_event(make_event("kpi.target_set"))
    sale = parse_event(make_event("sales.call_logged"))
    assert registered.is_organisation and target.is_organisation and not sale.is_organisation
    assert registered.partition_key() == "employee:u-choi"
    assert target.partition_key() == "kpi-target:department:sales"
    assert sale.partition_key() == "acme-kr"
