from __future__ import annotations

import pytest

from services.core.consistency import parse_token, reached, token_for


def test_token_keeps_the_highest_offset_per_partition() -> None:
    token = token_for([(3, 5), (0, 9), (3, 2), (11, 0)])
    assert token == "v1.0-9,3-5,11-0"
    assert parse_token(token) == {0: 9, 3: 5, 11: 0}


def test_an_empty_write_has_an_empty_token() -> None:
    assert token_for([]) == "v1."
    assert parse_token("v1.") == {}


@pytest.mark.parametrize("bad", ["", "v2.1-1", "v1.1", "v1.a-1", "v1.1--1", "x" * 5000])
def test_foreign_tokens_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="consistency token"):
        parse_token(bad)


def test_reached_needs_every_partition_past_its_offset() -> None:
    assert reached({0: 10, 1: 4}, {0: 9, 1: 3})
    assert not reached({0: 10, 1: 3}, {0: 9, 1: 3})
    assert not reached({0: 10}, {1: 0})
    assert reached({}, {})
