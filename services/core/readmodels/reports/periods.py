"""Report periods: weeks and months of the business calendar (time zone, first day of the week).

A span is ``[start_us, end_us)`` in UTC epoch microseconds, from local midnight to local
midnight, so a week is 7 business days whatever daylight saving time does in between.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from services.core.view_rules import AsOf, _micros, _utc

Period = Literal["week", "month"]
MAX_SPANS = 106
"""At most this many periods per report (two years of weeks)."""


class TooManyPeriods(ValueError):
    pass


@dataclass(frozen=True)
class Span:
    start_us: int
    end_us: int
    label: str  # 2026-11-23 (a week: its first day) or 2026-11 (a month)

    @property
    def length_us(self) -> int:
        return self.end_us - self.start_us


def _local_midnight(day: date, tz: ZoneInfo) -> int:
    return _micros(datetime.combine(day, time(0), tzinfo=tz))


def _first_day(day: date, period: Period, week_start: int) -> date:
    if period == "month":
        return day.replace(day=1)
    return day - timedelta(days=(day.weekday() - week_start) % 7)


def _next_first_day(first: date, period: Period) -> date:
    if period == "week":
        return first + timedelta(days=7)
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def span_of(moment_us: int, period: Period, as_of: AsOf) -> Span:
    """The period that holds ``moment_us``."""
    day = _utc(moment_us).astimezone(as_of.tz).date()
    first = _first_day(day, period, as_of.policy.week_start)
    return _span(first, period, as_of.tz)


def _span(first: date, period: Period, tz: ZoneInfo) -> Span:
    label = first.isoformat() if period == "week" else first.strftime("%Y-%m")
    try:
        end = _local_midnight(_next_first_day(first, period), tz)
    except (OverflowError, ValueError):  # the period holding 9999-12-31
        end = _micros(datetime.max.replace(tzinfo=ZoneInfo("UTC")))
    return Span(_local_midnight(first, tz), end, label)


def spans(from_us: int, to_us: int, period: Period, as_of: AsOf) -> list[Span]:
    """The periods that meet ``[from_us, to_us)``, oldest first: the first is the one holding
    ``from_us``, the last the one holding the last moment before ``to_us``. Raises
    ``TooManyPeriods`` past ``MAX_SPANS``."""
    found = [span_of(from_us, period, as_of)]
    while found[-1].end_us < to_us:
        if len(found) >= MAX_SPANS:
            raise TooManyPeriods(f"more than {MAX_SPANS} {period}s; choose a shorter range")
        first = _utc(found[-1].end_us).astimezone(as_of.tz).date()
        found.append(_span(first, period, as_of.tz))
    return found


def previous(from_us: int, to_us: int) -> tuple[int, int]:
    """The window of the same length just before ``[from_us, to_us)``: what a report compares
    with."""
    return from_us - (to_us - from_us), from_us


def change(now: float | int, before: float | int) -> dict[str, float | int | None]:
    """``now`` beside ``before``: the difference, and the change in percent (None from 0)."""
    pct = None if before == 0 else round((now - before) * 100 / before, 1)
    return {"previous": before, "change": round(now - before, 4), "change_pct": pct}
