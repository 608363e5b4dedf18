"""What leaders ask every week (issue 11), over real HTTP on both backends with a fixed clock.

Clock: FIXED_NOW = 2026-11-23T01:00:00Z = Monday 2026-11-23 10:00 in Asia/Seoul (KST = UTC+9).
The story spans the two business weeks (Monday 00:00 KST) before the current one:

    week 1  label 2026-11-09  [2026-11-08T15:00Z, 2026-11-15T15:00Z)
    week 2  label 2026-11-16  [2026-11-15T15:00Z, 2026-11-22T15:00Z)

Other moments the rules use:
    silent: no customer contact at or after now - 14 days = 2026-11-09T01:00Z
    neglected at week 1's end (day 11-16 KST): last touch before 10-18 00:00 KST = 10-17T15:00Z
    neglected at week 2's end (day 11-23 KST): last touch before 10-25 00:00 KST = 10-24T15:00Z

Accounts (registered 2026-01-05):
    hanbit  한빛전자  owners sales emp-park, success emp-jang
    daehan  대한물류  owners sales emp-seo,  support emp-kim
    mirae   미래금융  owners sales emp-park
    sejong  세종병원  owners sales emp-seo   (never contacted)
    gaon    가온테크  owners success emp-jang (last touched 2026-09-01: neglected)

Every expected value below is computed by hand from the issue's definitions; the arithmetic is
in the comments next to it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import pytest

from services.core.settings import Settings
from tests.conftest import wait_projected
from tests.e2e.test_view_http import (
    BUYER,
    CHOI,
    CTO,
    JANG,
    KIM,
    LEE,
    PARK,
    SEO,
    Live,
    ev,
    register,
    running,
)
from tests.samples import make_event

# --- the calendar ------------------------------------------------------------------------------

W1_FROM, W1_TO = "2026-11-08T15:00:00Z", "2026-11-15T15:00:00Z"
W2_FROM, W2_TO = "2026-11-15T15:00:00Z", "2026-11-22T15:00:00Z"
W1, W2 = "2026-11-09", "2026-11-16"  # period labels: the weeks' first (local) days
BOTH = {"from": W1_FROM, "to": W2_TO}
WEEK2 = {"from": W2_FROM, "to": W2_TO}

# --- people ------------------------------------------------------------------------------------

HR = {"id": "hr-1", "name": "인사팀", "department": "hr"}
YOO = {"id": "emp-yoo", "name": "유재석", "department": "sales", "title": "VP Sales"}
BAEK = {"id": "emp-baek", "name": "백현우", "department": "finance", "title": "CFO"}
KANG = {"id": "emp-kang", "name": "강민수", "department": "leadership", "title": "전략기획 이사"}

MIRAE_CIO = {"id": "mr-cio", "name": "한도윤", "email": "dy.han@mirae.example", "title": "CIO"}
MIRAE_CFO = {"id": "mr-cfo", "name": "송지아", "email": "ja.song@mirae.example", "title": "CFO"}
DAEHAN_CEO = {"id": "dh-ceo", "name": "문태식", "title": "대표이사"}

HANBIT, DAEHAN, MIRAE, SEJONG, GAON = "hanbit", "daehan", "mirae", "sejong", "gaon"
FORMULA_COMMENT = "=_= 답변이 너무 늦어요"  # a customer's words that a spreadsheet would run


def org(event_type: str, at: str, payload: dict[str, Any]) -> dict[str, Any]:
    """An organisation event: no account, contacts or participants."""
    return make_event(event_type, occurred_at=at, actor=HR, payload=payload, summary="인사 기록")


def hire(person: dict[str, Any], title: str | None = None) -> dict[str, Any]:
    payload = {"employee_id": person["id"], "name": person["name"],
               "department": person["department"], "title": title or person["title"]}  # fmt: skip
    return org("employee.registered", "2026-01-02T00:00:00Z", payload)


def target(metric: str, group: str, value: float, at: str) -> dict[str, Any]:
    return org("kpi.target_set", at, {"metric": metric, "group_by": "department", "group": group,
                                      "period": "week", "target": value})  # fmt: skip


def ticket(account: str, at: str, ticket_id: str, subject: str, category: str, severity: str,
           complaint: bool = True) -> dict[str, Any]:  # fmt: skip
    return ev("support.ticket_opened", account, at, KIM, {
        "ticket_id": ticket_id, "subject": subject, "category": category, "severity": severity,
        "complaint": complaint}, f"티켓 {ticket_id}: {subject}")  # fmt: skip


def resolved(account: str, at: str, ticket_id: str, **extra: Any) -> dict[str, Any]:
    return ev("support.ticket_resolved", account, at, KIM, {"ticket_id": ticket_id, **extra},
              f"티켓 {ticket_id} 해결")  # fmt: skip


def story() -> dict[str, dict[str, Any]]:
    """44 events. Tags: w0 = before week 1, w1 / w2 = the weeks."""
    e = {
        # -- our organisation --
        "HIRE_CHOI": hire(CHOI),  # leadership, CEO: an executive
        "HIRE_YOO": hire(YOO),  # sales, "VP Sales": ingest sets executive=true (title rule)
        "HIRE_BAEK": hire(BAEK),  # finance, CFO: an executive who never meets anyone
        "HIRE_SEO": hire(SEO, "영업 대리"),  # an owner, silent since 2026-10-20
        "HIRE_KANG": hire(KANG),  # leadership without flag: an executive ...
        "KANG_LEFT": org("employee.updated", "2026-10-01T00:00:00Z",
                         {"employee_id": "emp-kang", "active": False}),  # ... until he left
        "T_SALES_TOUCHED": target("accounts_touched", "sales", 2, "2026-11-01T00:00:00Z"),
        "T_SALES_TOUCHED_2": target("accounts_touched", "sales", 3, "2026-11-20T00:00:00Z"),
        "T_SALES_OVERDUE": target("commitments_overdue", "sales", 0, "2026-11-01T00:00:00Z"),
        "T_SUPPORT_RECUR": target("complaints_recurring", "support", 0, "2026-11-01T00:00:00Z"),
        "T_SUPPORT_CSAT": target("csat_average", "support", 4, "2026-11-01T00:00:00Z"),
        # -- accounts --
        "R_HANBIT": register(HANBIT, "한빛전자", segment="enterprise",
                             owners={"sales": "emp-park", "success": "emp-jang"}),
        "R_DAEHAN": register(DAEHAN, "대한물류", segment="smb",
                             owners={"sales": "emp-seo", "support": "emp-kim"}),
        "R_MIRAE": register(MIRAE, "미래금융", segment="enterprise", owners={"sales": "emp-park"}),
        "R_SEJONG": register(SEJONG, "세종병원", segment="public", owners={"sales": "emp-seo"}),
        "R_GAON": register(GAON, "가온테크", segment="smb", owners={"success": "emp-jang"}),
        # -- w0 --
        "GAON_REVIEW": ev("success.review_held", GAON, "2026-09-01T01:00:00Z", JANG,
                          {"subject": "연간 리뷰"}, "연간 리뷰"),
        "SEO_CALL": ev("sales.call_logged", DAEHAN, "2026-10-20T01:00:00Z", SEO,
                       {"subject": "계약 갱신 안부"}, "갱신 안부 전화", [DAEHAN_CEO]),
        # -- w1 --
        "T5": ticket(HANBIT, "2026-11-09T02:00:00Z", "T-5", "청구서 발행 문의", "billing", "low",
                     complaint=False),  # a question, not a complaint
        "SEMINAR": ev("marketing.event_attended", HANBIT, "2026-11-09T03:00:00Z", LEE,
                      {"event_name": "AI 고객경험 세미나"}, "세미나 참석", [BUYER]),
        "T1": ticket(HANBIT, "2026-11-10T01:00:00Z", "T-1", "청구서 금액 오류", "billing", "high"),
        "DEMO_ASKED": ev("marketing.campaign_responded", MIRAE, "2026-11-10T02:00:00Z", LEE,
                         {"campaign_id": "C-WINTER", "response": "데모 요청", "channel": "email"},
                         "겨울 캠페인 응답", [MIRAE_CIO]),  # never followed up: stale
        "Y1": ev("sales.meeting_held", HANBIT, "2026-11-10T05:00:00Z", PARK, {
            "subject": "보안 요구사항 미팅", "next_steps": "보안 검토 자료 전달"},
            "VP 동행 미팅", [CTO], participants=[YOO]),
        "CM2": ev("commitment.made", HANBIT, "2026-11-10T06:00:00Z", PARK, {
            "commitment_id": "CM-2", "text": "보안 검토 자료 전달",
            "due_at": "2026-11-14T09:00:00Z"}, "자료 전달 약속"),
        "T1R": resolved(HANBIT, "2026-11-11T05:00:00Z", "T-1", resolution="환불 처리",
                        cause={"category": "billing", "text": "세금계산서 이중 발행"},
                        prevention={"action": "발행 전 중복 검사 추가", "owner": "emp-kim",
                                    "due_at": "2026-12-15T00:00:00Z"}),
        "N1": ev("customer.need_identified", HANBIT, "2026-11-11T06:00:00Z", PARK, {
            "need_id": "N-1", "text": "SSO 연동 지원", "category": "security"}, "SSO 요구"),
        "CSAT1": ev("support.csat_recorded", HANBIT, "2026-11-12T01:00:00Z", KIM, {
            "score": 4, "ticket_id": "T-1", "comment": "환불이 빨랐어요"}, "CSAT 4/5"),
        "Y2": ev("sales.meeting_held", DAEHAN, "2026-11-12T06:00:00Z", YOO,
                 {"subject": "물류 파트너십 논의"}, "VP 방문", [DAEHAN_CEO]),
        "Y3": ev("commitment.made", DAEHAN, "2026-11-12T07:00:00Z", YOO, {
            "commitment_id": "CM-1", "text": "요금제 제안서 전달",
            "due_at": "2026-11-20T09:00:00Z"}, "제안서 약속"),  # never fulfilled
        "T4": ticket(MIRAE, "2026-11-13T01:00:00Z", "T-4", "로그인 실패 불만", "로그인", "normal"),
        "CM2F": ev("commitment.fulfilled", HANBIT, "2026-11-13T08:00:00Z", PARK,
                   {"commitment_id": "CM-2"}, "자료 전달 완료"),
        "L1": ev("leadership.meeting_held", MIRAE, "2026-11-13T10:00:00Z", CHOI, {
            "subject": "미래금융 경영진 오찬", "heard": ["디지털 전환 예산 확대"],
            "concerns": ["보안 인증 일정"]}, "경영진 오찬", [MIRAE_CIO]),
        # -- w2 --
        "T4R": resolved(MIRAE, "2026-11-16T01:00:00Z", "T-4", resolution="비밀번호 초기화"),
        "T3": ticket(DAEHAN, "2026-11-16T02:00:00Z", "T-3", "배송 지연 불만", "배송", "high"),
        "QUOTE_ASKED": ev("marketing.campaign_responded", MIRAE, "2026-11-17T01:00:00Z", LEE,
                          {"campaign_id": "C-WINTER", "response": "견적 요청"},
                          "겨울 캠페인 응답", [MIRAE_CFO]),  # followed up by S1 in time
        "T3R": resolved(DAEHAN, "2026-11-17T08:00:00Z", "T-3", resolution="재배송 완료"),
        "CSAT2": ev("support.csat_recorded", DAEHAN, "2026-11-17T09:00:00Z", KIM, {
            "score": 1, "ticket_id": "T-3", "comment": FORMULA_COMMENT}, "CSAT 1/5"),
        "T2": ticket(HANBIT, "2026-11-18T02:00:00Z", "T-2", "청구서 금액 오류 재발", "Billing",
                     "urgent"),  # the same category again, after the fix
        "S1": ev("sales.meeting_held", MIRAE, "2026-11-19T02:00:00Z", PARK, {
            "subject": "견적 협의", "next_steps": "보안 심사 서류 전달"}, "CFO 견적 협의",
            [MIRAE_CFO]),
        "N2": ev("customer.need_identified", MIRAE, "2026-11-19T03:00:00Z", PARK, {
            "need_id": "N-2", "text": "SSO 연동", "category": "Security"}, "SSO 요구"),
        "L2": ev("leadership.meeting_held", HANBIT, "2026-11-19T11:00:00Z", CHOI, {
            "subject": "한빛전자 CEO 만찬", "heard": ["내년 해외 확장 계획"],
            "concerns": ["청구 오류 반복", "가격 인상 우려"], "complaints": ["장애 대응 지연"],
            "learnings": ["경쟁사와 접촉 중"]}, "CEO 만찬", [CTO]),
        "C3": ev("commitment.made", HANBIT, "2026-11-19T12:00:00Z", CHOI, {
            "commitment_id": "CM-3", "text": "청구 오류 재발 방지책 공유",
            "due_at": "2026-11-26T09:00:00Z"}, "재발 방지 약속"),
        "REVIEW": ev("success.review_held", HANBIT, "2026-11-20T01:00:00Z", JANG, {
            "subject": "분기 비즈니스 리뷰", "risks": ["챔피언 이직 예정"]}, "QBR",
            [CTO, BUYER]),  # follows up SEMINAR (BUYER), but 11 days late
        "WHITEPAPER": ev("marketing.content_engaged", DAEHAN, "2026-11-20T03:00:00Z", LEE,
                         {"content": "물류 자동화 백서", "action": "downloaded"}, "백서 다운로드",
                         [DAEHAN_CEO]),  # open, not yet stale
    }  # fmt: skip
    return e


# The target set through PUT /v1/kpi-targets (the route appends a kpi.target_set event).
PUT_TARGET = {"metric": "executive_touches", "group_by": "department", "group": "leadership",
              "period": "week", "target": 2, "actor": HR,
              "occurred_at": "2026-11-02T00:00:00Z"}  # fmt: skip


@pytest.fixture
def live(settings: Settings) -> Iterator[Live]:
    with running(settings, "Asia/Seoul") as started:
        yield started


@pytest.fixture
def told(live: Live) -> dict[str, dict[str, Any]]:
    """The story loaded, and the leadership target set through PUT /v1/kpi-targets."""
    e = story()
    live.load(list(e.values()))
    answer = live.http.put("/v1/kpi-targets", json=PUT_TARGET)
    assert answer.status_code == 202, answer.text
    wait_projected(live.services, answer.json())
    e["T_LEADERSHIP_PUT"] = {"event_id": answer.json()["event_id"]}
    return e


def ids(e: dict[str, dict[str, Any]], *keys: str) -> list[str]:
    return [e[k]["event_id"] for k in keys]


def contact(e: dict[str, dict[str, Any]], key: str) -> dict[str, Any]:
    """An employee's expected ``last_customer_contact``: that event's time, id and account."""
    event = e[key]
    return {"at": event["occurred_at"], "event_id": event["event_id"],
            "account_id": event["account_id"]}  # fmt: skip


# --- 1. the roster ------------------------------------------------------------------------------


def test_the_roster_names_the_executives_and_the_silent(live: Live, told: dict[str, Any]) -> None:
    e = told
    executives = live.get("/v1/employees", executive="true")
    # CHOI (leadership), YOO (VP: title rule), BAEK (CFO: title rule); KANG left (inactive)
    assert [p["employee_id"] for p in executives["items"]] == ["emp-baek", "emp-choi", "emp-yoo"]
    assert executives["count"] == 3
    people = {p["employee_id"]: p for p in executives["items"]}
    assert all(p["executive"] and p["registered"] and p["active"] for p in people.values())
    assert (people["emp-yoo"]["department"], people["emp-yoo"]["title"]) == ("sales", "VP Sales")
    # latest customer events each made or took part in; BAEK never met a customer
    assert people["emp-choi"]["last_customer_contact"] == contact(e, "C3")  # 11-19T12:00Z
    assert people["emp-yoo"]["last_customer_contact"] == contact(e, "Y3")  # 11-12T07:00Z
    assert people["emp-baek"]["last_customer_contact"] is None
    # silent = no contact at or after 2026-11-09T01:00Z: BAEK (never); YOO (11-12) is not
    assert {k: p["silent"] for k, p in people.items()} == {
        "emp-baek": True, "emp-choi": False, "emp-yoo": False}  # fmt: skip
    assert people["emp-baek"]["event_ids"] == ids(e, "HIRE_BAEK")
    gone = live.get("/v1/employees", executive="true", active="false")
    assert [p["employee_id"] for p in gone["items"]] == ["emp-kang"]
    assert gone["items"][0]["event_ids"] == ids(e, "HIRE_KANG", "KANG_LEFT")

    silent = live.get("/v1/employees", silent="true")
    # BAEK (never), SEO (last 2026-10-20 < 11-09T01:00Z); KANG is inactive, so not listed
    assert [p["employee_id"] for p in silent["items"]] == ["emp-baek", "emp-seo"]
    assert silent["count"] == 2
    seo = silent["items"][1]
    assert seo["last_customer_contact"] == contact(e, "SEO_CALL")
    assert (seo["accounts_owned"], seo["title"], seo["registered"]) == (2, "영업 대리", True)

    everyone = live.get("/v1/employees")
    # registered and active: baek, choi, seo, yoo; seen in customer events only: jang, kim,
    # lee, park (the HR actor of organisation events is nobody's customer contact)
    assert [(p["employee_id"], p["registered"]) for p in everyone["items"]] == [
        ("emp-baek", True), ("emp-choi", True), ("emp-jang", False), ("emp-kim", False),
        ("emp-lee", False), ("emp-park", False), ("emp-seo", True), ("emp-yoo", True)]  # fmt: skip
    owned = {p["employee_id"]: p["accounts_owned"] for p in everyone["items"]}
    assert owned == {"emp-baek": 0, "emp-choi": 0, "emp-jang": 2, "emp-kim": 1, "emp-lee": 0,
                     "emp-park": 2, "emp-seo": 2, "emp-yoo": 0}  # fmt: skip


# --- 2. the leadership report -------------------------------------------------------------------

ZERO = {"customers_met": 0, "touches": 0, "commitments": 0, "heard": 0, "concerns": 0,
        "complaints": 0, "learnings": 0}  # fmt: skip
# YOO in week 1: Y1 (hanbit, participant), Y2 (daehan) = 2 touches, Y3 (daehan) = 1 commitment;
# accounts {hanbit, daehan} = 2; no leadership.meeting_held, so nothing heard
YOO_WEEK1 = {**ZERO, "customers_met": 2, "touches": 2, "commitments": 1}
# CHOI in week 1: L1 (mirae): 1 touch, heard 1, concerns 1
CHOI_WEEK1 = {**ZERO, "customers_met": 1, "touches": 1, "heard": 1, "concerns": 1}
# CHOI in week 2: L2 (hanbit) + C3 (commitment, hanbit): accounts {hanbit}; heard 1,
# concerns 2, complaints 1, learnings 1
CHOI_WEEK2 = {"customers_met": 1, "touches": 1, "commitments": 1, "heard": 1, "concerns": 2,
              "complaints": 1, "learnings": 1}  # fmt: skip


def test_the_leadership_report_lists_the_executive_who_met_nobody(
    live: Live, told: dict[str, Any]
) -> None:
    e = told
    report = live.get("/v1/reports/leadership", **WEEK2)
    assert (report["from"], report["to"]) == (W2_FROM, W2_TO)
    assert report["previous"] == {"from": W1_FROM, "to": W1_TO}
    entries = {x["executive"]["id"]: x for x in report["executives"]}
    assert list(entries) == ["emp-baek", "emp-choi", "emp-yoo"]  # every active executive
    yoo = entries["emp-yoo"]
    assert yoo["executive"] == {**YOO, "executive": True}
    assert (yoo["counts"], yoo["previous"]) == (ZERO, YOO_WEEK1)
    assert yoo["counts"]["customers_met"] == 0 and yoo["previous"]["customers_met"] == 2
    assert (yoo["customers"], yoo["touches"], yoo["commitments"]) == ([], [], [])
    choi = entries["emp-choi"]
    assert (choi["counts"], choi["previous"]) == (CHOI_WEEK2, CHOI_WEEK1)
    assert [c["account_id"] for c in choi["customers"]] == [HANBIT]
    assert [t["event_id"] for t in choi["touches"]] == ids(e, "L2")
    assert [c["event_id"] for c in choi["commitments"]] == ids(e, "C3")
    assert [c["text"] for c in choi["concerns"]] == ["청구 오류 반복", "가격 인상 우려"]
    baek = entries["emp-baek"]
    assert (baek["counts"], baek["previous"]) == (ZERO, ZERO)
    assert baek["executive"]["department"] == "finance"

    # week 1 by its local bounds: YOO met hanbit (as a participant) and daehan
    first = live.get("/v1/reports/leadership", **{"from": "2026-11-09T00:00:00+09:00",
                                                  "to": "2026-11-16T00:00:00+09:00"})  # fmt: skip
    assert (first["from"], first["to"]) == (W1_FROM, W1_TO)
    week1 = {x["executive"]["id"]: x for x in first["executives"]}
    assert week1["emp-yoo"]["counts"] == YOO_WEEK1
    assert sorted(c["account_id"] for c in week1["emp-yoo"]["customers"]) == [DAEHAN, HANBIT]
    assert [t["event_id"] for t in week1["emp-yoo"]["touches"]] == ids(e, "Y1", "Y2")
    assert week1["emp-choi"]["counts"] == CHOI_WEEK1
    assert week1["emp-choi"]["previous"] == ZERO  # nothing in the week before


# --- 3. the voice of the customer ---------------------------------------------------------------

# (kind, theme casefolded) -> (count, accounts, previous, change), week 2 against week 1.
VOICE_WEEK2 = {
    ("complaint", "billing"): (1, 1, 1, 0),  # T-2 "Billing" now; T-1 "billing" before
    ("complaint", "배송"): (1, 1, 0, 1),  # T-3 (daehan)
    ("complaint", "로그인"): (0, 0, 1, -1),  # T-4 in week 1 only: a fall, 0 - 1
    ("low_csat", "low_csat"): (1, 1, 0, 1),  # CSAT 1 (daehan); week 1's 4 is not low
    ("success_risk", "success_risk"): (1, 1, 0, 1),  # REVIEW: one risk
    ("need", "security"): (1, 1, 1, 0),  # N-2 "Security" (mirae); N-1 "security" (hanbit)
    ("executive_concern", "executive_concern"): (2, 1, 1, 1),  # L2: 2 (hanbit); L1: 1
    ("executive_complaint", "executive_complaint"): (1, 1, 0, 1),  # L2
    ("next_step", "next_step"): (1, 1, 1, 0),  # S1 now; Y1 before
}
# Heard by support only: T-2, T-3, CSAT2 now; T-1, T-4 before.
VOICE_WEEK2_SUPPORT = {
    ("complaint", "billing"): (1, 1, 1, 0),
    ("complaint", "배송"): (1, 1, 0, 1),
    ("complaint", "로그인"): (0, 0, 1, -1),
    ("low_csat", "low_csat"): (1, 1, 0, 1),
}


def voice_groups(report: dict[str, Any]) -> dict[tuple[str, str], tuple[int, int, int, int]]:
    return {
        (g["kind"], g["theme"].casefold()): (g["count"], g["accounts"], g["previous"], g["change"])
        for g in report["groups"]
    }


def test_the_voice_of_the_customer_week_over_week(live: Live, told: dict[str, Any]) -> None:
    e = told
    report = live.get("/v1/reports/voice", **WEEK2)
    assert report["previous"] == {"from": W1_FROM, "to": W1_TO}
    assert voice_groups(report) == VOICE_WEEK2
    groups = {(g["kind"], g["theme"].casefold()): g for g in report["groups"]}
    [low] = groups[("low_csat", "low_csat")]["items"]
    assert (low["text"], low["score"], low["account_id"], low["account_name"], low["event_id"]) == (
        FORMULA_COMMENT,
        1,
        DAEHAN,
        "대한물류",
        e["CSAT2"]["event_id"],
    )
    concerns = groups[("executive_concern", "executive_concern")]["items"]
    assert sorted(i["text"] for i in concerns) == sorted(["청구 오류 반복", "가격 인상 우려"])
    assert {i["event_id"] for i in concerns} == {e["L2"]["event_id"]}
    [step] = groups[("next_step", "next_step")]["items"]
    assert (step["text"], step["event_id"]) == ("보안 심사 서류 전달", e["S1"]["event_id"])
    [risk] = groups[("success_risk", "success_risk")]["items"]
    assert (risk["text"], risk["account_id"]) == ("챔피언 이직 예정", HANBIT)
    [complaint] = groups[("complaint", "billing")]["items"]
    assert (complaint["text"], complaint["event_id"]) == ("청구서 금액 오류 재발",
                                                          e["T2"]["event_id"])  # fmt: skip

    support = live.get("/v1/reports/voice", department="support", **WEEK2)
    assert voice_groups(support) == VOICE_WEEK2_SUPPORT
    needs = live.get("/v1/reports/voice", kind="need", category="SECURITY", **WEEK2)
    assert voice_groups(needs) == {("need", "security"): (1, 1, 1, 0)}


# --- 4. complaint trends ------------------------------------------------------------------------

FIGURES = ("opened", "resolved", "median_hours_to_resolve", "recurring", "recurrences_after_fix",
           "accounts_affected")  # fmt: skip
# Week 1: opened T-1 (hanbit, billing), T-4 (mirae, 로그인); resolved T-1 after
#   11-10T01 -> 11-11T05 = 28 h. T-5 (billing, hanbit, 11-09) is not a complaint, so T-1 is not
#   recurring; T-1's own fix came after it opened.
# Week 2: opened T-3 (daehan, 배송), T-2 (hanbit, Billing); resolved T-4 (11-13T01 -> 11-16T01
#   = 72 h) and T-3 (11-16T02 -> 11-17T08 = 30 h): median (30 + 72) / 2 = 51. T-2 recurs: T-1
#   (billing, 11-10) is within the 90 days from 2026-08-21 00:00 KST; and T-1's prevention
#   (cause billing) was recorded 11-11T05 < 11-18T02: a recurrence after the fix.
COMPLAINT_TOTALS = {
    W1: (2, 1, 28.0, 0, 0, 2),
    W2: (2, 2, 51.0, 1, 1, 2),
}
COMPLAINTS_BY_CATEGORY = {
    W1: {"billing": (1, 1, 28.0, 0, 0, 1), "로그인": (1, 0, None, 0, 0, 1)},
    W2: {"billing": (1, 0, None, 1, 1, 1), "배송": (1, 1, 30.0, 0, 0, 1),
         "로그인": (0, 1, 72.0, 0, 0, 0)},
}  # fmt: skip
# By owner (any department): hanbit -> emp-park, emp-jang; daehan -> emp-seo, emp-kim;
# mirae -> emp-park.
#   W1: T-1 (hanbit: opened+resolved) -> park, jang; T-4 (mirae: opened) -> park
#   W2: T-2 (hanbit: opened) -> park, jang; T-3 (daehan: opened+resolved) -> seo, kim;
#       T-4 (mirae: resolved, 72 h) -> park
COMPLAINTS_BY_OWNER = {
    W1: {"emp-jang": (1, 1, 28.0, 0, 0, 1), "emp-park": (2, 1, 28.0, 0, 0, 2)},
    W2: {"emp-jang": (1, 0, None, 1, 1, 1), "emp-kim": (1, 1, 30.0, 0, 0, 1),
         "emp-park": (1, 1, 72.0, 1, 1, 1), "emp-seo": (1, 1, 30.0, 0, 0, 1)},
}  # fmt: skip


def figures_of(item: dict[str, Any], names: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(item[f] for f in names)


def test_complaint_trends_show_the_recurrence_after_the_fix(
    live: Live, told: dict[str, Any]
) -> None:
    e = told
    report = live.get("/v1/reports/complaints", period="week", **BOTH)
    assert (report["period"], report["group_by"], report["time_zone"]) == (
        "week", "category", "Asia/Seoul")  # fmt: skip
    assert [(p["period"], p["from"], p["to"]) for p in report["periods"]] == [
        (W1, W1_FROM, W1_TO), (W2, W2_FROM, W2_TO)]  # fmt: skip
    for p in report["periods"]:
        assert figures_of(p["total"], FIGURES) == COMPLAINT_TOTALS[p["period"]], p["period"]
        groups = {g["group"].casefold(): figures_of(g, FIGURES) for g in p["groups"]}
        assert groups == COMPLAINTS_BY_CATEGORY[p["period"]], p["period"]
    week1, week2 = report["periods"]
    assert sorted(week1["total"]["event_ids"]) == sorted(ids(e, "T1", "T4"))
    assert sorted(week2["total"]["event_ids"]) == sorted(ids(e, "T3", "T2"))

    by_owner = live.get("/v1/reports/complaints", period="week", group_by="owner", **BOTH)
    for p in by_owner["periods"]:
        groups = {g["group"]: figures_of(g, FIGURES) for g in p["groups"]}
        assert groups == COMPLAINTS_BY_OWNER[p["period"]], p["period"]
        assert figures_of(p["total"], FIGURES) == COMPLAINT_TOTALS[p["period"]], p["period"]


# --- 5. handoffs --------------------------------------------------------------------------------

HANDOFF_FIGURES = ("signals", "followed_up", "followed_up_in_time", "open", "stale",
                   "median_hours_to_follow_up", "accounts_left")  # fmt: skip
# Signals (deadline = local midnight of the signal's KST day + 7 days):
#   SEMINAR     hanbit 11-09T03Z (BUYER), no campaign; REVIEW names BUYER 11-20T01Z, after the
#               deadline 11-16 00:00 KST = 11-15T15Z: followed up, late, 11 d - 2 h = 262 h
#   DEMO_ASKED  mirae 11-10T02Z (CIO), C-WINTER; only CHOI (leadership) met the CIO since:
#               open; deadline 11-17 00:00 KST = 11-16T15Z <= now: stale; age 12 d 23 h -> 12
#   QUOTE_ASKED mirae 11-17T01Z (CFO), C-WINTER; S1 names the CFO 11-19T02Z: 49 h, in time
#   WHITEPAPER  daehan 11-20T03Z (CEO), no campaign; open; deadline 11-27 KST: not stale;
#               age 2 d 22 h -> 2
HANDOFF_TOTAL = (4, 2, 1, 2, 1, 155.5, 2)  # median (49 + 262) / 2; left: mirae, daehan
HANDOFF_CAMPAIGNS = {
    "C-WINTER": (2, 1, 1, 1, 1, 49.0, 1),  # DEMO_ASKED, QUOTE_ASKED
    None: (2, 1, 0, 1, 0, 262.0, 1),  # SEMINAR, WHITEPAPER
}
# sales and success owners: hanbit -> park, jang; mirae -> park; daehan -> seo (kim: support)
HANDOFF_OWNERS = {
    "emp-jang": (1, 1, 0, 0, 0, 262.0, 0),  # SEMINAR
    "emp-park": (3, 2, 1, 1, 1, 155.5, 1),  # SEMINAR, DEMO_ASKED, QUOTE_ASKED
    "emp-seo": (1, 0, 0, 1, 0, None, 1),  # WHITEPAPER
}


def test_handoff_follow_through_names_the_stale_one(live: Live, told: dict[str, Any]) -> None:
    e = told
    report = live.get("/v1/reports/handoffs", **BOTH)
    assert report["handoff_days"] == 7
    assert figures_of(report["total"], HANDOFF_FIGURES) == HANDOFF_TOTAL
    campaigns = {c["campaign_id"]: figures_of(c, HANDOFF_FIGURES) for c in report["campaigns"]}
    assert campaigns == HANDOFF_CAMPAIGNS
    owners = {o["owner"]: figures_of(o, HANDOFF_FIGURES) for o in report["owners"]}
    assert owners == HANDOFF_OWNERS
    left = report["left"]
    assert left["count"] == 2
    assert [(i["event_id"], i["account_id"], i["stale"], i["age_days"]) for i in left["items"]] \
        == [(e["DEMO_ASKED"]["event_id"], MIRAE, True, 12),
            (e["WHITEPAPER"]["event_id"], DAEHAN, False, 2)]  # fmt: skip
    stale = left["items"][0]
    assert stale["contact"]["name"] == "한도윤"
    assert (stale["campaign_id"], stale["detail"], stale["owners"]) == (
        "C-WINTER", "데모 요청", ["emp-park"])  # fmt: skip
    assert left["items"][1]["owners"] == ["emp-seo"]
    # one campaign only
    winter = live.get("/v1/reports/handoffs", campaign_id="C-WINTER", **BOTH)
    assert figures_of(winter["total"], HANDOFF_FIGURES) == HANDOFF_CAMPAIGNS["C-WINTER"]
    assert [i["event_id"] for i in winter["left"]["items"]] == ids(e, "DEMO_ASKED")


# --- 6. KPIs beside their targets -----------------------------------------------------------------

METRICS = ("accounts_touched", "accounts_neglected", "accounts_never_contacted",
           "executive_touches", "complaints_opened", "complaints_recurring",
           "commitments_kept_on_time", "commitments_overdue", "handoffs_followed_up",
           "csat_average", "conflicting_offers")  # fmt: skip
# A department's accounts (owned, or touched before the period's end):
#   W1 end: sales {hanbit, daehan, mirae, sejong}; marketing {hanbit, mirae} (SEMINAR,
#           DEMO_ASKED); support {daehan; hanbit, mirae}; success {hanbit, gaon};
#           leadership {mirae} (L1)
#   W2 end: marketing + daehan (WHITEPAPER); leadership + hanbit (L2); the others as in W1
# Flows:
#   touched W1: sales {hanbit (Y1, CM2, N1, CM2F), daehan (Y2, Y3)} = 2; marketing {hanbit,
#     mirae} = 2; support {hanbit (T5, T1, T1R, CSAT1), mirae (T4)} = 2; leadership {mirae} = 1;
#     success 0 (gaon's review was in September)
#   touched W2: sales {mirae (S1, N2)} = 1; marketing {mirae, daehan} = 2; support {mirae (T4R),
#     daehan (T3, T3R, CSAT2), hanbit (T2)} = 3; leadership {hanbit} = 1; success {hanbit} = 1
#   executive touches W1: sales Y1 (YOO took part), Y2, Y3 = 3; leadership L1 = 1;
#     W2: leadership L2, C3 = 2; sales 0
#   complaints W1: T-1 (hanbit: sales, marketing, support, success), T-4 (mirae: sales,
#     marketing, support, leadership); none recurring
#   complaints W2: T-3 (daehan: sales, support, marketing), T-2 (hanbit: sales, marketing,
#     support, success, leadership; recurring)
#   kept on time W1: CM-2 by sales, fulfilled 11-13T08 <= due 11-14T09
#   handoffs followed up in time: W1 none (SEMINAR was late, DEMO_ASKED never);
#     W2 QUOTE_ASKED (mirae: sales, marketing, support, leadership)
#   CSAT W1: 4 on hanbit (sales, marketing, support, success); leadership has none: null
#   CSAT W2: 1 on daehan (sales, support, marketing); success and leadership: null
# States at each period's end:
#   neglected: gaon (last touch 09-01, before 10-17T15Z and 10-24T15Z) -> success
#   never contacted: sejong -> sales
#   overdue at W2's end (11-22T15Z): CM-1 by YOO (sales), due 11-20T09, open; CM-3 (due 11-26)
#     and T-1's prevention (due 12-15) are not due; at W1's end nothing was due
#   conflicting offers: the story has no offers
KPI_VALUES = {
    W1: {
        "sales": (2, 0, 1, 3, 2, 0, 1, 0, 0, 4.0, 0),
        "marketing": (2, 0, 0, 0, 2, 0, 0, 0, 0, 4.0, 0),
        "support": (2, 0, 0, 0, 2, 0, 0, 0, 0, 4.0, 0),
        "success": (0, 1, 0, 0, 1, 0, 0, 0, 0, 4.0, 0),
        "leadership": (1, 0, 0, 1, 1, 0, 0, 0, 0, None, 0),
        "finance": (0, 0, 0, 0, 0, 0, 0, 0, 0, None, 0),
    },
    W2: {
        "sales": (1, 0, 1, 0, 2, 1, 0, 1, 1, 1.0, 0),
        "marketing": (2, 0, 0, 0, 2, 1, 0, 0, 1, 1.0, 0),
        "support": (3, 0, 0, 0, 2, 1, 0, 0, 1, 1.0, 0),
        "success": (1, 1, 0, 0, 1, 1, 0, 0, 0, None, 0),
        "leadership": (1, 0, 0, 2, 1, 1, 0, 0, 1, None, 0),
        "finance": (0, 0, 0, 0, 0, 0, 0, 0, 0, None, 0),
    },
}
# (period, group, metric) -> (target in force at the period's end, met); every other figure
# has target and met null.
KPI_TARGETS = {
    (W1, "sales", "accounts_touched"): (2, True),  # 2 >= 2 (target of 11-01)
    (W2, "sales", "accounts_touched"): (3, False),  # 1 < 3 (raised 11-20, before W2's end)
    (W1, "sales", "commitments_overdue"): (0, True),  # 0 <= 0
    (W2, "sales", "commitments_overdue"): (0, False),  # 1 > 0
    (W1, "support", "complaints_recurring"): (0, True),  # 0 <= 0
    (W2, "support", "complaints_recurring"): (0, False),  # 1 > 0
    (W1, "support", "csat_average"): (4, True),  # 4.0 >= 4
    (W2, "support", "csat_average"): (4, False),  # 1.0 < 4
    (W1, "leadership", "executive_touches"): (2, False),  # 1 < 2 (PUT, set 11-02)
    (W2, "leadership", "executive_touches"): (2, True),  # 2 >= 2
}
LOWER_IS_BETTER = ["accounts_at_risk", "accounts_neglected", "accounts_never_contacted",
                   "commitments_overdue", "complaints_opened", "complaints_recurring",
                   "conflicting_offers"]  # fmt: skip


def test_kpis_per_department_beside_their_targets(live: Live, told: dict[str, Any]) -> None:
    e = told
    report = live.get("/v1/reports/kpi", group_by="department", period="week", **BOTH)
    assert (report["period"], report["group_by"]) == ("week", "department")
    assert report["lower_is_better"] == LOWER_IS_BETTER
    assert [(p["period"], p["from"], p["to"], p["as_of"]) for p in report["periods"]] == [
        (W1, W1_FROM, W1_TO, W1_TO), (W2, W2_FROM, W2_TO, W2_TO)]  # fmt: skip
    for p in report["periods"]:
        groups = {g["group"]: g["figures"] for g in p["groups"]}
        for department, values in KPI_VALUES[p["period"]].items():
            figures = groups[department]
            for metric, value in zip(METRICS, values, strict=True):
                goal, met = KPI_TARGETS.get((p["period"], department, metric), (None, None))
                got = figures[metric]
                where = (p["period"], department, metric, got)
                assert (got["value"], got["target"], got["met"]) == (value, goal, met), where
        assert groups["finance"]["accounts_at_risk"]["value"] == 0  # no accounts at all
    # the missed target names the event that set it
    week2 = {g["group"]: g["figures"] for g in report["periods"][1]["groups"]}
    assert week2["sales"]["accounts_touched"]["target_event_id"] == e["T_SALES_TOUCHED_2"][
        "event_id"]  # fmt: skip
    assert week2["leadership"]["executive_touches"]["target_event_id"] == e["T_LEADERSHIP_PUT"][
        "event_id"]  # fmt: skip

    # the targets in force now: the newest per metric, grouping, group and period
    targets = {(t["metric"], t["group"]): (t["target"], t["lower_is_better"], t["event_id"])
               for t in live.get("/v1/kpi-targets")["items"]}  # fmt: skip
    assert targets == {
        ("accounts_touched", "sales"): (3, False, e["T_SALES_TOUCHED_2"]["event_id"]),
        ("commitments_overdue", "sales"): (0, True, e["T_SALES_OVERDUE"]["event_id"]),
        ("complaints_recurring", "support"): (0, True, e["T_SUPPORT_RECUR"]["event_id"]),
        ("csat_average", "support"): (4, False, e["T_SUPPORT_CSAT"]["event_id"]),
        ("executive_touches", "leadership"): (2, False, e["T_LEADERSHIP_PUT"]["event_id"]),
    }
    [put] = [t for t in live.get("/v1/kpi-targets")["items"] if t["group"] == "leadership"]
    assert (put["set_at"], put["set_by"], put["period"], put["group_by"]) == (
        "2026-11-02T00:00:00Z", HR, "week", "department")  # fmt: skip


# --- 7. silent executives and owners --------------------------------------------------------------


def test_the_silent_owner_in_coverage_and_the_feed(live: Live, told: dict[str, Any]) -> None:
    e = told
    section = live.get("/v1/reports/coverage")["silent_employees"]
    # active executives and owners without contact since 11-09T01:00Z: BAEK (executive, never:
    # listed first), SEO (owner of daehan and sejong, last 10-20). KANG left; JANG (11-20),
    # KIM (11-17), PARK (11-19), CHOI (11-19) and YOO (11-12) spoke to customers.
    assert section["count"] == 2
    assert [(i["employee"]["id"], i["roles"], i["last_customer_contact"])
            for i in section["items"]] == [
        ("emp-baek", ["executive"], None),
        ("emp-seo", ["owner"], contact(e, "SEO_CALL")),
    ]  # fmt: skip
    assert section["items"][1]["employee"]["name"] == "서준호"
    assert section["items"][1]["accounts_owned"] == 2
    # ?limit= shows the first (owned accounts counted for those shown), and the full count.
    first = live.get("/v1/reports/coverage", limit=1)["silent_employees"]
    assert (first["count"], first["items"]) == (2, section["items"][:1])

    # SEO: 2026-10-20T01:00Z -> 2026-11-23T01:00Z = 11 + 23 = 34 days
    assert live.get("/v1/feed", employee="emp-seo")["habit"] == {
        "silent": True, "silent_weeks": 2, "last_customer_contact": contact(e, "SEO_CALL"),
        "days_since_contact": 34}  # fmt: skip
    assert live.get("/v1/feed", employee="emp-baek")["habit"] == {
        "silent": True, "silent_weeks": 2, "last_customer_contact": None,
        "days_since_contact": None}  # fmt: skip
    # YOO: 11-12T07:00Z -> 11-23T01:00Z = 10 days 18 hours
    yoo = live.get("/v1/feed", employee="emp-yoo")["habit"]
    assert (yoo["silent"], yoo["days_since_contact"]) == (False, 10)
    assert live.get("/v1/feed", employee="emp-lee")["habit"] is None  # neither
    assert live.get("/v1/feed", employee="emp-kang")["habit"] is None  # inactive


# --- 8. CSV -------------------------------------------------------------------------------------

BOM = b"\xef\xbb\xbf"


def csv_rows(answer: Any) -> list[list[str]]:
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.content.startswith(BOM)
    return list(csv.reader(io.StringIO(answer.content[len(BOM) :].decode("utf-8"))))


def test_reports_as_csv(live: Live, told: dict[str, Any]) -> None:
    e = told
    voice = csv_rows(live.http.get("/v1/reports/voice", params={**WEEK2, "format": "csv"}))
    header = voice[0]
    assert header[:6] == ["kind", "theme", "count", "previous", "change", "accounts"]
    at = {name: header.index(name) for name in ("kind", "text", "account_name", "event_id")}
    [low] = [r for r in voice[1:] if r[at["kind"]] == "low_csat"]
    assert low[at["text"]] == "'" + FORMULA_COMMENT  # never run as a formula
    assert low[at["account_name"]] == "대한물류"
    assert low[at["event_id"]] == e["CSAT2"]["event_id"]
    texts = {r[at["text"]] for r in voice[1:]}
    assert {"청구서 금액 오류 재발", "장애 대응 지연", "챔피언 이직 예정"} <= texts
    assert len(voice) == 1 + 10  # one row per item (2 concerns) + the quiet 로그인 group

    answer = live.http.get("/v1/reports/complaints", params={**BOTH, "period": "week"},
                           headers={"Accept": "text/csv"})  # fmt: skip
    rows = csv_rows(answer)
    assert rows[0] == ["period", "from", "to", "category", *FIGURES]
    by_key = {(r[0], r[3].casefold()): r[4:] for r in rows[1:]}
    assert by_key[(W2, "배송")] == ["1", "1", "30.0", "0", "0", "1"]
    assert by_key[(W2, "(total)")] == ["2", "2", "51.0", "1", "1", "2"]
    assert by_key[(W1, "로그인")] == ["1", "0", "", "0", "0", "1"]

    leaders = csv_rows(live.http.get("/v1/reports/leadership", params=WEEK2,
                                     headers={"Accept": "text/csv"}))  # fmt: skip
    names = {r[leaders[0].index("executive_id")]: r for r in leaders[1:]}
    assert names["emp-yoo"][leaders[0].index("name")] == "유재석"
    assert names["emp-yoo"][leaders[0].index("customers_met")] == "0"
    assert names["emp-yoo"][leaders[0].index("previous_customers_met")] == "2"
    # format=json wins over the Accept header
    both = live.http.get("/v1/reports/leadership", params={**WEEK2, "format": "json"},
                         headers={"Accept": "text/csv"})  # fmt: skip
    assert both.headers["content-type"].startswith("application/json")


# --- 9. refusals --------------------------------------------------------------------------------


NAIVE = "2026-11-09T00:00:00"  # no time zone
REFUSED = [
    ("/v1/reports/leadership", {"from": W2_TO, "to": W2_FROM}, "query.from"),  # from after to
    ("/v1/reports/voice", {"from": W2_TO, "to": W2_FROM}, "query.from"),
    ("/v1/reports/complaints", {**BOTH, "group_by": "team"}, "query.group_by"),
    ("/v1/reports/kpi", {**BOTH, "group_by": "team"}, "query.group_by"),
    ("/v1/reports/kpi", {**BOTH, "period": "day"}, "query.period"),
    ("/v1/reports/complaints", {**BOTH, "period": "day"}, "query.period"),
    ("/v1/reports/voice", {**WEEK2, "department": "operations"}, "query.department"),
    ("/v1/reports/handoffs", {"from": NAIVE, "to": W2_TO}, "query.from"),
    ("/v1/reports/kpi", {"from": NAIVE, "to": W2_TO}, "query.from"),
]


def test_bad_report_queries_are_refused(live: Live) -> None:
    # one app for every case: starting one per case costs seconds on the kafka backend
    for path, params, field in REFUSED:
        answer = live.http.get(path, params=params)
        assert answer.status_code == 422, (path, params, answer.text)
        assert [f["path"] for f in answer.json()["error"]["fields"]] == [field], (path, params)
