"""Account health (services/core/health.py): exact scores and factors for hand-built facts.

Clock: NOW = 2026-11-23T01:00:00Z (10:00 KST), business zone Asia/Seoul. Window starts:
- 30 days: 2026-10-25T00:00+09:00 = 2026-10-24T15:00Z
- 90 days: 2026-08-26T00:00+09:00 = 2026-08-25T15:00Z
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.core.health import health
from services.core.view_rules import (
    ActorTouches,
    AsOf,
    Facts,
    Message,
)
from tests.viewfacts import commitment, exec_touch, message, ticket

SEOUL = ZoneInfo("Asia/Seoul")
DAY_US = 86_400_000_000
NOW = 1_795_395_600_000_000  # 2026-11-23T01:00:00Z
SEOUL_SINCE_30 = 1_792_854_000_000_000  # 2026-10-24T15:00Z
UTC_SINCE_30 = 1_792_886_400_000_000  # 2026-10-25T00:00Z
SEOUL_SINCE_90 = 1_787_670_000_000_000  # 2026-08-25T15:00Z
AS_OF = AsOf(NOW, SEOUL)

RULES = {
    "neglected": "touched before, but not in the last 30 days",
    "overdue_commitments": "per open commitment past its due time",
    "open_complaints": "per open ticket opened as a complaint",
    "recurring_complaints": "per complaint category recurring within 90 days",
    "urgent_tickets": "per open ticket of severity high or urgent",
    "executive_concerns": "per concern or complaint executives heard in 90 days",
    "low_csat": "per CSAT score of 1 or 2 in 90 days",
    "conflicting_offers": "per pair of live offers that contradict each other",
    "single_threaded": "80% or more of 90 days' touches by one employee",
}


def factor(name: str, effect: int, count: int, evidence: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "effect": effect,
        "count": count,
        "rule": RULES[name],
        "evidence": evidence,
    }


# -- builders ----------------------------------------------------------------------------------


def offer(event_id: str, *, at_us: int, department: str, discount_pct: float | None) -> Message:
    """A proposal of its own (no two share a proposal id, so none replaces another)."""
    return message(event_id, at_us=at_us, department=department, discount_pct=discount_pct,
                   ref_id=f"P-{event_id}")  # fmt: skip


def several_factors() -> Facts:
    """Overdue x3 (capped), one open urgent complaint, 4 executive concerns (capped), and one
    employee behind 4 of 5 touches; plus items that must NOT count."""
    return Facts(
        last_touch_us=NOW - DAY_US,
        last_touch_event_id="ev-last",
        actors_90d=[ActorTouches("emp-1", "sales", 4), ActorTouches("emp-2", "support", 1)],
        commitments=[
            commitment("CM-1", made_us=NOW - 20 * DAY_US, due_us=NOW - 10 * DAY_US),
            commitment("CM-2", made_us=NOW - 15 * DAY_US, due_us=NOW),  # due exactly now
            commitment("CM-3", made_us=NOW - 12 * DAY_US, due_us=NOW - DAY_US),
            # closed before due passed: not counted
            commitment("CM-4", made_us=NOW - 11 * DAY_US, due_us=NOW - 2 * DAY_US,
                       closed_us=NOW - 3 * DAY_US),
            commitment("CM-5", made_us=NOW - 5 * DAY_US, due_us=NOW + 1),  # not due yet
            commitment("CM-6", made_us=NOW - 4 * DAY_US),  # no due time
        ],
        tickets=[
            ticket("T-1", opened_us=NOW - 6 * DAY_US, severity="high"),
            ticket("T-2", opened_us=NOW - 200 * DAY_US, category="Login",
                   resolved_us=NOW - 150 * DAY_US),
            ticket("T-3", opened_us=NOW - 3 * DAY_US, complaint=False, severity="low"),
            ticket("T-4", opened_us=NOW - 2 * DAY_US, complaint=False, severity="urgent",
                   resolved_us=NOW - DAY_US),
        ],
        messages=[
            offer("ev-o1", at_us=NOW - 3 * DAY_US, department="sales", discount_pct=10),
            offer("ev-o2", at_us=NOW - 2 * DAY_US, department="marketing", discount_pct=10.0),
        ],
        executive_touches=[
            exec_touch("ev-x0", SEOUL_SINCE_90 - 1, concerns=["too old"]),
            exec_touch("ev-x2", NOW - 5 * DAY_US, concerns=["d"]),
            exec_touch("ev-x1", NOW - 40 * DAY_US, concerns=["a", "b"], complaints=["c"]),
        ],
        csat=[("ev-csat-1", 4, NOW - 2 * DAY_US), ("ev-csat-2", 1, SEOUL_SINCE_90 - 1)],
    )  # fmt: skip


TOUCH_EVIDENCE = ["ev-t4", "ev-t3", "ev-t2", "ev-t1"]


# -- tests -------------------------------------------------------------------------------------


def test_several_factors_exact_score_and_factors() -> None:
    # 100 - 30 (3 overdue, capped) - 10 - 5 - 15 (4 concerns, capped) - 10 = 30
    assert health(several_factors(), AS_OF, TOUCH_EVIDENCE) == {
        "score": 30,
        "at_risk": True,
        "factors": [
            factor("overdue_commitments", -30, 3, ["ev-CM-1", "ev-CM-2", "ev-CM-3"]),
            factor("open_complaints", -10, 1, ["ev-T-1"]),
            factor("urgent_tickets", -5, 1, ["ev-T-1"]),
            factor("executive_concerns", -15, 4, ["ev-x1", "ev-x2"]),
            factor("single_threaded", -10, 1, ["ev-t4", "ev-t3", "ev-t2", "ev-t1"]),
        ],
    }


@pytest.mark.parametrize(("below", "at_risk"), [(30, False), (31, True), (60, True), (0, False)])
def test_at_risk_below_override(below: int, at_risk: bool) -> None:
    result = health(several_factors(), AS_OF, TOUCH_EVIDENCE, at_risk_below=below)
    assert (result["score"], result["at_risk"]) == (30, at_risk)


def test_health_is_deterministic() -> None:
    first = health(several_factors(), AS_OF, TOUCH_EVIDENCE)
    second = health(several_factors(), AS_OF, TOUCH_EVIDENCE)
    assert first == second
    shuffled = several_factors()
    shuffled.commitments.reverse()
    shuffled.tickets.reverse()
    shuffled.messages.reverse()
    shuffled.executive_touches.reverse()
    shuffled.csat.reverse()
    shuffled.actors_90d.reverse()
    assert health(shuffled, AS_OF, TOUCH_EVIDENCE) == first


@pytest.mark.parametrize(("overdue", "effect"), [(1, -15), (2, -30), (3, -30), (5, -30)])
def test_overdue_commitments_penalty_is_capped_at_30(overdue: int, effect: int) -> None:
    facts = Facts(
        commitments=[
            commitment(f"CM-{i}", made_us=NOW - 10 * DAY_US, due_us=NOW - DAY_US)
            for i in range(overdue)
        ]
    )
    result = health(facts, AS_OF)
    assert result["factors"][0]["name"] == "overdue_commitments"
    assert (result["factors"][0]["effect"], result["factors"][0]["count"]) == (effect, overdue)
    assert result["score"] == 100 + effect


@pytest.mark.parametrize(("heard", "effect"), [(1, -5), (2, -10), (3, -15), (4, -15)])
def test_executive_concerns_penalty_is_capped_at_15(heard: int, effect: int) -> None:
    texts = [f"concern {i}" for i in range(heard)]
    facts = Facts(executive_touches=[exec_touch("ev-x", NOW - DAY_US, concerns=texts)])
    assert health(facts, AS_OF) == {
        "score": 100 + effect,
        "at_risk": False,
        "factors": [factor("executive_concerns", effect, heard, ["ev-x"])],
    }


def test_neglected_when_last_touch_is_before_the_30_day_window() -> None:
    facts = Facts(last_touch_us=SEOUL_SINCE_30 - 1, last_touch_event_id="ev-last")
    assert health(facts, AS_OF) == {
        "score": 75,
        "at_risk": False,
        "factors": [factor("neglected", -25, 1, ["ev-last"])],
    }


def test_not_neglected_when_last_touch_is_at_the_window_start() -> None:
    facts = Facts(last_touch_us=SEOUL_SINCE_30, last_touch_event_id="ev-last")
    assert health(facts, AS_OF) == {"score": 100, "at_risk": False, "factors": []}


def test_neglect_window_follows_the_business_time_zone() -> None:
    # 2026-10-24T15:00Z is inside Seoul's 30 days (from 2026-10-24T15:00Z) but before UTC's
    # (from 2026-10-25T00:00Z).
    facts = Facts(last_touch_us=SEOUL_SINCE_30, last_touch_event_id="ev-last")
    assert SEOUL_SINCE_30 < UTC_SINCE_30
    result = health(facts, AsOf(NOW, ZoneInfo("UTC")))
    assert (result["score"], [f["name"] for f in result["factors"]]) == (75, ["neglected"])


def test_never_touched_is_not_neglected() -> None:
    assert health(Facts(), AS_OF) == {"score": 100, "at_risk": False, "factors": []}


@pytest.mark.parametrize(
    ("urgent", "score", "at_risk"),
    [(0, 60, False), (1, 55, True)],
)
def test_default_at_risk_threshold_is_below_60(urgent: int, score: int, at_risk: bool) -> None:
    # neglected 25 + one overdue commitment 15 = 40 -> 60; one more urgent ticket 5 -> 55.
    facts = Facts(
        last_touch_us=SEOUL_SINCE_30 - DAY_US,
        last_touch_event_id="ev-last",
        commitments=[commitment("CM-1", made_us=NOW - 40 * DAY_US, due_us=NOW - 35 * DAY_US)],
        tickets=[
            ticket(f"T-{i}", opened_us=NOW - 40 * DAY_US, complaint=False, severity="urgent")
            for i in range(urgent)
        ],
    )
    result = health(facts, AS_OF)
    assert (result["score"], result["at_risk"]) == (score, at_risk)


def test_score_floors_at_zero() -> None:
    # 25 + 30 + 20 + 15 + 10 + 20 = 120 of penalties -> 0, not -20.
    facts = Facts(
        last_touch_us=SEOUL_SINCE_30 - 1,
        last_touch_event_id="ev-last",
        commitments=[
            commitment(f"CM-{i}", made_us=NOW - 60 * DAY_US, due_us=NOW - 50 * DAY_US)
            for i in (1, 2, 3)
        ],
        tickets=[
            ticket("T-1", opened_us=NOW - 45 * DAY_US, severity="urgent"),
            ticket("T-2", opened_us=NOW - 40 * DAY_US, severity="high", category="billing"),
        ],
        csat=[(f"ev-c{i}", 1, NOW - i * DAY_US) for i in (1, 2, 3)],
    )
    assert health(facts, AS_OF) == {
        "score": 0,
        "at_risk": True,
        "factors": [
            factor("neglected", -25, 1, ["ev-last"]),
            factor("overdue_commitments", -30, 3, ["ev-CM-1", "ev-CM-2", "ev-CM-3"]),
            factor("open_complaints", -20, 2, ["ev-T-1", "ev-T-2"]),
            factor("recurring_complaints", -15, 1, ["ev-T-1", "ev-T-2"]),
            factor("urgent_tickets", -10, 2, ["ev-T-1", "ev-T-2"]),
            factor("low_csat", -20, 3, ["ev-c3", "ev-c2", "ev-c1"]),
        ],
    }


def test_recurring_conflicting_and_low_csat() -> None:
    tickets = [
        ticket(f"T-{i}", opened_us=NOW - (10 - i) * DAY_US, category=category,
               resolved_us=NOW - DAY_US)
        for i, category in enumerate(["Outage", "billing", "Login", "BILLING", "login", "outage"])
    ]  # fmt: skip
    facts = Facts(
        tickets=tickets,
        messages=[
            offer("ev-a", at_us=NOW - 3 * DAY_US, department="sales", discount_pct=10),
            offer("ev-b", at_us=NOW - 2 * DAY_US, department="marketing", discount_pct=25),
            offer("ev-c", at_us=NOW - 1 * DAY_US, department="support", discount_pct=10),
        ],
        csat=[
            ("ev-c1", 2, NOW - DAY_US),
            ("ev-c2", 1, NOW - 50 * DAY_US),
            ("ev-c3", 3, NOW - 2 * DAY_US),  # 3 is not low
            ("ev-c4", 1, SEOUL_SINCE_90 - 1),  # outside 90 days
            ("ev-c5", 1, NOW + 1),  # after now
        ],
    )
    # recurring: billing (T-1, T-3), login (T-2, T-4), outage (T-0, T-5) -> 3 x 15 = 45 -> 30
    # conflicts: (a, b) and (b, c) -> 2 x 10 = 20; low CSAT: c2, c1 -> 2 x 10 = 20
    assert health(facts, AS_OF) == {
        "score": 30,
        "at_risk": True,
        "factors": [
            factor("recurring_complaints", -30, 3,
                   ["ev-T-1", "ev-T-3", "ev-T-2", "ev-T-4", "ev-T-0", "ev-T-5"]),
            factor("low_csat", -20, 2, ["ev-c2", "ev-c1"]),
            factor("conflicting_offers", -20, 2, ["ev-a", "ev-b", "ev-c"]),
        ],
    }  # fmt: skip


def test_single_threaded_factor_cites_the_evidence_passed_in() -> None:
    facts = Facts(actors_90d=[ActorTouches("emp-1", "sales", 8), ActorTouches("emp-2", "x", 2)])
    assert health(facts, AS_OF, ["ev-9", "ev-7", "ev-5"]) == {
        "score": 90,
        "at_risk": False,
        "factors": [factor("single_threaded", -10, 1, ["ev-9", "ev-7", "ev-5"])],
    }


def test_single_threaded_without_evidence_still_counts() -> None:
    facts = Facts(actors_90d=[ActorTouches("emp-1", "sales", 1)])
    assert health(facts, AS_OF) == {
        "score": 90,
        "at_risk": False,
        "factors": [factor("single_threaded", -10, 1, [])],
    }


def test_not_single_threaded_ignores_evidence() -> None:
    facts = Facts(actors_90d=[ActorTouches("emp-1", "sales", 3), ActorTouches("emp-2", "x", 1)])
    assert health(facts, AS_OF, ["ev-1"]) == {"score": 100, "at_risk": False, "factors": []}
