"""Timeline cursors and the microsecond sort key."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.core.readmodels.timeline import BadCursor, decode_cursor, encode_cursor, to_micros

KST = timezone(timedelta(hours=9))
NST = timezone(timedelta(hours=-3, minutes=-30))


def raw_cursor(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).decode().rstrip("=")


@pytest.mark.parametrize(
    "key",
    [
        (0, 0, 0),
        (1_795_000_000_123_456, 3, 17),
        (-86_400_000_001, 0, 2**40),
        (2**62, 2**31 - 1, 2**63 - 1),
    ],
)
def test_cursor_round_trips(key: tuple[int, int, int]) -> None:
    cursor = encode_cursor(key)
    assert decode_cursor(cursor) == key
    assert "=" not in cursor
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_decoded_cursor_is_a_tuple_of_ints() -> None:
    decoded = decode_cursor(encode_cursor((5, 6, 7)))
    assert type(decoded) is tuple
    assert [type(x) for x in decoded] == [int, int, int]


@pytest.mark.parametrize(
    "cursor",
    ["", "=", "!!!!", "not a cursor", "커서", "abc", "%%%%", raw_cursor(b"\xff\xfe\x00")],
)
def test_garbage_cursor_is_rejected(cursor: str) -> None:
    with pytest.raises(BadCursor, match="next_cursor"):
        decode_cursor(cursor)


@pytest.mark.parametrize("value", [[], [1], [1, 2], [1, 2, 3, 4]])
def test_cursor_of_wrong_arity_is_rejected(value: list[int]) -> None:
    with pytest.raises(BadCursor):
        decode_cursor(raw_cursor(json.dumps(value).encode()))


@pytest.mark.parametrize(
    "value",
    [
        [1, 2, "3"],
        [1.0, 2, 3],
        [1, 2.5, 3],
        [1, None, 3],
        [[1], 2, 3],
        {"a": 1, "b": 2, "c": 3},
        "abc",
        123,
        None,
    ],
)
def test_cursor_with_non_int_values_is_rejected(value: object) -> None:
    with pytest.raises(BadCursor):
        decode_cursor(raw_cursor(json.dumps(value).encode()))


@pytest.mark.parametrize("value", [[True, 2, 3], [1, False, 3], [1, 2, True]])
def test_cursor_with_bool_values_is_rejected(value: list[object]) -> None:
    with pytest.raises(BadCursor):
        decode_cursor(raw_cursor(json.dumps(value).encode()))


def test_bad_cursor_is_a_value_error() -> None:
    assert issubclass(BadCursor, ValueError)


def test_deeply_nested_cursor_is_rejected() -> None:
    with pytest.raises(BadCursor):
        decode_cursor(raw_cursor(b"[" * 1000))


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(1970, 1, 1, tzinfo=UTC), 0),
        (datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC), 1),
        (datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), -1),
        (datetime(1970, 1, 1, 9, 0, 0, 1, tzinfo=KST), 1),
        (datetime(1970, 1, 1, 8, 59, 59, 999_999, tzinfo=KST), -1),
        (datetime(1900, 1, 1, 0, 0, 0, 123_456, tzinfo=UTC), -2_208_988_799_876_544),
        (datetime(2026, 11, 20, 10, 0, 0, 654_321, tzinfo=KST), 1_795_136_400_654_321),
        (datetime(2026, 11, 20, 0, 0, 0, 1, tzinfo=NST), 1_795_145_400_000_001),
        (datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), 253_402_300_799_999_999),
    ],
)
def test_to_micros_is_exact(moment: datetime, expected: int) -> None:
    assert to_micros(moment) == expected


def test_to_micros_is_the_same_instant_in_every_zone() -> None:
    utc = datetime(1965, 6, 15, 12, 34, 56, 789_012, tzinfo=UTC)
    values = {
        to_micros(utc.astimezone(tz)) for tz in (UTC, KST, NST, timezone(timedelta(hours=14)))
    }
    assert values == {to_micros(utc)}
    assert to_micros(utc) < 0


def test_to_micros_preserves_order_at_microsecond_resolution() -> None:
    base = datetime(1969, 12, 31, 23, 59, 59, 999_998, tzinfo=KST)
    moments = [base + timedelta(microseconds=i) for i in range(5)]
    assert [to_micros(m) - to_micros(base) for m in moments] == [0, 1, 2, 3, 4]
