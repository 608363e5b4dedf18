"""The one-voice view's rules (services/core/view_rules.py) against hand-computed expectations.

The clock is fixed: NOW = 2026-11-23T01:00:00Z, which is 10:00 on 2026-11-23 in Asia/Seoul
(UTC+9, no DST). Window starts below are worked out by hand and written as literals:

- Seoul, 1 day:   2026-11-23T00:00+09:00 = 2026-11-22T15:00Z = 1_795_359_600 s
- Seoul, 7 days:  2026-11-17T00:00+09:00 = 2026-11-16T15:00Z = 1_794_841_200 s
- Seoul, 30 days: 2026-10-25T00:00+09:00 = 2026-10-24T15:00Z = 1_792_854_000 s
- Seoul, 90 days: 2026-08-26T00:00+09:00 = 2026-08-25T15:00Z = 1_787_670_000 s
- UTC, 1 day:     2026-11-23T00:00Z = 1_795_392_000 s
- UTC, 7 days:    2026-11-17T00:00Z = 1_794_873_600 s
- UTC, 30 days:   2026-10-25T00:00Z = 1_792_886_400 s
- UTC, 90 days:   2026-08-26T00:00Z = 1_787_702_400 s
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.core.view_rules import (
    ActorTouches,
    AsOf,
    Commitment,
    Facts,
    Handoff,
    Policy,
    Ticket,
    conflicts,
    executive_items,
    is_overdue,
    is_stale,
    live_offers,
    offer_json,
    open_commitments,
    open_handoffs,
    open_tickets,
    recurrences_after_fix,
    recurring_complaints,
    single_threaded,
)
from tests.viewfacts import commitment, exec_touch, message, ticket

SEOUL = ZoneInfo("Asia/Seoul")
UTC_ZONE = ZoneInfo("UTC")
HOUR_US = 3_600_000_000
DAY_US = 86_400_000_000

NOW = 1_795_395_600_000_000  # 2026-11-23T01:00:00Z = 2026-11-23T10:00+09:00
SEOUL_SINCE_1 = 1_795_359_600_000_000  # 2026-11-22T15:00Z
SEOUL_SINCE_7 = 1_794_841_200_000_000  # 2026-11-16T15:00Z
SEOUL_SINCE_30 = 1_792_854_000_000_000  # 2026-10-24T15:00Z
SEOUL_SINCE_90 = 1_787_670_000_000_000  # 2026-08-25T15:00Z
UTC_SINCE_1 = 1_795_392_000_000_000  # 2026-11-23T00:00Z
UTC_SINCE_7 = 1_794_873_600_000_000  # 2026-11-17T00:00Z
UTC_SINCE_30 = 1_792_886_400_000_000  # 2026-10-25T00:00Z
UTC_SINCE_90 = 1_787_702_400_000_000  # 2026-08-26T00:00Z

AS_OF = AsOf(NOW, SEOUL)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def us(iso: str) -> int:
    """Epoch microseconds of an ISO timestamp, computed independently of view_rules."""
    return (datetime.fromisoformat(iso) - _EPOCH) // timedelta(microseconds=1)


# -- builders ----------------------------------------------------------------------------------


def ids(items: list[Any], attr: str) -> list[str]:
    return [getattr(x, attr) for x in items]


# -- the clock ---------------------------------------------------------------------------------


def test_clock_constants_are_what_the_comments_say() -> None:
    assert us("2026-11-23T01:00:00Z") == NOW
    assert us("2026-11-23T10:00:00+09:00") == NOW
    assert us("2026-11-16T15:00:00Z") == SEOUL_SINCE_7
    assert us("2026-11-17T00:00:00Z") == UTC_SINCE_7


@pytest.mark.parametrize(
    ("tz", "days", "start"),
    [
        (SEOUL, 1, SEOUL_SINCE_1),
        (SEOUL, 7, SEOUL_SINCE_7),
        (SEOUL, 30, SEOUL_SINCE_30),
        (SEOUL, 90, SEOUL_SINCE_90),
        (UTC_ZONE, 1, UTC_SINCE_1),
        (UTC_ZONE, 7, UTC_SINCE_7),
        (UTC_ZONE, 30, UTC_SINCE_30),
        (UTC_ZONE, 90, UTC_SINCE_90),
    ],
)
def test_since_is_local_midnight_days_minus_one_before_today(
    tz: ZoneInfo, days: int, start: int
) -> None:
    assert AsOf(NOW, tz).since(days) == start


def test_seven_day_window_depends_on_the_business_time_zone() -> None:
    event = 1_794_843_000_000_000  # 2026-11-16T15:30Z = 2026-11-17T00:30+09:00
    assert event == us("2026-11-16T15:30:00Z")
    assert AsOf(NOW, SEOUL).within(event, 7) is True
    assert AsOf(NOW, UTC_ZONE).within(event, 7) is False


def test_one_day_window_is_today_only() -> None:
    yesterday_late_kst = 1_795_359_599_000_000  # 2026-11-22T23:59:59+09:00
    today_early_kst = 1_795_359_600_000_000  # 2026-11-23T00:00:00+09:00
    assert AsOf(NOW, SEOUL).within(yesterday_late_kst, 1) is False
    assert AsOf(NOW, SEOUL).within(today_early_kst, 1) is True
    # In UTC today starts at 2026-11-23T00:00Z, so 2026-11-22T15:00Z is yesterday there.
    assert AsOf(NOW, UTC_ZONE).within(today_early_kst, 1) is False
    assert AsOf(NOW, UTC_ZONE).within(UTC_SINCE_1, 1) is True


def test_one_day_window_right_at_local_midnight_starts_at_now() -> None:
    midnight_kst = 1_795_359_600_000_000  # 2026-11-23T00:00+09:00
    as_of = AsOf(midnight_kst, SEOUL)
    assert as_of.since(1) == midnight_kst
    assert as_of.within(midnight_kst, 1) is True
    assert as_of.within(midnight_kst - 1, 1) is False


def test_window_start_uses_the_offset_in_force_at_that_midnight() -> None:
    # New York left DST on 2026-11-01. Now = 2026-11-03T12:00 EST (17:00Z); the 7-day window
    # starts 2026-10-28T00:00 EDT (UTC-4) = 2026-10-28T04:00Z, not 05:00Z.
    now = 1_793_725_200_000_000
    assert now == us("2026-11-03T17:00:00Z")
    assert AsOf(now, ZoneInfo("America/New_York")).since(7) == 1_793_160_000_000_000


@pytest.mark.parametrize(
    ("at", "inside"),
    [
        (SEOUL_SINCE_7, True),  # start is inclusive
        (SEOUL_SINCE_7 - 1, False),  # 1 µs before the start
        (NOW, True),  # now is inclusive
        (NOW + 1, False),  # 1 µs after now
        (None, False),
    ],
)
def test_within_boundaries(at: int | None, inside: bool) -> None:
    assert AS_OF.within(at, 7) is inside


@pytest.mark.parametrize(
    ("at", "past"), [(NOW, True), (NOW - 1, True), (NOW + 1, False), (None, False)]
)
def test_past(at: int | None, past: bool) -> None:
    assert AS_OF.past(at) is past


# -- commitments -------------------------------------------------------------------------------


def test_commitment_is_open_until_closed_and_closure_after_now_does_not_count() -> None:
    facts = Facts(
        commitments=[
            commitment("CM-3", made_us=NOW - 1 * DAY_US),
            commitment("CM-1", made_us=NOW - 5 * DAY_US, closed_us=NOW + 1),  # closed later
            commitment("CM-2", made_us=NOW - 4 * DAY_US, closed_us=NOW - DAY_US),  # closed
            commitment("CM-4", made_us=NOW - 3 * DAY_US, closed_us=NOW),  # closed exactly now
            commitment("CM-5", made_us=NOW + 1),  # made after now
            commitment("CM-6", made_us=None),
        ]
    )
    assert ids(open_commitments(facts, AS_OF), "commitment_id") == ["CM-1", "CM-3"]


def test_open_commitments_tie_on_time_orders_by_id() -> None:
    facts = Facts(commitments=[commitment("B", made_us=NOW), commitment("A", made_us=NOW)])
    assert ids(open_commitments(facts, AS_OF), "commitment_id") == ["A", "B"]


def test_commitment_is_overdue_exactly_at_due_time() -> None:
    due = 1_795_392_000_000_000  # 2026-11-23T00:00Z
    c = commitment("CM-77", made_us=due - 10 * DAY_US, due_us=due)
    assert is_overdue(c, AsOf(due, SEOUL)) is True
    assert is_overdue(c, AsOf(due - 1, SEOUL)) is False
    assert is_overdue(c, AsOf(due + 1, SEOUL)) is True


def test_commitment_without_due_is_never_overdue() -> None:
    c = commitment("CM-8", made_us=0, due_us=None)
    assert is_overdue(c, AsOf(NOW, SEOUL)) is False
    assert is_overdue(c, AsOf(NOW + 10_000 * DAY_US, SEOUL)) is False


# -- tickets -----------------------------------------------------------------------------------


def test_ticket_is_open_until_resolved() -> None:
    facts = Facts(
        tickets=[
            ticket("T-4", opened_us=NOW - 1 * DAY_US),
            ticket("T-1", opened_us=NOW - 9 * DAY_US, resolved_us=NOW - 2 * DAY_US),  # resolved
            ticket("T-2", opened_us=NOW - 8 * DAY_US, resolved_us=NOW + 1),  # resolved later
            ticket("T-3", opened_us=NOW - 7 * DAY_US, resolved_us=NOW),  # resolved exactly now
            ticket("T-5", opened_us=NOW + 1),  # opened after now
        ]
    )
    assert ids(open_tickets(facts, AS_OF), "ticket_id") == ["T-2", "T-4"]


def test_two_complaints_of_one_category_any_case_recur() -> None:
    first = NOW - 20 * DAY_US
    second = NOW - 2 * DAY_US
    facts = Facts(
        tickets=[  # newest first on purpose: the result is in time order
            ticket("T-3388", opened_us=second, category="billing", category_key="billing"),
            ticket("T-3101", opened_us=first, category="Billing", category_key="billing"),
        ]
    )
    assert recurring_complaints(facts, AS_OF) == [
        {
            "category": "billing",  # the latest complaint's spelling
            "count": 2,
            "ticket_ids": ["T-3101", "T-3388"],
            "event_ids": ["ev-T-3101", "ev-T-3388"],
        }
    ]


def test_recurring_complaints_resolved_still_count() -> None:
    facts = Facts(
        tickets=[
            ticket("T-1", opened_us=NOW - 30 * DAY_US, resolved_us=NOW - 29 * DAY_US),
            ticket("T-2", opened_us=NOW - 3 * DAY_US),
        ]
    )
    assert [r["ticket_ids"] for r in recurring_complaints(facts, AS_OF)] == [["T-1", "T-2"]]


def test_complaint_just_outside_the_90_day_window_does_not_recur() -> None:
    facts = Facts(
        tickets=[
            ticket("T-1", opened_us=SEOUL_SINCE_90 - 1),
            ticket("T-2", opened_us=NOW - DAY_US),
        ]
    )
    assert recurring_complaints(facts, AS_OF) == []


def test_complaints_at_window_start_and_at_now_recur() -> None:
    facts = Facts(tickets=[ticket("T-1", opened_us=SEOUL_SINCE_90), ticket("T-2", opened_us=NOW)])
    found = recurring_complaints(facts, AS_OF)
    assert [(r["count"], r["event_ids"]) for r in found] == [(2, ["ev-T-1", "ev-T-2"])]


def test_complaint_dated_after_now_does_not_recur() -> None:
    facts = Facts(tickets=[ticket("T-1", opened_us=NOW - DAY_US), ticket("T-2", opened_us=NOW + 1)])
    assert recurring_complaints(facts, AS_OF) == []


def test_non_complaint_tickets_do_not_recur() -> None:
    facts = Facts(
        tickets=[
            ticket("T-1", opened_us=NOW - 5 * DAY_US, complaint=True),
            ticket("T-2", opened_us=NOW - 4 * DAY_US, complaint=False),
            ticket("T-3", opened_us=NOW - 3 * DAY_US, complaint=False),
        ]
    )
    assert recurring_complaints(facts, AS_OF) == []


def test_recurring_complaints_per_category_sorted_by_key() -> None:
    facts = Facts(
        tickets=[
            ticket("T-1", opened_us=NOW - 9 * DAY_US, category="Outage", category_key="outage"),
            ticket("T-2", opened_us=NOW - 8 * DAY_US),
            ticket("T-3", opened_us=NOW - 7 * DAY_US, category="OUTAGE", category_key="outage"),
            ticket("T-4", opened_us=NOW - 6 * DAY_US),
            ticket("T-5", opened_us=NOW - 5 * DAY_US, category="Login", category_key="login"),
            ticket("T-6", opened_us=NOW - 4 * DAY_US, category=None, category_key=None),
            ticket("T-7", opened_us=NOW - 3 * DAY_US, category=None, category_key=None),
        ]
    )
    assert [
        (r["category"], r["count"], r["ticket_ids"]) for r in recurring_complaints(facts, AS_OF)
    ] == [
        ("Billing", 2, ["T-2", "T-4"]),
        ("OUTAGE", 2, ["T-1", "T-3"]),
    ]


# -- live offers -------------------------------------------------------------------------------


def test_proposal_with_future_valid_until_is_live_even_if_old() -> None:
    old = NOW - 120 * DAY_US  # well before the 90-day window
    facts = Facts(messages=[message("ev-p", at_us=old, valid_until_us=NOW + DAY_US)])
    assert ids(live_offers(facts, AS_OF), "event_id") == ["ev-p"]


@pytest.mark.parametrize(
    ("valid_until", "live"),
    [(NOW - DAY_US, False), (NOW, False), (NOW + 1, True)],
)
def test_proposal_is_live_strictly_before_valid_until(valid_until: int, live: bool) -> None:
    facts = Facts(messages=[message("ev-p", at_us=NOW - DAY_US, valid_until_us=valid_until)])
    assert ids(live_offers(facts, AS_OF), "event_id") == (["ev-p"] if live else [])


@pytest.mark.parametrize(
    ("at", "live"),
    [(SEOUL_SINCE_90, True), (SEOUL_SINCE_90 - 1, False), (NOW, True), (NOW + 1, False)],
)
def test_proposal_without_valid_until_is_live_in_the_90_day_window(at: int, live: bool) -> None:
    facts = Facts(messages=[message("ev-p", at_us=at)])
    assert ids(live_offers(facts, AS_OF), "event_id") == (["ev-p"] if live else [])


def test_later_proposal_with_same_id_replaces_earlier() -> None:
    facts = Facts(
        messages=[
            message("ev-new", at_us=NOW - 2 * DAY_US, ref_id="P-9", discount_pct=15),
            message("ev-old", at_us=NOW - 5 * DAY_US, ref_id="P-9", discount_pct=10,
                    valid_until_us=NOW + 30 * DAY_US),
            message("ev-other", at_us=NOW - 4 * DAY_US, ref_id="P-10"),
        ]
    )  # fmt: skip
    assert ids(live_offers(facts, AS_OF), "event_id") == ["ev-other", "ev-new"]


def test_replacement_dated_after_now_does_not_replace_yet() -> None:
    facts = Facts(
        messages=[
            message("ev-old", at_us=NOW - 5 * DAY_US, ref_id="P-9"),
            message("ev-future", at_us=NOW + 1, ref_id="P-9"),
        ]
    )
    assert ids(live_offers(facts, AS_OF), "event_id") == ["ev-old"]


def test_replacement_without_product_still_replaces() -> None:
    facts = Facts(
        messages=[
            message("ev-old", at_us=NOW - 5 * DAY_US, ref_id="P-9"),
            message("ev-new", at_us=NOW - DAY_US, ref_id="P-9", product=None, product_key=None),
        ]
    )
    assert live_offers(facts, AS_OF) == []


@pytest.mark.parametrize(
    ("at", "live"),
    [(SEOUL_SINCE_30, True), (SEOUL_SINCE_30 - 1, False), (NOW, True), (NOW + 1, False)],
)
def test_campaign_offer_is_live_in_the_30_day_window(at: int, live: bool) -> None:
    facts = Facts(messages=[message("ev-c", at_us=at, kind="campaign", ref_id="C-1")])
    assert ids(live_offers(facts, AS_OF), "event_id") == (["ev-c"] if live else [])


def test_messages_without_product_are_never_offers() -> None:
    facts = Facts(
        messages=[
            message("ev-p", at_us=NOW - DAY_US, product=None, product_key=None),
            message("ev-c", at_us=NOW - DAY_US, kind="campaign", ref_id="C-1", product=None,
                    product_key=None),
        ]
    )  # fmt: skip
    assert live_offers(facts, AS_OF) == []


def test_live_offers_are_in_sort_key_order() -> None:
    t = NOW - 3 * DAY_US
    facts = Facts(
        messages=[
            message("ev-c", at_us=t, kind="campaign", ref_id="C-1", offset=7),
            message("ev-b", at_us=t, ref_id="P-2", offset=3),
            message("ev-a", at_us=t - 1, ref_id="P-3", offset=9),
        ]
    )
    assert ids(live_offers(facts, AS_OF), "event_id") == ["ev-a", "ev-b", "ev-c"]


# -- conflicts ---------------------------------------------------------------------------------


def test_different_departments_different_discount_conflict() -> None:
    a = message("ev-sales", at_us=us("2026-11-20T03:00:00Z"), discount_pct=10, offset=1)
    b = message("ev-mkt", at_us=us("2026-11-21T03:00:00Z"), kind="campaign", ref_id="C-1",
                product="OneVoice  cloud", discount_pct=25, terms="annual plans only",
                department="marketing", offset=2)  # fmt: skip
    found = conflicts([a, b])
    assert found == [
        {
            "product": "OneVoice  cloud",
            "differs_in": ["discount"],
            "event_ids": ["ev-sales", "ev-mkt"],
            "offers": [offer_json(a), offer_json(b)],
        }
    ]
    assert found[0]["offers"][0] == {
        "event_id": "ev-sales",
        "kind": "proposal",
        "ref_id": "P-1",
        "product": "OneVoice Cloud",
        "discount_pct": 10,
        "terms": None,
        "amount": None,
        "currency": None,
        "department": "sales",
        "actor": {"id": "emp-sales"},
        "at": "2026-11-20T03:00:00Z",
        "valid_until": None,
    }


def test_conflict_through_live_offers_in_sort_order() -> None:
    facts = Facts(
        messages=[  # listed newest first; the pair comes out oldest first
            message("ev-mkt", at_us=NOW - DAY_US, kind="campaign", ref_id="C-1",
                    discount_pct=25, department="marketing"),
            message("ev-sales", at_us=NOW - 2 * DAY_US, discount_pct=10),
        ]
    )  # fmt: skip
    found = conflicts(live_offers(facts, AS_OF))
    assert [(c["event_ids"], c["differs_in"]) for c in found] == [
        (["ev-sales", "ev-mkt"], ["discount"])
    ]


def test_same_department_never_conflicts() -> None:
    a = message("ev-1", at_us=NOW - 2 * DAY_US, discount_pct=10, terms="net 30")
    b = message("ev-2", at_us=NOW - DAY_US, ref_id="P-2", discount_pct=25, terms="net 60")
    assert conflicts([a, b]) == []


def test_different_products_never_conflict() -> None:
    a = message("ev-1", at_us=NOW - 2 * DAY_US, discount_pct=10)
    b = message("ev-2", at_us=NOW - DAY_US, product="OneVoice Edge", product_key="onevoice edge",
                discount_pct=25, department="marketing")  # fmt: skip
    assert conflicts([a, b]) == []


def test_same_discount_and_one_side_without_terms_is_no_conflict() -> None:
    a = message("ev-1", at_us=NOW - 2 * DAY_US, discount_pct=10, terms=None)
    b = message("ev-2", at_us=NOW - DAY_US, discount_pct=10.0, terms="net 30",
                department="marketing")  # fmt: skip
    assert conflicts([a, b]) == []


def test_both_with_different_terms_conflict_in_terms() -> None:
    a = message("ev-1", at_us=NOW - 2 * DAY_US, discount_pct=10, terms="net 30")
    b = message("ev-2", at_us=NOW - DAY_US, discount_pct=10, terms="net 60",
                department="marketing")  # fmt: skip
    assert [(c["differs_in"], c["event_ids"]) for c in conflicts([a, b])] == [
        (["terms"], ["ev-1", "ev-2"])
    ]


def test_terms_differing_only_in_whitespace_agree() -> None:
    a = message("ev-1", at_us=NOW - 2 * DAY_US, discount_pct=10, terms="net  30\n days")
    b = message("ev-2", at_us=NOW - DAY_US, discount_pct=10, terms=" net 30 days ",
                department="marketing")  # fmt: skip
    assert conflicts([a, b]) == []


def test_discount_and_terms_both_differ() -> None:
    a = message("ev-1", at_us=NOW - 2 * DAY_US, discount_pct=10, terms="net 30")
    b = message("ev-2", at_us=NOW - DAY_US, discount_pct=20, terms="net 60",
                department="marketing")  # fmt: skip
    assert [c["differs_in"] for c in conflicts([a, b])] == [["discount", "terms"]]


@pytest.mark.parametrize(
    ("left", "right", "differs"),
    [(None, 0, []), (0, None, []), (None, None, []), (None, 5, [["discount"]])],
)
def test_missing_discount_counts_as_zero(
    left: float | None, right: float | None, differs: list[list[str]]
) -> None:
    a = message("ev-1", at_us=NOW - 2 * DAY_US, discount_pct=left)
    b = message("ev-2", at_us=NOW - DAY_US, discount_pct=right, department="marketing")
    assert [c["differs_in"] for c in conflicts([a, b])] == differs


def test_three_offers_give_the_disagreeing_pairs() -> None:
    a = message("ev-a", at_us=NOW - 3 * DAY_US, discount_pct=10, department="sales")
    b = message("ev-b", at_us=NOW - 2 * DAY_US, discount_pct=25, department="marketing")
    c = message("ev-c", at_us=NOW - DAY_US, discount_pct=10, department="support")
    # (a, b): 10 vs 25 -> conflict; (a, c): both 10 -> none; (b, c): 25 vs 10 -> conflict.
    assert [(x["event_ids"], x["differs_in"]) for x in conflicts([a, b, c])] == [
        (["ev-a", "ev-b"], ["discount"]),
        (["ev-b", "ev-c"], ["discount"]),
    ]


def test_repeated_identical_offers_make_one_conflict_with_the_latest() -> None:
    """Regression: 170 live proposals against one campaign listed 170 conflicts (the bench's
    large account: a 490 ms view)."""
    repeats = [message(f"ev-{i:03d}", at_us=NOW - (200 - i) * DAY_US // 10, discount_pct=10)
               for i in range(170)]  # fmt: skip
    campaign = message("ev-c", at_us=NOW - 3 * DAY_US, discount_pct=25, department="marketing")
    found = conflicts(sorted([*repeats, campaign], key=lambda m: m.sort_key))
    assert [(x["event_ids"], x["differs_in"]) for x in found] == [
        (["ev-169", "ev-c"], ["discount"]),
    ]


# -- single-threaded ---------------------------------------------------------------------------


def test_four_of_five_touches_by_one_employee_is_single_threaded() -> None:
    actors = [ActorTouches("emp-2", "support", 1), ActorTouches("emp-1", "sales", 4)]
    assert single_threaded(actors) == ActorTouches("emp-1", "sales", 4)


def test_three_of_four_touches_is_not_single_threaded() -> None:
    actors = [ActorTouches("emp-1", "sales", 3), ActorTouches("emp-2", "support", 1)]
    assert single_threaded(actors) is None


def test_one_touch_by_one_employee_is_single_threaded() -> None:
    assert single_threaded([ActorTouches("emp-1", "sales", 1)]) == ActorTouches("emp-1", "sales", 1)


@pytest.mark.parametrize("actors", [[], [ActorTouches("emp-1", "sales", 0)]])
def test_no_touches_is_not_single_threaded(actors: list[ActorTouches]) -> None:
    assert single_threaded(actors) is None


def test_one_employees_touches_across_departments_are_summed() -> None:
    # emp-1: 2 (sales) + 2 (marketing) = 4 of 5 = 80%; reported with the first department seen.
    actors = [
        ActorTouches("emp-1", "sales", 2),
        ActorTouches("emp-2", "support", 1),
        ActorTouches("emp-1", "marketing", 2),
    ]
    assert single_threaded(actors) == ActorTouches("emp-1", "sales", 4)


def test_split_departments_below_threshold_is_not_single_threaded() -> None:
    # emp-1: 2 + 1 = 3 of 4 = 75%.
    actors = [
        ActorTouches("emp-1", "sales", 2),
        ActorTouches("emp-1", "marketing", 1),
        ActorTouches("emp-2", "support", 1),
    ]
    assert single_threaded(actors) is None


def test_single_threaded_accepts_any_iterable() -> None:
    """Regression: a one-shot iterator was read twice (StopIteration looking up the department)."""
    actors = iter([ActorTouches("emp-1", "sales", 4), ActorTouches("emp-2", "support", 1)])
    assert single_threaded(actors) == ActorTouches("emp-1", "sales", 4)


# -- executive items ---------------------------------------------------------------------------


def test_executive_items_in_the_90_day_window_in_time_order() -> None:
    x1 = us("2026-11-20T05:00:00Z")
    x3 = us("2026-11-10T05:00:00Z")
    facts = Facts(
        executive_touches=[
            exec_touch("ev-x1", x1, concerns=["price", "uptime"], complaints=["billing errors"]),
            exec_touch("ev-x2", SEOUL_SINCE_90 - 1, concerns=["too old"]),
            exec_touch("ev-x3", x3, concerns=["support speed"]),
            exec_touch("ev-x4", NOW + 1, concerns=["from the future"]),
            exec_touch("ev-x5", SEOUL_SINCE_90, concerns=["first day"]),
            exec_touch("ev-x6", NOW - DAY_US),
        ]
    )
    exec_ = {"id": "ceo", "name": "Kim"}
    assert executive_items(facts, AS_OF, "concerns") == [
        {"text": "first day", "event_id": "ev-x5", "at": "2026-08-25T15:00:00Z",
         "executive": exec_},
        {"text": "support speed", "event_id": "ev-x3", "at": "2026-11-10T05:00:00Z",
         "executive": exec_},
        {"text": "price", "event_id": "ev-x1", "at": "2026-11-20T05:00:00Z", "executive": exec_},
        {"text": "uptime", "event_id": "ev-x1", "at": "2026-11-20T05:00:00Z", "executive": exec_},
    ]  # fmt: skip
    assert executive_items(facts, AS_OF, "complaints") == [
        {"text": "billing errors", "event_id": "ev-x1", "at": "2026-11-20T05:00:00Z",
         "executive": exec_},
    ]  # fmt: skip


def test_executive_items_same_time_order_by_event_id() -> None:
    t = NOW - DAY_US
    facts = Facts(
        executive_touches=[
            exec_touch("ev-b", t, concerns=["b"]),
            exec_touch("ev-a", t, concerns=["a"]),
        ]
    )
    assert [i["text"] for i in executive_items(facts, AS_OF, "concerns")] == ["a", "b"]


# -- handoffs ----------------------------------------------------------------------------------


def handoff(at_us: int, followed_us: int | None = None, contact_key: str = "") -> Handoff:
    return Handoff(f"ev-{at_us}", "marketing.event_attended", at_us, contact_key, None, None,
                   "세미나", {"id": "emp-lee"}, None, followed_us,
                   None if followed_us is None else f"ev-f-{followed_us}")  # fmt: skip


@pytest.mark.parametrize(("zone", "start"), [(SEOUL, SEOUL_SINCE_7), (UTC_ZONE, UTC_SINCE_7)])
def test_a_handoff_is_stale_from_the_first_moment_before_the_windows_first_day(
    zone: ZoneInfo, start: int
) -> None:
    as_of = AsOf(NOW, zone, Policy(handoff_days=7))
    assert is_stale(handoff(start - 1), as_of) is True
    assert is_stale(handoff(start), as_of) is False
    # A 3-day window (configurable) starts four days later.
    three = AsOf(NOW, zone, Policy(handoff_days=3))
    assert is_stale(handoff(start + 4 * 86_400_000_000 - 1), three) is True
    assert is_stale(handoff(start + 4 * 86_400_000_000), three) is False


def test_open_handoffs_are_those_not_followed_up_by_now_oldest_first() -> None:
    as_of = AsOf(NOW, SEOUL)
    facts = Facts(handoffs=[
        handoff(NOW - 5, followed_us=NOW - 1),  # followed up: not open
        handoff(NOW - 9, followed_us=NOW + 1),  # "followed up" after now: still open
        handoff(NOW - 20),
        handoff(NOW + 10),  # a signal after now does not count yet
    ])  # fmt: skip
    assert [h.at_us for h in open_handoffs(facts, as_of)] == [NOW - 20, NOW - 9]


# -- recurrence after a fix ---------------------------------------------------------------------


def fixed(tid: str, *, resolved_us: int, cause: str | None = None, category: str = "Billing",
          prevention: str | None = "중복 검사") -> Facts:  # fmt: skip
    """A complaint ticket, resolved at ``resolved_us``, and (unless ``prevention`` is None) the
    prevention commitment the resolution made."""
    ticket = Ticket(tid, f"ev-{tid}", resolved_us - DAY_US, "s", category, category.casefold(),
                    "normal", True, resolved_us, f"ev-{tid}-resolved")  # fmt: skip
    commitments = [] if prevention is None else [Commitment(
        f"prevent-{tid}", f"ev-{tid}-resolved", resolved_us, prevention, {"id": "emp-kim"},
        "support", None, None, None, None, "emp-kim", tid,
        None if cause is None else cause.casefold(), None)]  # fmt: skip
    return Facts(tickets=[ticket], commitments=commitments)


def complaint_at(tid: str, opened_us: int, category: str = "billing") -> Ticket:
    return Ticket(tid, f"ev-{tid}", opened_us, "s", category, category.casefold(), "normal",
                  True, None)  # fmt: skip


def test_a_complaint_a_year_after_a_fix_recurs_after_it() -> None:
    year_ago = NOW - 365 * DAY_US
    facts = fixed("T-1", resolved_us=year_ago)
    facts.tickets.append(complaint_at("T-2", NOW - HOUR_US))
    [found] = recurrences_after_fix(facts, AS_OF)
    assert (found["ticket_id"], found["fix"]["ticket_id"]) == ("T-2", "T-1")
    assert found["event_ids"] == ["ev-T-2", "ev-T-1-resolved"]


def test_the_fix_must_come_before_the_complaint_and_match_its_category() -> None:
    opened = NOW - 10 * DAY_US

    def story(**fix: Any) -> Facts:
        facts = fixed("T-1", **fix)
        facts.tickets.append(complaint_at("T-2", opened))
        return facts

    assert recurrences_after_fix(story(resolved_us=opened + 1), AS_OF) == []
    assert recurrences_after_fix(story(resolved_us=opened - 1, category="SSO"), AS_OF) == []
    # The cause's category wins over the ticket's.
    by_cause = story(resolved_us=opened - 1, category="SSO", cause="BILLING")
    assert [r["ticket_id"] for r in recurrences_after_fix(by_cause, AS_OF)] == ["T-2"]
    assert recurrences_after_fix(story(resolved_us=opened - 1, prevention=None), AS_OF) == []
    # Resolved again later without a prevention: the fix recorded first still counts.
    again = story(resolved_us=opened - 2 * DAY_US)
    again.tickets[0] = replace(again.tickets[0], resolved_us=opened - 1)
    assert [r["fix"]["event_id"] for r in recurrences_after_fix(again, AS_OF)] == [
        "ev-T-1-resolved"]  # fmt: skip


def test_the_recurring_window_is_configurable() -> None:
    opened = SEOUL_SINCE_30 - 1  # just before the 30-day window's first day
    facts = Facts(tickets=[complaint_at("T-1", opened), complaint_at("T-2", NOW - HOUR_US)])
    assert [r["count"] for r in recurring_complaints(facts, AS_OF)] == [2]
    thirty = AsOf(NOW, SEOUL, Policy(recurring_days=30))
    assert recurring_complaints(facts, thirty) == []
    facts.tickets.append(complaint_at("T-3", SEOUL_SINCE_30))
    assert [r["ticket_ids"] for r in recurring_complaints(facts, thirty)] == [["T-3", "T-2"]]
