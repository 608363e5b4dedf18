"""The pure parts of the leaders' reports: business periods, CSV, KPI targets, voice items,
the roster's silence rule."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from starlette.requests import Request

from services.api.csv_export import csv_body, wants_csv
from services.core.codec import StoredEvent
from services.core.events import parse_event
from services.core.readmodels.reports import periods, roster
from services.core.readmodels.reports.targets import Target, Targets
from services.core.view_rules import DAY_US, AsOf, Policy, _micros
from services.projections.reports import voice_items
from tests.samples import make_event

SEOUL = ZoneInfo("Asia/Seoul")


def us(text: str) -> int:
    return _micros(datetime.fromisoformat(text))


def at(now: str, tz: ZoneInfo = SEOUL, **policy: Any) -> AsOf:
    return AsOf(us(now), tz, Policy(**policy))


# -- periods -------------------------------------------------------------------------------------


def test_weeks_start_on_monday_local_midnight() -> None:
    found = periods.spans(us("2026-11-18T00:00:00+09:00"), us("2026-12-02T00:00:00+09:00"),
                          "week", at("2026-11-30T00:00:00Z"))  # fmt: skip
    assert [s.label for s in found] == ["2026-11-16", "2026-11-23", "2026-11-30"]
    assert found[0].start_us == us("2026-11-16T00:00:00+09:00")
    assert found[-1].end_us == us("2026-12-07T00:00:00+09:00")


def test_the_first_day_of_the_week_is_configurable() -> None:
    sunday = at("2026-11-30T00:00:00Z", week_start=6)
    (span,) = periods.spans(us("2026-11-18T12:00:00+09:00"), us("2026-11-18T13:00:00+09:00"),
                            "week", sunday)  # fmt: skip
    assert span.label == "2026-11-15"  # a Sunday
    assert span.length_us == 7 * DAY_US


def test_months_follow_the_business_calendar() -> None:
    # 2026-11-30T20:00Z is already December in Seoul.
    found = periods.spans(us("2026-11-30T20:00:00Z"), us("2027-01-15T00:00:00Z"), "month",
                          at("2027-01-15T00:00:00Z"))  # fmt: skip
    assert [s.label for s in found] == ["2026-12", "2027-01"]
    assert found[0].start_us == us("2026-12-01T00:00:00+09:00")


def test_a_week_across_a_clock_change_is_seven_local_days() -> None:
    berlin = ZoneInfo("Europe/Berlin")  # summer time ended on 2026-10-25
    (span,) = periods.spans(us("2026-10-21T12:00:00+02:00"), us("2026-10-21T13:00:00+02:00"),
                            "week", at("2026-11-01T00:00:00Z", berlin))  # fmt: skip
    assert span.start_us == us("2026-10-19T00:00:00+02:00")
    assert span.end_us == us("2026-10-26T00:00:00+01:00")
    assert span.length_us == 7 * DAY_US + 3_600_000_000  # one hour longer


def test_too_many_periods_are_refused() -> None:
    with pytest.raises(periods.TooManyPeriods, match="more than 106 weeks"):
        periods.spans(us("2020-01-01T00:00:00Z"), us("2026-01-01T00:00:00Z"), "week",
                      at("2026-01-01T00:00:00Z"))  # fmt: skip


def test_the_last_month_of_the_calendar_ends_at_its_end() -> None:
    (span,) = periods.spans(us("9999-12-30T00:00:00Z"), us("9999-12-31T00:00:00Z"), "month",
                            at("2026-01-01T00:00:00Z", ZoneInfo("UTC")))  # fmt: skip
    assert span.label == "9999-12" and span.end_us > us("9999-12-31T00:00:00Z")


def test_change_against_the_previous_window() -> None:
    assert periods.previous(10, 15) == (5, 10)
    assert periods.change(6, 4) == {"previous": 4, "change": 2, "change_pct": 50.0}
    assert periods.change(3, 0) == {"previous": 0, "change": 3, "change_pct": None}


# -- CSV -----------------------------------------------------------------------------------------


def _request(accept: str) -> Request:
    return Request({"type": "http", "headers": [(b"accept", accept.encode())]})


def test_csv_is_asked_for_by_format_or_accept() -> None:
    assert wants_csv(_request("text/csv"), None)
    assert wants_csv(_request("application/json"), "csv")
    assert not wants_csv(_request("text/csv"), "json")  # the parameter wins
    assert not wants_csv(_request("*/*"), None)


def test_csv_has_a_bom_quotes_and_no_formulas() -> None:
    body = csv_body((["name", "n", "ok", "note", "list"], [
        ["한빛, 전자", 3, True, '=HYPERLINK("http://x")', ["a", "b"]],
        ["-5 불만", -5, None, "@SUM(A1)", {"k": 1}],
    ]))  # fmt: skip
    assert body.startswith(b"\xef\xbb\xbf")
    lines = body.decode("utf-8-sig").split("\r\n")
    assert lines[0] == "name,n,ok,note,list"
    assert lines[1] == '"한빛, 전자",3,true,"\'=HYPERLINK(""http://x"")","[""a"", ""b""]"'
    assert lines[2] == '\'-5 불만,-5,,\'@SUM(A1),"{""k"": 1}"'  # numbers stay numbers


# -- targets -------------------------------------------------------------------------------------


def _targets() -> Targets:
    def target(value: float, day: str) -> Target:
        return Target(value, us(f"2026-11-{day}T00:00:00Z"), f"e-{day}", {"id": "ceo"})

    return Targets({("accounts_touched", "sales"): [target(3, "02"), target(5, "16")],
                    ("complaints_opened", "support"): [target(2, "02")]})  # fmt: skip


def test_the_target_in_force_is_the_newest_set_at_or_before_the_moment() -> None:
    t = _targets()
    assert t.at("accounts_touched", "sales", us("2026-11-01T00:00:00Z")) is None
    assert t.at("accounts_touched", "sales", us("2026-11-16T00:00:00Z")).target == 5  # type: ignore[union-attr]
    assert t.at("accounts_touched", "sales", us("2026-11-15T23:59:59Z")).target == 3  # type: ignore[union-attr]
    assert t.at("accounts_touched", None, us("2026-11-20T00:00:00Z")) is None


def test_a_target_is_met_above_it_or_below_it_where_less_is_better() -> None:
    t, moment = _targets(), us("2026-11-20T00:00:00Z")
    assert t.judge("accounts_touched", "sales", 5, moment) == {
        "value": 5,
        "target": 5,
        "met": True,
        "target_event_id": "e-16",
    }
    assert t.judge("accounts_touched", "sales", 4, moment)["met"] is False
    assert t.judge("complaints_opened", "support", 2, moment)["met"] is True
    assert t.judge("complaints_opened", "support", 3, moment)["met"] is False
    assert t.judge("complaints_opened", "support", None, moment)["met"] is None
    assert t.judge("csat_average", "support", 4.0, moment) == {
        "value": 4.0,
        "target": None,
        "met": None,
    }


# -- voice items ---------------------------------------------------------------------------------


def _stored(kind: str, payload: dict[str, Any]) -> StoredEvent:
    event = parse_event(make_event(kind, payload=payload))
    return StoredEvent(event, str(event.event_id), 0, 0, datetime(2026, 11, 20, tzinfo=UTC))


@pytest.mark.parametrize("kind,payload,items", [
    ("support.ticket_opened", {"ticket_id": "T", "subject": "청구 오류", "category": "Billing",
                               "severity": "high", "complaint": True},
     [("complaint", "Billing", "청구 오류", None)]),
    ("support.ticket_opened", {"ticket_id": "T", "subject": "문의", "category": "howto",
                               "severity": "low"}, []),  # not a complaint
    ("support.csat_recorded", {"score": 2, "comment": "느림"}, [("low_csat", None, "느림", 2)]),
    ("support.csat_recorded", {"score": 3, "comment": "보통"}, []),
    ("success.review_held", {"subject": "QBR", "risks": ["예산 삭감", "챔피언 이직"]},
     [("success_risk", None, "예산 삭감", None), ("success_risk", None, "챔피언 이직", None)]),
    ("customer.need_identified", {"need_id": "N", "text": "SSO", "category": "security"},
     [("need", "security", "SSO", None)]),
    ("success.churned", {"reason": "경쟁사 전환"}, [("churn_reason", None, "경쟁사 전환", None)]),
    ("leadership.meeting_held", {"subject": "만찬", "heard": ["확장"], "concerns": ["가격"],
                                 "complaints": ["장애"]},
     [("executive_concern", None, "가격", None), ("executive_complaint", None, "장애", None)]),
    ("sales.meeting_held", {"subject": "s", "next_steps": "견적 송부"},
     [("next_step", None, "견적 송부", None)]),
    ("sales.meeting_held", {"subject": "s"}, []),
    ("sales.call_logged", {"subject": "s"}, []),
])  # fmt: skip
def test_what_the_customer_said(kind: str, payload: dict[str, Any], items: list[Any]) -> None:
    assert list(voice_items(_stored(kind, payload))) == items


# -- the roster's habit keeper -------------------------------------------------------------------


def test_silent_means_no_contact_for_the_configured_weeks() -> None:
    now = at("2026-11-30T00:00:00Z", silent_weeks=2)
    person = roster.Employee("emp-park", department="sales")
    assert roster.is_silent(person, now)  # never
    person.last_contact = {"at": "", "at_us": now.now_us - 14 * DAY_US, "event_id": "e",
                           "account_id": "a"}  # fmt: skip
    assert not roster.is_silent(person, now)  # exactly two weeks ago still counts
    person.last_contact["at_us"] -= 1
    assert roster.is_silent(person, now)
    assert roster.habit(person, 0, now) is None  # neither an executive nor an owner
    flag = roster.habit(person, 1, now)
    assert flag is not None and flag["silent"] and flag["days_since_contact"] == 14
    person.active = False
    assert roster.habit(person, 1, now) is None


def test_an_executive_is_flagged_or_in_leadership() -> None:
    assert roster.Employee("a", department="leadership").executive
    assert not roster.Employee("b", department="leadership", executive_flag=False).executive
    assert roster.Employee("c", department="sales", executive_flag=True).executive
    assert not roster.Employee("d", department="sales").executive


def test_the_commit_bound_counts_reportfacts_rows_per_person_and_account() -> None:
    """No contacts, 101 accounts, 21 people: the contact fan-out check at ingest lets it
    through, and ReportFacts writes a touch and a first-touch row per person and account —
    the runner's row bound must see them, or 1,000 such events would make one huge commit."""
    from services.projections.chunks import _rows
    from services.projections.reports import _touch_rows

    people = [{"id": f"emp-{i}", "department": "sales"} for i in range(20)]
    event = parse_event(make_event(
        "sales.call_logged", contacts=[], participants=people,
        related_account_ids=[f"rel-{i}" for i in range(100)]))  # fmt: skip
    stored = StoredEvent(event, str(event.event_id), 0, 0, datetime(2026, 11, 20, tzinfo=UTC))
    touches = len(_touch_rows(stored, 0))
    assert touches == 101 * 21
    assert _rows(stored) >= 2 * touches + 101 * 2  # touches, first touches, timeline, directory
