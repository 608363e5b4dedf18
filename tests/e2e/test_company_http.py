"""One voice across the whole company, over real HTTP on both backends (issue 10, part 1):
configured departments, participants who count as touches, executives by flag or title.

Clock: FIXED_NOW = 2026-11-23T01:00:00Z in Asia/Seoul (windows as in test_view_http).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from services.core.settings import Settings
from tests.e2e.test_view_http import (
    BUYER,
    CTO,
    JANG,
    KIM,
    LEE,
    PARK,
    Live,
    call,
    ev,
    register,
    running,
)

ENGINEER = {"id": "emp-han", "name": "한지민", "department": "engineering", "title": "엔지니어"}
VP = {"id": "emp-yoo", "name": "유재석", "department": "sales", "title": "VP Sales"}
CFO = {"id": "emp-baek", "name": "백현우", "department": "finance", "title": "CFO"}


@pytest.fixture
def live(settings: Settings) -> Iterator[Live]:
    with running(settings, "Asia/Seoul") as started:
        yield started


def visit(at: str, actor: dict[str, Any], *others: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return ev("sales.meeting_held", "hanbit", at, actor, {"subject": "공동 방문"}, "합동 방문",
              contacts=[CTO], participants=list(others), **extra)  # fmt: skip


def test_a_joint_visit_credits_every_participant(live: Live) -> None:
    live.load([
        register("hanbit", "한빛소프트", owners={"sales": "emp-park", "engineering": "emp-han"}),
        # Park alone four times: single-threaded (4 of 4 touches) ...
        *[call("hanbit", f"2026-11-{d}T01:00:00Z") for d in (10, 11, 12, 13)],
    ])  # fmt: skip
    before = live.view("hanbit")
    assert before["relationships"]["single_threaded"] is True
    # ... until a marketer and an engineer join Park on a visit: 5 of 7 person-touches are
    # Park's (71% < 80%), so three people share the account.
    joint = visit("2026-11-20T02:00:00Z", PARK, LEE, ENGINEER)
    live.load([joint])
    view = live.view("hanbit")
    rel = view["relationships"]
    assert rel["single_threaded"] is False
    assert rel["breadth_90d"] == {"employees": 3, "departments": 3, "touches": 7}
    people = {p["employee"]["id"]: p["touches"] for p in rel["contacts"][0]["people"]}
    assert people == {"emp-park": 1, "emp-lee": 1, "emp-han": 1}
    pressure = view["pressure"]
    assert pressure["by_department"]["sales"]["7d"] == 1  # the 20th; the 10th-13th are older
    assert pressure["by_department"]["marketing"]["7d"] == 1
    assert pressure["by_department"]["engineering"] == {"7d": 1, "30d": 1, "90d": 1}
    assert pressure["by_department"]["finance"] == {"7d": 0, "30d": 0, "90d": 0}
    assert pressure["total"] == {"7d": 1, "30d": 5, "90d": 5}  # the visit counts once
    last = view["last_touch"]["by_department"]
    assert last["engineering"]["event_id"] == joint["event_id"]
    assert last["engineering"]["actor"]["id"] == "emp-han"
    assert last["marketing"]["actor"]["id"] == "emp-lee"
    # The engineer's feed: the account is theirs (they touched it), the visit is not news.
    feed = live.get("/v1/feed", employee="emp-han", since="2026-01-01T00:00:00Z")
    assert "hanbit" in feed["accounts"]
    assert joint["event_id"] not in [i["event_id"] for i in feed["items"]]
    assert len(feed["items"]) == 5  # the registration and Park's four calls
    # The timeline's department filter finds the event by a participant's department.
    found = live.get("/v1/accounts/hanbit/timeline", department="engineering")["items"]
    assert [i["event_id"] for i in found] == [joint["event_id"]]
    assert found[0]["participants"][1]["id"] == "emp-han"


def test_executives_by_flag_or_title_count_as_executive_touches(live: Live) -> None:
    dinner = visit("2026-11-21T11:00:00Z", VP, JANG)  # a sales VP's dinner
    board = ev("success.review_held", "hanbit", "2026-11-22T01:00:00Z", JANG,
               {"subject": "분기 리뷰"}, contacts=[BUYER],
               participants=[CFO, {**PARK, "executive": True}])  # fmt: skip
    plain = ev("sales.call_logged", "hanbit", "2026-11-22T02:00:00Z",
               {**VP, "id": "emp-vp2", "executive": False}, {"subject": "통화"})  # fmt: skip
    live.load([register("hanbit", "한빛소프트"), dinner, board, plain])
    stored = live.get(f"/v1/events/{dinner['event_id']}")
    assert stored["actor"]["executive"] is True  # ingest applied the title rule
    assert "executive" not in stored["participants"][0]  # a CSM: no flag, not leadership
    assert live.get(f"/v1/events/{plain['event_id']}")["actor"]["executive"] is False
    last = live.view("hanbit")["leadership"]["last_executive_touch"]
    assert last["event_id"] == board["event_id"]
    assert [e["id"] for e in last["executives"]] == ["emp-baek", "emp-park"]
    report = live.get("/v1/reports/leadership", **{"from": "2026-11-16T00:00:00Z",
                                                  "to": "2026-11-23T00:00:00Z"})  # fmt: skip
    met = {e["executive"]["id"]: [t["event_id"] for t in e["touches"]]
           for e in report["executives"]}  # fmt: skip
    assert met == {"emp-yoo": [dinner["event_id"]], "emp-baek": [board["event_id"]],
                   "emp-park": [board["event_id"]]}  # fmt: skip


def test_departments_are_configuration_and_checked_everywhere(live: Live) -> None:
    ops = {"id": "emp-ops", "department": "operations"}
    bad = [
        ev("sales.call_logged", "hanbit", "2026-11-20T00:00:00Z", PARK, {"subject": "x"},
           participants=[ops]),
        ev("commitment.made", "hanbit", "2026-11-20T00:00:00Z", ops,
           {"commitment_id": "CM-1", "text": "약속"}),
        register("hanbit", "한빛", owners={"operations": "emp-ops"}),
        ev("sales.call_logged", "hanbit", "2026-11-20T00:00:00Z", PARK, {"subject": "x"},
           participants=[{**LEE, "id": "emp-park"}]),
    ]  # fmt: skip
    answer = live.http.post("/v1/events/batch", json={"events": bad})
    assert answer.status_code == 200, answer.text
    items = answer.json()["items"]
    paths = [[e["path"] for e in i["errors"]] for i in items]
    assert paths == [["participants.0.department"], ["actor.department"],
                     ["payload.owners.operations.[key]"], ["participants"]]  # fmt: skip
    assert "engineering" in items[0]["errors"][0]["problem"]
    assert live.get("/v1/accounts", silent_department="finance", silent_for="30d")["items"] == []
    refused = live.http.get("/v1/accounts", params={"silent_department": "operations",
                                                    "silent_for": "30d"})  # fmt: skip
    assert refused.status_code == 422 and "silent_department" in refused.text


def test_a_configured_department_can_speak(settings: Settings) -> None:
    custom = settings.model_copy(update={"departments": "sales,marketing,support,success,"
                                                        "leadership,operations"})  # fmt: skip
    with running(custom, "UTC") as live:
        body = ev("commitment.made", "hanbit", "2026-11-20T00:00:00Z",
                  {"id": "emp-ops", "department": "operations"},
                  {"commitment_id": "CM-1", "text": "배송 일정 확정"})  # fmt: skip
        live.load([body])
        view = live.view("hanbit")
        assert view["pressure"]["by_department"]["operations"]["30d"] == 1
        assert "engineering" not in view["pressure"]["by_department"]
        answer = live.http.post("/v1/events", json=ev(
            "commitment.made", "hanbit", "2026-11-20T00:00:00Z",
            {"id": "emp-han", "department": "engineering"},
            {"commitment_id": "CM-2", "text": "x"}))  # fmt: skip
        assert answer.status_code == 422


MARKETER = LEE


def signal(kind: str, at: str, payload: dict[str, Any], contacts: list[dict[str, Any]],
           account: str = "hanbit") -> dict[str, Any]:  # fmt: skip
    return ev(kind, account, at, MARKETER, payload, "마케팅 신호", contacts=contacts)


def test_handoffs_wait_for_a_sales_or_success_follow_up(live: Live) -> None:
    # Windows (Asia/Seoul, now 2026-11-23 10:00 local): the 7-day handoff window starts at
    # 2026-11-16T15:00Z, so a signal before then that nobody followed up is stale.
    seminar = signal("marketing.event_attended", "2026-11-10T05:00:00Z",
                     {"event_name": "AI 고객경험 세미나"}, [CTO])  # fmt: skip
    early_call = ev(
        "sales.call_logged",
        "hanbit",
        "2026-11-09T01:00:00Z",
        PARK,
        {"subject": "세미나 전 통화"},
        contacts=[CTO],
    )  # before: no follow-up
    other_contact = ev(
        "sales.call_logged",
        "hanbit",
        "2026-11-12T01:00:00Z",
        PARK,
        {"subject": "구매팀 통화"},
        contacts=[BUYER],
    )  # another person
    white_paper = signal("marketing.content_engaged", "2026-11-20T01:00:00Z",
                         {"content": "도입 사례집", "action": "downloaded"}, [BUYER])  # fmt: skip
    reply = signal(
        "marketing.campaign_responded",
        "2026-11-21T01:00:00Z",
        {"campaign_id": "C-77", "response": "데모 요청", "channel": "email"},
        [],
    )
    follow = ev("success.review_held", "hanbit", "2026-11-21T03:00:00Z", JANG,
                {"subject": "도입 리뷰"}, contacts=[BUYER], participants=[PARK])  # fmt: skip
    live.load([register("hanbit", "한빛소프트", owners={"sales": "emp-park"}), early_call,
               seminar, other_contact, white_paper, reply])  # fmt: skip
    handoffs = live.view("hanbit")["handoffs"]
    assert handoffs["counts"] == {"open": 3, "stale": 1, "followed_up": 0}
    opened = handoffs["open"]
    assert [(h["event_id"], h["stale"], h["age_days"]) for h in opened] == [
        (seminar["event_id"], True, 12), (white_paper["event_id"], False, 3),
        (reply["event_id"], False, 2)]  # fmt: skip
    assert opened[0]["contact"]["name"] == CTO["name"] and opened[2]["contact"] is None
    assert opened[2]["campaign_id"] == "C-77" and opened[2]["detail"] == "데모 요청"
    factor = {f["name"]: f for f in live.view("hanbit")["health"]["factors"]}["stale_handoffs"]
    assert (factor["effect"], factor["evidence"]) == (-10, [seminar["event_id"]])
    coverage = live.get("/v1/reports/coverage")["stale_handoffs"]
    assert coverage["count"] == 1
    assert coverage["items"][0]["evidence"] == [seminar["event_id"]]
    feed = live.get("/v1/feed", employee="emp-park", since="2026-11-01T00:00:00Z")
    assert [h["event_id"] for h in feed["open_handoffs"]] == [
        seminar["event_id"], white_paper["event_id"], reply["event_id"]]  # fmt: skip
    # A success manager meets the buyer with the rep: the buyer's handoff and the campaign
    # reply (an account's handoff: any sales or success touch after it) are followed up.
    live.load([follow])
    handoffs = live.view("hanbit")["handoffs"]
    assert handoffs["counts"] == {"open": 1, "stale": 1, "followed_up": 2}
    assert [h["event_id"] for h in handoffs["followed_up"]] == [
        reply["event_id"],
        white_paper["event_id"],
    ]
    assert handoffs["followed_up"][0]["followed_up"] == {
        "at": "2026-11-21T03:00:00Z",
        "event_id": follow["event_id"],
    }
    feed = live.get("/v1/feed", employee="emp-park", since="2026-11-01T00:00:00Z")
    assert [h["event_id"] for h in feed["open_handoffs"]] == [seminar["event_id"]]


def complaint(at: str, ticket_id: str, category: str = "billing") -> dict[str, Any]:
    return ev("support.ticket_opened", "hanbit", at, KIM, {
        "ticket_id": ticket_id, "subject": "청구 오류", "category": category,
        "severity": "normal", "complaint": True}, "청구 불만")  # fmt: skip


def test_a_complaint_after_a_recorded_fix_is_a_recurrence_and_the_fix_a_commitment(
    live: Live,
) -> None:
    old = complaint("2025-11-03T01:00:00Z", "T-1")
    fix = ev("support.ticket_resolved", "hanbit", "2025-11-05T01:00:00Z", KIM, {
        "ticket_id": "T-1", "resolution": "환불",
        "cause": {"category": "Billing", "text": "세금계산서 이중 발행"},
        "prevention": {"action": "발행 전 중복 검사 추가", "owner": "emp-han",
                       "due_at": "2025-12-01T00:00:00Z"},
    })  # fmt: skip
    live.load([register("hanbit", "한빛소프트"), old, fix])
    # The prevention is an open commitment (overdue since 2025-12-01) until fulfilled.
    commitments = live.view("hanbit")["commitments"]
    assert [(c["commitment_id"], c["overdue"], c["prevention"]) for c in commitments["open"]] == [
        ("prevent-T-1", True, {"ticket_id": "T-1", "owner": "emp-han"})]  # fmt: skip
    assert commitments["open"][0]["text"] == "발행 전 중복 검사 추가"
    # A year later the same category comes back (case differs): a recurrence after the fix.
    again = complaint("2026-11-20T01:00:00Z", "T-9", category="BILLING")
    other = complaint("2026-11-21T01:00:00Z", "T-10", category="배송")
    live.load([again, other, ev("commitment.fulfilled", "hanbit", "2026-11-22T00:00:00Z", KIM,
                                {"commitment_id": "prevent-T-1"})])  # fmt: skip
    view = live.view("hanbit")
    assert view["commitments"]["open"] == []
    recurrences = view["support"]["recurrences_after_fix"]
    assert [(r["ticket_id"], r["fix"]["ticket_id"], r["fix"]["event_id"]) for r in recurrences] \
        == [("T-9", "T-1", fix["event_id"])]  # fmt: skip
    assert recurrences[0]["fix"]["prevention"] == "발행 전 중복 검사 추가"
    assert view["support"]["recurring_complaints"] == []  # one billing complaint in 90 days
    factors = {f["name"]: f for f in view["health"]["factors"]}
    assert factors["recurrence_after_fix"]["effect"] == -20
    assert factors["recurrence_after_fix"]["evidence"] == [again["event_id"], fix["event_id"]]
    # open complaints T-9, T-10 (-20 capped), the recurrence (-20), single-threaded: every
    # touch of the last 90 days is Kim's (-10)
    assert view["health"]["score"] == 50
    coverage = live.get("/v1/reports/coverage")["recurrences_after_fix"]
    assert [(i["account_id"], i["ticket_id"]) for i in coverage["items"]] == [("hanbit", "T-9")]


def test_a_prevention_of_the_longest_ticket_id_is_stored(live: Live) -> None:
    # prevent- + 256 characters does not fit a commitment id (256): a digest names it.
    long_id = "티" * 256
    live.load([
        complaint("2026-11-01T01:00:00Z", long_id),
        ev("support.ticket_resolved", "hanbit", "2026-11-02T01:00:00Z", KIM, {
            "ticket_id": long_id, "prevention": {"action": "재발 방지"}}),
    ])  # fmt: skip
    [made] = live.view("hanbit")["commitments"]["open"]
    assert made["commitment_id"].startswith("prevent-") and len(made["commitment_id"]) == 72
    assert made["prevention"]["ticket_id"] == long_id
    counts = live.get("/v1/admin/dead-letters")["counts"]
    assert {c["total"] for c in counts.values()} == {0}


def test_needs_are_tracked_items_across_accounts(live: Live) -> None:
    need = ev("customer.need_identified", "hanbit", "2026-11-18T02:00:00Z", ENGINEER, {
        "need_id": "N-1", "text": "한국어 음성 인식 정확도 개선", "category": "Speech",
        "priority": "high"}, contacts=[CTO])  # fmt: skip
    solved = ev("customer.need_addressed", "hanbit", "2026-11-18T05:00:00Z", ENGINEER, {
        "need_id": "N-1", "how": "방문 중 사전 튜닝", "on_site": True})  # fmt: skip
    other = ev("customer.need_identified", "daehan", "2026-11-20T02:00:00Z", JANG, {
        "need_id": "N-7", "text": "SSO 연동", "category": "security"})  # fmt: skip
    low = ev(
        "customer.need_identified",
        "hanbit",
        "2026-11-21T02:00:00Z",
        PARK,
        {"need_id": "N-2", "text": "월간 리포트", "category": "reporting", "priority": "low"},
    )
    live.load([need, other, low])
    listed = live.get("/v1/needs")["items"]
    assert [(i["account_id"], i["need_id"]) for i in listed] == [
        ("hanbit", "N-2"), ("daehan", "N-7"), ("hanbit", "N-1")]  # fmt: skip
    assert listed[2]["identified_by"]["id"] == "emp-han" and listed[2]["status"] == "open"
    live.load([solved])
    assert [i["need_id"] for i in live.get("/v1/needs", status="open")["items"]] == ["N-2", "N-7"]
    [done] = live.get("/v1/needs", status="addressed", category="speech")["items"]
    assert done["addressed"]["on_site"] is True and done["addressed"]["event_id"] == \
        solved["event_id"]  # fmt: skip
    assert live.get("/v1/needs", status="all", department="engineering")["items"][0][
        "need_id"] == "N-1"  # fmt: skip
    page = live.get("/v1/needs", status="all", limit=2)
    rest = live.get("/v1/needs", status="all", limit=2, cursor=page["next_cursor"])
    assert [i["need_id"] for i in page["items"] + rest["items"]] == ["N-2", "N-7", "N-1"]
    assert rest["next_cursor"] is None
    assert live.http.get("/v1/needs", params={"department": "ops"}).status_code == 422
    assert live.http.get("/v1/needs", params={"cursor": "x"}).status_code == 422
    needs = live.view("hanbit")["needs"]
    assert [n["need_id"] for n in needs["open"]] == ["N-2"]
    assert [n["need_id"] for n in needs["solved_on_site_90d"]] == ["N-1"]
    assert needs["counts"] == {"open": 1, "addressed_90d": 1, "solved_on_site_90d": 1}


def test_value_renewals_and_the_unattended_renewal_rule(live: Live) -> None:
    # Now is 2026-11-23T01:00Z. The renewal is 20 days away; the last touch 45 days ago.
    order = ev("sales.order_placed", "hanbit", "2026-10-09T01:00:00Z", PARK, {
        "order_id": "O-1", "amount": 12_000_000, "currency": "KRW",
        "products": ["OneVoice Cloud"]})  # fmt: skip
    old = ev("sales.order_placed", "hanbit", "2024-03-01T01:00:00Z", PARK, {
        "order_id": "O-0", "amount": 5_000, "currency": "USD"})  # fmt: skip
    renewal = ev("success.renewal_scheduled", "hanbit", "2026-10-09T01:00:00Z", JANG, {
        "contract_id": "K-1", "renews_at": "2026-12-13T01:00:00Z", "amount": 24_000_000,
        "currency": "KRW"})  # fmt: skip
    small = ev("sales.order_placed", "daehan", "2026-11-20T01:00:00Z", PARK, {
        "order_id": "O-9", "amount": 1_000_000, "currency": "KRW"})  # fmt: skip
    last_call = call("hanbit", "2026-10-09T02:00:00Z")  # 45 days ago: the last touch
    live.load([register("hanbit", "한빛소프트"), register("daehan", "대한물류"), old, order,
               renewal, last_call, small])  # fmt: skip
    view = live.view("hanbit")
    value = view["value"]
    assert value["last_order"]["order_id"] == "O-1"
    assert value["orders_365d"] == {"KRW": {"count": 1, "amount": 12_000_000}}
    assert value["lifetime_value"] == {"KRW": 12_000_000, "USD": 5_000}
    assert value["next_renewal"] == {
        "contract_id": "K-1",
        "renews_at": "2026-12-13T01:00:00Z",
        "amount": 24_000_000,
        "currency": "KRW",
        "event_id": renewal["event_id"],
        "days_until": 20,
    }
    factors = {f["name"]: f for f in view["health"]["factors"]}
    assert factors["unattended_renewal"]["evidence"] == [renewal["event_id"],
                                                         last_call["event_id"]]  # fmt: skip
    assert factors["unattended_renewal"]["effect"] == -15
    assert [i["account_id"] for i in live.get("/v1/accounts", renewal_within="30d")["items"]] \
        == ["hanbit"]  # fmt: skip
    assert live.get("/v1/accounts", renewal_within="14d")["items"] == []
    assert [i["account_id"] for i in live.get("/v1/accounts", sort="value")["items"]] == [
        "hanbit", "daehan"]  # fmt: skip
    first = live.get("/v1/accounts", sort="value", limit=1)
    second = live.get("/v1/accounts", sort="value", limit=1, cursor=first["next_cursor"])
    assert [i["account_id"] for i in first["items"] + second["items"]] == ["hanbit", "daehan"]
    # A touch brings the factor back; a renewal moves the next date; a churn ends it.
    live.load([call("hanbit", "2026-11-22T01:00:00Z")])
    names = [f["name"] for f in live.view("hanbit")["health"]["factors"]]
    assert "unattended_renewal" not in names
    live.load([ev("success.renewed", "hanbit", "2026-11-22T02:00:00Z", JANG,
                  {"contract_id": "K-1", "renews_at": "2027-12-13T01:00:00Z"})])  # fmt: skip
    assert live.view("hanbit")["value"]["next_renewal"]["renews_at"] == "2027-12-13T01:00:00Z"
    churn = ev("success.churned", "hanbit", "2026-11-22T03:00:00Z", JANG, {"reason": "예산 삭감"})
    live.load([churn])
    value = live.view("hanbit")["value"]
    assert value["next_renewal"] is None
    assert value["churned"]["event_id"] == churn["event_id"]


def test_needs_with_the_longest_ids_page_through(live: Live) -> None:
    account, ids = "계" * 128, ["요" * 255 + "1", "요" * 255 + "2"]
    live.load([ev("customer.need_identified", account, f"2026-11-2{i}T00:00:00Z", JANG,
                  {"need_id": need, "text": "t", "category": "c"})
               for i, need in enumerate(ids)])  # fmt: skip
    first = live.get("/v1/needs", limit=1)
    second = live.get("/v1/needs", limit=1, cursor=first["next_cursor"])
    assert [i["need_id"] for i in first["items"] + second["items"]] == ids[::-1]
