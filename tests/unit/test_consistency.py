from __future__ import annotations

import pytest

from services.core.consistency import LogEnds, parse_token, reached, token_for
from services.core.ports import LogUnavailable


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


def test_log_ends_do_not_ask_a_log_that_just_failed_until_the_pause_is_over() -> None:
    now = [100.0]
    answers: list[dict[int, int] | Exception] = [LogUnavailable("down"), {0: 7}]
    asked = []

    def read() -> dict[int, int]:
        asked.append(now[0])
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    ends = LogEnds(read, retry_after_s=5, clock=lambda: now[0])
    with pytest.raises(LogUnavailable, match="down"):
        ends.refresh()
    now[0] = 104.9
    with pytest.raises(LogUnavailable, match="did not answer a moment ago"):
        ends.refresh()
    assert asked == [100.0]
    now[0] = 105.0
    ends.refresh()
    assert asked == [100.0, 105.0]
    assert ends.problem({0: 6}) is None
    assert ends.problem({0: 7}) == (
        "offset 7 of partition 0 is at or past the log's end (7): not a token of this log"
    )
