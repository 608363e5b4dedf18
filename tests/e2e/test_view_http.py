"""GET /v1/accounts/{id}/view over real HTTP on both backends, with a fixed clock.

Every expected value below is computed by hand from the rules in the README ("The one-voice
view") for FIXED_NOW = 2026-11-23T01:00:00Z, which is 2026-11-23 10:00 in Asia/Seoul. Windows
under Asia/Seoul start at (UTC):
    7d  2026-11-16T15:00Z     30d  2026-10-24T15:00Z     90d  2026-08-25T15:00Z
and under UTC at 2026-11-17T00:00Z, 2026-10-25T00:00Z and 2026-08-26T00:00Z.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from services.bootstrap import Services, build
from services.core.settings import Settings
from tests.conftest import AUTH, LiveServer, wait_projected
from tests.samples import make_event

FIXED_NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
# The default departments that never touch these accounts: listed, with zeros.
QUIET_DEPARTMENTS = {
    d: {"7d": 0, "30d": 0, "90d": 0}
    for d in ("product", "engineering", "research", "finance", "hr", "partner")
}
NOW_TEXT = "2026-11-23T01:00:00Z"

PARK = {"id": "emp-park", "name": "박영희", "department": "sales", "title": "Account Executive"}
SEO = {"id": "emp-seo", "name": "서준호", "department": "sales"}
LEE = {"id": "emp-lee", "name": "이수진", "department": "marketing", "title": "Campaign Manager"}
KIM = {"id": "emp-kim", "name": "김지원", "department": "support", "title": "Support Lead"}
JANG = {"id": "emp-jang", "name": "장하늘", "department": "success", "title": "CSM"}
CHOI = {"id": "emp-choi", "name": "최민호", "department": "leadership", "title": "CEO"}

CTO = {"id": "hb-cto", "name": "오세훈", "email": "sh.oh@hanbit.example", "title": "CTO"}
BUYER = {"id": "hb-buy", "name": "윤서연", "email": "sy.yoon@hanbit.example", "title": "구매팀장"}
BOSS = {"name": "정민철", "email": "MC.Jung@Hanbit.example", "title": "대표이사"}  # no id: by email


# --- harness ------------------------------------------------------------------------------------


@dataclass
class Live:
    services: Services
    http: httpx.Client

    def load(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        answer = self.http.post("/v1/events/batch", json={"events": events})
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        assert body["accepted"] == len(events), body
        wait_projected(self.services, body)
        return body

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        answer = self.http.get(path, params=params)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def view(self, account_id: str, **params: Any) -> dict[str, Any]:
        return self.get(f"/v1/accounts/{quote(account_id, safe='')}/view", **params)


@contextmanager
def running(settings: Settings, zone: str) -> Iterator[Live]:
    """The whole app on ``settings`` with the clock stopped at FIXED_NOW in business ``zone``."""
    services = build(
        settings.model_copy(update={"business_time_zone": zone}), clock=lambda: FIXED_NOW
    )
    try:
        with (
            LiveServer(services) as base_url,
            httpx.Client(base_url=base_url, timeout=30, headers=AUTH) as http,
        ):
            yield Live(services, http)
    finally:
        services.close()


@pytest.fixture
def seoul(settings: Settings) -> Iterator[Live]:
    with running(settings, "Asia/Seoul") as live:
        yield live


@pytest.fixture
def utc(settings: Settings) -> Iterator[Live]:
    with running(settings, "UTC") as live:
        yield live


def ev(
    event_type: str, account_id: str, at: str, actor: dict[str, Any], payload: dict[str, Any],
    summary: str | None = None, contacts: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:  # fmt: skip
    return make_event(event_type, account_id=account_id, occurred_at=at, actor=actor,
                      payload=payload, summary=summary, contacts=contacts or [],
                      **extra)  # fmt: skip


def register(account_id: str, name: str, **payload: Any) -> dict[str, Any]:
    return ev("account.registered", account_id, "2026-01-05T00:00:00Z", PARK,
              {"name": name, **payload}, summary="신규 고객 등록")  # fmt: skip


def call(account_id: str, at: str, actor: dict[str, Any] = PARK) -> dict[str, Any]:
    return ev("sales.call_logged", account_id, at, actor, {"subject": "안부 전화"}, "통화")


def csat(account_id: str, at: str, score: int) -> dict[str, Any]:
    return ev("support.csat_recorded", account_id, at, KIM, {"score": score}, f"CSAT {score}/5")


def eid(events: dict[str, dict[str, Any]], *keys: str) -> list[str]:
    return [events[k]["event_id"] for k in keys]


# --- story 1: one rich account --------------------------------------------------------------------

H = "hanbit-electronics"
SOLO = "solo-corp"


def hanbit_story() -> dict[str, dict[str, Any]]:
    """Seoul windows per event: 7d / 30d / 90d / out (older than 90 days) / - (not a touch)."""
    cloud = "OneVoice Cloud"
    e = {
        "REG": ev("account.registered", H, "2025-10-01T00:00:00Z", PARK, {
            "name": "한빛전자", "segment": "enterprise", "tier": "gold",
            "parent_account_id": "hanbit-group",
            "owners": {"sales": "emp-park", "support": "emp-kim", "success": "emp-jang"}},
            "신규 고객 등록"),  # -
        "S6": ev("sales.email_sent", H, "2026-08-01T01:00:00Z", PARK,
                 {"subject": "소개 자료"}, "소개 메일", [CTO]),  # out
        "L2": ev("leadership.meeting_held", H, "2026-07-01T01:00:00Z", CHOI,
                 {"subject": "작년 면담", "concerns": ["작년 예산 우려"]}, "면담"),  # out
        "S5": ev("sales.call_logged", H, "2026-09-15T01:00:00Z", PARK,
                 {"subject": "분기 점검"}, "분기 점검 통화"),  # 90d
        "M3": ev("marketing.campaign_sent", H, "2026-10-01T01:00:00Z", LEE, {
            "campaign_id": "C-FALL-2026", "name": "가을 캠페인", "channel": "email",
            "offer": {"product": cloud, "discount_pct": 30}}, "가을 캠페인 30%"),  # 90d
        "T1": ev("support.ticket_opened", H, "2026-10-20T01:00:00Z", KIM, {
            "ticket_id": "T-3101", "subject": "청구서 금액 오류", "category": "billing",
            "severity": "high", "complaint": True}, "결제 오류 불만"),  # 90d
        "T1r": ev("support.ticket_resolved", H, "2026-10-22T01:00:00Z", KIM,
                  {"ticket_id": "T-3101", "resolution": "환불 처리 완료"}, "환불 처리"),  # 90d
        "S7": ev("sales.proposal_sent", H, "2026-10-30T01:00:00Z", PARK, {
            "proposal_id": "P-2026-090", "product": cloud, "amount": 100_000_000,
            "currency": "KRW", "discount_pct": 20, "valid_until": "2026-11-20T00:00:00Z"},
            "만료된 견적"),  # 30d; expired before now
        "C2": ev("commitment.made", H, "2026-11-01T01:00:00Z", PARK, {
            "commitment_id": "CM-80", "text": "견적 재검토",
            "due_at": "2026-11-30T09:00:00+09:00"}, "견적 재검토 약속"),  # 30d
        "C3": ev("commitment.made", H, "2026-11-02T01:00:00Z", JANG, {
            "commitment_id": "CM-81", "text": "교육 세션 일정 확정"}, "교육 약속"),  # 30d
        "S8": ev("sales.proposal_sent", H, "2026-11-03T01:00:00Z", PARK, {
            "proposal_id": "P-2027-001", "product": cloud, "amount": 125_000_000,
            "currency": "KRW", "discount_pct": 15, "valid_until": "2026-12-31T23:59:59+09:00"},
            "갱신 견적 초안 15%"),  # 30d; replaced by S2
        "C3c": ev("commitment.cancelled", H, "2026-11-04T01:00:00Z", JANG,
                  {"commitment_id": "CM-81"}, "교육 취소"),  # 30d
        "T3": ev("support.ticket_opened", H, "2026-11-05T01:00:00Z", KIM, {
            "ticket_id": "T-3400", "subject": "로그인 문의", "category": "login",
            "severity": "normal"}, "로그인 문의"),  # 30d
        "C1": ev("commitment.made", H, "2026-11-09T01:00:00Z", CHOI, {
            "commitment_id": "CM-77", "text": "청구 오류 재발 방지책을 2주 안에 공유",
            "due_at": "2026-11-23T10:00:00+09:00"}, "재발 방지 약속"),  # 30d; due == now
        "S2": ev("sales.proposal_sent", H, "2026-11-10T01:00:00Z", PARK, {
            "proposal_id": "P-2027-001", "product": cloud, "amount": 120_000_000,
            "currency": "KRW", "discount_pct": 10, "valid_until": "2026-12-31T23:59:59+09:00"},
            "갱신 견적 10% 할인", [BUYER]),  # 30d
        "S3": ev("sales.proposal_sent", H, "2026-11-12T01:00:00Z", SEO, {
            "proposal_id": "P-A-1", "product": "OneVoice Analytics", "amount": 30_000_000,
            "currency": "KRW", "discount_pct": 5}, "분석 제품 견적 5%", [BUYER]),  # 30d
        "S4": ev("sales.proposal_sent", H, "2026-11-13T01:00:00Z", PARK, {
            "proposal_id": "P-A-2", "product": "OneVoice Analytics", "amount": 30_000_000,
            "currency": "KRW", "discount_pct": 8}, "분석 제품 견적 8%"),  # 30d
        "M1": ev("marketing.campaign_sent", H, "2026-11-13T05:00:00Z", LEE, {
            "campaign_id": "C-YE-2026", "name": "연말 프로모션", "channel": "email",
            "offer": {"product": cloud, "discount_pct": 25, "terms": "3년 약정 시"}},
            "연말 프로모션 메일: 25% 할인", [BUYER]),  # 30d
        "C2f": ev("commitment.fulfilled", H, "2026-11-15T01:00:00Z", PARK,
                  {"commitment_id": "CM-80"}, "견적 재검토 완료"),  # 30d
        "M2": ev("marketing.content_engaged", H, "2026-11-16T15:30:00Z", LEE, {
            "content": "고객 사례집", "action": "downloaded"}, "사례집 다운로드"),  # 7d (Seoul)
        "T2": ev("support.ticket_opened", H, "2026-11-18T01:00:00Z", KIM, {
            "ticket_id": "T-3388", "subject": "청구서 금액 오류 재발", "category": "Billing",
            "severity": "urgent", "complaint": True}, "또 청구서 오류 — 재발 불만"),  # 7d
        "T4": ev("support.csat_recorded", H, "2026-11-19T01:00:00Z", KIM, {
            "score": 2, "ticket_id": "T-3101", "comment": "응답이 늦었어요"}, "CSAT 2/5"),  # 7d
        "L1": ev("leadership.meeting_held", H, "2026-11-19T11:00:00Z", CHOI, {
            "subject": "한빛전자 CEO 만찬", "heard": ["내년 해외 확장 계획"],
            "concerns": ["가격 인상 우려", "청구 오류 반복"], "complaints": ["장애 대응 지연"],
            "learnings": ["경쟁사와 접촉 중"]}, "CEO 만찬: 가격 인상 우려를 들음",
            [CTO, BOSS]),  # 7d
        "S1": ev("sales.meeting_held", H, "2026-11-20T02:00:00Z", PARK, {
            "subject": "2027 갱신 미팅", "notes": "예산은 1분기에 확정"}, "CTO와 갱신 논의",
            [CTO]),  # 7d
        "C4": ev("commitment.made", H, "2026-11-21T01:00:00Z", JANG, {
            "commitment_id": "CM-82", "text": "온보딩 자료 전달",
            "due_at": "2026-11-23T01:00:01Z"}, "온보딩 약속"),  # 7d; due 1 s after now
        "R1": ev("success.review_held", H, "2026-11-22T01:00:00Z", JANG, {
            "subject": "분기 비즈니스 리뷰", "risks": ["챔피언 이직 예정"]}, "QBR: 사용률 저조",
            [CTO], related_account_ids=["hanbit-group"]),  # 7d
        # Another account: 4 of 5 touches in 90 days by emp-park = exactly 80%.
        "X0": ev("account.registered", SOLO, "2026-01-05T00:00:00Z", PARK,
                 {"name": "솔로상사", "segment": "smb"}),
        "X1": call(SOLO, "2026-10-01T01:00:00Z"),
        "X2": call(SOLO, "2026-10-15T01:00:00Z"),
        "X3": call(SOLO, "2026-11-01T01:00:00Z"),
        "X4": call(SOLO, "2026-11-20T01:00:00Z"),
        "X5": csat(SOLO, "2026-11-10T01:00:00Z", 5),
        "X6": call(SOLO, "2026-08-20T01:00:00Z", SEO),  # before the 90-day window: not counted
    }  # fmt: skip
    return e


def expected_positions(*answers: dict[str, Any]) -> dict[str, int]:
    """Per partition written, the next offset after the last record written."""
    found: dict[str, int] = {}
    for answer in answers:
        for item in answer["items"]:
            p, o = str(item["position"]["partition"]), item["position"]["offset"]
            found[p] = max(found.get(p, 0), o + 1)
    return found


def touch_json(event: dict[str, Any]) -> dict[str, Any]:
    return {"at": event["occurred_at"], "event_id": event["event_id"], "type": event["type"],
            "actor": event["actor"], "summary": event["summary"]}  # fmt: skip


def test_the_one_voice_view_of_a_rich_account(seoul: Live) -> None:
    e = hanbit_story()
    answer = seoul.load(list(e.values()))
    view = seoul.view(H)

    assert view["account_id"] == H
    assert view["account"] == {
        "name": "한빛전자", "registered": True, "segment": "enterprise", "tier": "gold",
        "parent_account_id": "hanbit-group",
        "owners": {"sales": "emp-park", "support": "emp-kim", "success": "emp-jang"},
    }  # fmt: skip

    # last touch: the latest per department; the registration is not a touch
    last = view["last_touch"]
    assert last["overall"] == touch_json(e["R1"]) | {"at": "2026-11-22T01:00:00Z"}
    assert {d: t["event_id"] for d, t in last["by_department"].items()} == {
        "leadership": e["L1"]["event_id"], "marketing": e["M2"]["event_id"],
        "sales": e["S1"]["event_id"], "success": e["R1"]["event_id"],
        "support": e["T4"]["event_id"],
    }  # fmt: skip
    assert last["by_department"]["marketing"]["at"] == "2026-11-16T15:30:00Z"
    assert last["by_department"]["leadership"]["actor"] == CHOI

    # pressure: M2 (2026-11-16T15:30Z = 11-17 00:30 in Seoul) is inside the 7-day window
    assert view["pressure"] == {
        "by_department": {
            "sales": {"7d": 1, "30d": 8, "90d": 9},
            "marketing": {"7d": 1, "30d": 2, "90d": 3},
            "support": {"7d": 2, "30d": 3, "90d": 5},
            "success": {"7d": 2, "30d": 4, "90d": 4},
            "leadership": {"7d": 1, "30d": 2, "90d": 2},
            **QUIET_DEPARTMENTS,
        },
        "total": {"7d": 7, "30d": 19, "90d": 23},
    }

    # commitments: CM-77 due exactly now is overdue, CM-82 due one second later is not
    commitments = view["commitments"]
    assert commitments["counts"] == {"open": 2, "fulfilled": 1, "cancelled": 1, "overdue": 1}
    assert commitments["open"] == [
        {"commitment_id": "CM-77", "text": "청구 오류 재발 방지책을 2주 안에 공유",
         "made_by": CHOI, "department": "leadership", "made_at": "2026-11-09T01:00:00Z",
         "due_at": "2026-11-23T01:00:00Z", "overdue": True, "event_id": e["C1"]["event_id"]},
        {"commitment_id": "CM-82", "text": "온보딩 자료 전달", "made_by": JANG,
         "department": "success", "made_at": "2026-11-21T01:00:00Z",
         "due_at": "2026-11-23T01:00:01Z", "overdue": False, "event_id": e["C4"]["event_id"]},
    ]  # fmt: skip

    # support: T-3101 resolved; T-3400 and T-3388 open; billing complained of twice in 90 days
    support = view["support"]
    tickets = support["open_tickets"]
    assert tickets["count"] == 2
    assert tickets["oldest_open_since"] == "2026-11-05T01:00:00Z"
    assert tickets["by_severity"] == {"normal": 1, "urgent": 1}
    assert tickets["urgent"] == 1
    assert [t["ticket_id"] for t in tickets["items"]] == ["T-3400", "T-3388"]
    assert [t["event_id"] for t in tickets["items"]] == eid(e, "T3", "T2")
    assert [(t["ticket_id"], t["event_id"]) for t in support["open_complaints"]] == [
        ("T-3388", e["T2"]["event_id"])
    ]
    (recurring,) = support["recurring_complaints"]
    assert recurring["category"].casefold() == "billing"
    assert recurring["count"] == 2
    assert recurring["ticket_ids"] == ["T-3101", "T-3388"]
    assert recurring["event_ids"] == eid(e, "T1", "T2")

    # messaging: S8 replaced by S2, S7 expired, M3 outside 30 days; S3/S4 are both sales
    messaging = view["messaging"]
    assert messaging["campaigns_30d"] == [{
        "event_id": e["M1"]["event_id"], "campaign_id": "C-YE-2026", "name": "연말 프로모션",
        "channel": "email", "at": "2026-11-13T05:00:00Z", "actor": LEE,
        "offer": {"product": "OneVoice Cloud", "discount_pct": 25, "terms": "3년 약정 시"},
    }]  # fmt: skip
    assert [o["event_id"] for o in messaging["live_offers"]] == eid(e, "S2", "S3", "S4", "M1")
    proposal = messaging["live_offers"][0]
    assert (
        proposal["kind"],
        proposal["ref_id"],
        proposal["discount_pct"],
        proposal["amount"],
        proposal["currency"],
        proposal["department"],
        proposal["valid_until"],
    ) == ("proposal", "P-2027-001", 10, 120_000_000, "KRW", "sales", "2026-12-31T14:59:59Z")
    (conflict,) = messaging["conflicts"]  # fmt: skip
    assert conflict["product"] == "OneVoice Cloud"
    assert conflict["differs_in"] == ["discount"]
    assert conflict["event_ids"] == eid(e, "S2", "M1")
    assert [(o["department"], o["discount_pct"]) for o in conflict["offers"]] == [
        ("sales", 10), ("marketing", 25)]  # fmt: skip

    # relationships: contacts by id, or, when there is none, by the subject of the key that
    # sealed their personal data (one per e-mail, case-insensitive: ``privacy``);
    # most recently touched first: hb-cto (R1, 11-22), mc.jung (L1, 11-19), hb-buy (M1, 11-13)
    rel = view["relationships"]
    people = {c["contact_key"]: c for c in rel["contacts"]}
    boss = next(k for k in people if not k.startswith("id:"))
    assert boss.startswith("ref:") and len(boss) == 36
    assert [c["contact_key"] for c in rel["contacts"]] == ["id:hb-cto", boss, "id:hb-buy"]
    assert rel["contacts_total"] == 3
    assert people[boss]["contact"] == BOSS
    assert people["id:hb-cto"]["contact"] == CTO
    summary = {
        key: [(p["employee"]["id"], p["touches"], p["touches_90d"], p["last_event_id"])
              for p in c["people"]]
        for key, c in people.items()
    }  # fmt: skip
    assert summary == {
        boss: [("emp-choi", 1, 1, e["L1"]["event_id"])],
        "id:hb-buy": [("emp-lee", 1, 1, e["M1"]["event_id"]),
                      ("emp-park", 1, 1, e["S2"]["event_id"]),
                      ("emp-seo", 1, 1, e["S3"]["event_id"])],
        "id:hb-cto": [("emp-park", 2, 1, e["S1"]["event_id"]),
                      ("emp-choi", 1, 1, e["L1"]["event_id"]),
                      ("emp-jang", 1, 1, e["R1"]["event_id"])],
    }  # fmt: skip
    assert people["id:hb-cto"]["people"][0]["last_at"] == "2026-11-20T02:00:00Z"
    assert people["id:hb-cto"]["people"][0]["employee"] == PARK
    assert rel["breadth_90d"] == {"employees": 6, "departments": 5, "touches": 23}
    assert rel["single_threaded"] is False  # emp-park: 8 of 23
    assert rel["top_employee"] is None

    # leadership: L2 (July) is older than 90 days
    leadership = view["leadership"]
    lt = leadership["last_executive_touch"]
    assert (lt["event_id"], lt["at"], lt["executive"], lt["type"]) == (
        e["L1"]["event_id"],
        "2026-11-19T11:00:00Z",
        CHOI,
        "leadership.meeting_held",
    )
    assert lt["concerns"] == ["가격 인상 우려", "청구 오류 반복"]  # fmt: skip
    assert [(c["text"], c["event_id"], c["at"]) for c in leadership["concerns_90d"]] == [
        ("가격 인상 우려", e["L1"]["event_id"], "2026-11-19T11:00:00Z"),
        ("청구 오류 반복", e["L1"]["event_id"], "2026-11-19T11:00:00Z"),
    ]
    assert [(c["text"], c["event_id"]) for c in leadership["complaints_90d"]] == [
        ("장애 대응 지연", e["L1"]["event_id"])]  # fmt: skip
    assert leadership["concerns_90d"][0]["executive"] == CHOI

    # health: 100 - 15 - 10 - 15 - 5 - 15 - 10 - 10 = 20
    health = view["health"]
    assert [(f["name"], f["effect"], f["count"], f["evidence"]) for f in health["factors"]] == [
        ("overdue_commitments", -15, 1, eid(e, "C1")),
        ("open_complaints", -10, 1, eid(e, "T2")),
        ("recurring_complaints", -15, 1, eid(e, "T1", "T2")),
        ("urgent_tickets", -5, 1, eid(e, "T2")),
        ("executive_concerns", -15, 3, eid(e, "L1")),
        ("low_csat", -10, 1, eid(e, "T4")),
        ("conflicting_offers", -10, 1, eid(e, "S2", "M1")),
    ]
    assert all(isinstance(f["rule"], str) and f["rule"] for f in health["factors"])
    assert (health["score"], health["at_risk"]) == (20, True)

    assert view["as_of"]["at"] == NOW_TEXT
    assert view["as_of"]["time_zone"] == "Asia/Seoul"
    positions = view["as_of"]["positions"]
    for partition, next_offset in expected_positions(answer).items():
        assert positions[partition] == next_offset, (partition, positions)

    # another account, single-threaded: emp-park made 4 of its 5 touches in 90 days (80%)
    solo = seoul.view(SOLO)
    rel = solo["relationships"]
    assert rel["single_threaded"] is True
    assert rel["top_employee"] == {"employee_id": "emp-park", "department": "sales",
                                   "touches": 4, "share": 0.8}  # fmt: skip
    assert rel["breadth_90d"] == {"employees": 2, "departments": 2, "touches": 5}
    assert rel["contacts"] == []
    assert solo["health"] == {"score": 90, "at_risk": False, "factors": [{
        "name": "single_threaded", "effect": -10, "count": 1,
        "rule": solo["health"]["factors"][0]["rule"],
        "evidence": eid(e, "X4", "X3", "X2", "X1")}]}  # fmt: skip
    assert solo["pressure"]["total"] == {"7d": 1, "30d": 3, "90d": 5}
    assert solo["account"]["parent_account_id"] is None


FUTURE = "future-co"


def future_story() -> dict[str, dict[str, Any]]:
    """One touch 53 days ago, then events dated after now (allowed: at most 24 h ahead)."""
    cloud = "OneVoice Cloud"
    return {
        "FR": register(FUTURE, "미래상사"),
        "FA": call(FUTURE, "2026-10-01T01:00:00Z"),
        "FB": ev("commitment.made", FUTURE, "2026-11-23T02:00:00Z", PARK, {
            "commitment_id": "CM-F1", "text": "미래의 약속", "due_at": "2026-11-23T00:30:00Z"}),
        "FC": ev("support.ticket_opened", FUTURE, "2026-11-23T03:00:00Z", KIM, {
            "ticket_id": "T-F1", "subject": "미래 장애", "category": "outage",
            "severity": "urgent", "complaint": True}),
        "FD": csat(FUTURE, "2026-11-23T03:30:00Z", 1),
        "FE": ev("sales.proposal_sent", FUTURE, "2026-11-23T04:00:00Z", PARK, {
            "proposal_id": "P-F1", "product": cloud, "amount": 1000, "currency": "KRW",
            "discount_pct": 10}),
        "FF": ev("marketing.campaign_sent", FUTURE, "2026-11-23T04:30:00Z", LEE, {
            "campaign_id": "C-F1", "name": "미래 캠페인", "channel": "email",
            "offer": {"product": cloud, "discount_pct": 25}}),
        "FG": ev("leadership.meeting_held", FUTURE, "2026-11-23T05:00:00Z", CHOI, {
            "subject": "미래 만찬", "concerns": ["미래 우려"]}, "미래 만찬"),
    }  # fmt: skip


def test_windows_follow_the_business_time_zone_and_stop_at_now(utc: Live) -> None:
    """The same story under UTC: 2026-11-16T15:30Z is before the 7-day window (11-17 00:00Z).
    And an account whose only events since 2026-10-01 are dated after now."""
    e = hanbit_story()
    f = future_story()
    utc.load(list(e.values()) + list(f.values()))
    view = utc.view(H)
    assert view["as_of"] == view["as_of"] | {"at": NOW_TEXT, "time_zone": "UTC"}
    assert view["pressure"] == {
        "by_department": {
            "sales": {"7d": 1, "30d": 8, "90d": 9},
            "marketing": {"7d": 0, "30d": 2, "90d": 3},
            "support": {"7d": 2, "30d": 3, "90d": 5},
            "success": {"7d": 2, "30d": 4, "90d": 4},
            "leadership": {"7d": 1, "30d": 2, "90d": 2},
            **QUIET_DEPARTMENTS,
        },
        "total": {"7d": 6, "30d": 19, "90d": 23},
    }
    assert view["health"]["score"] == 20
    assert view["commitments"]["counts"]["overdue"] == 1
    listed = utc.get("/v1/accounts", q="한빛전자")["items"]
    assert [(i["account_id"], i["health"]) for i in listed] == [
        (H, {"score": 20, "at_risk": True})]  # fmt: skip

    # README: windows, open items, live offers and health count only events dated up to now;
    # last_touch is the latest event whatever its date.
    later = utc.view(FUTURE)
    assert later["last_touch"]["overall"]["event_id"] == f["FG"]["event_id"]
    assert later["pressure"]["total"] == {"7d": 0, "30d": 0, "90d": 1}
    assert later["pressure"]["by_department"]["sales"] == {"7d": 0, "30d": 0, "90d": 1}
    assert later["commitments"] == {
        "open": [],
        "counts": {"open": 0, "fulfilled": 0, "cancelled": 0, "overdue": 0},
    }
    assert later["support"]["open_tickets"]["count"] == 0
    assert later["support"]["open_complaints"] == []
    assert later["messaging"] == {"campaigns_30d": [], "live_offers": [], "conflicts": []}
    assert later["leadership"] == {
        "last_executive_touch": None,
        "concerns_90d": [],
        "complaints_90d": [],
    }
    assert later["relationships"]["breadth_90d"] == {"employees": 1, "departments": 1, "touches": 1}
    assert later["relationships"]["top_employee"]["employee_id"] == "emp-park"
    # up to now, the last touch is FA (2026-10-01): neglected (-25) and single-threaded (-10)
    assert [(x["name"], x["effect"]) for x in later["health"]["factors"]] == [
        ("neglected", -25), ("single_threaded", -10)]  # fmt: skip
    assert later["health"]["score"] == 65
    (item,) = utc.get("/v1/accounts", q="미래상사")["items"]
    assert item["health"] == {"score": 65, "at_risk": False}
    neglected = utc.get("/v1/reports/coverage")["neglected"]["items"]
    assert FUTURE in [i["account_id"] for i in neglected]


# --- story 2: a parent and its child; unknown and slashed ids ----------------------------------

GROUP = "hanbit-group"


def test_include_children_rolls_the_child_into_the_parent(seoul: Live) -> None:
    e = {
        "RG": ev("account.registered", GROUP, "2026-01-05T00:00:00Z", PARK,
                 {"name": "한빛그룹", "segment": "enterprise", "tier": "platinum",
                  "owners": {"leadership": "emp-choi"}}),
        "RC": ev("account.registered", H, "2026-01-06T00:00:00Z", PARK,
                 {"name": "한빛전자", "parent_account_id": GROUP}),
        "G1": ev("sales.meeting_held", GROUP, "2026-11-20T01:00:00Z", PARK,
                 {"subject": "그룹 구매 정책"}, "그룹 미팅", [CTO]),
        "K1": ev("commitment.made", H, "2026-11-18T01:00:00Z", JANG,
                 {"commitment_id": "CM-90", "text": "계열사 통합 계약서 초안 전달",
                  "due_at": "2026-12-01T09:00:00+09:00"}, "초안 약속"),
        "K2": csat(H, "2026-11-19T01:00:00Z", 1),
        "K3": ev("success.review_held", H, "2026-11-21T01:00:00Z", JANG,
                 {"subject": "그룹 통합 리뷰"}, "그룹 리뷰", [CTO],
                 related_account_ids=[GROUP]),
        "SL": call("hanbit/부산", "2026-11-22T01:00:00Z"),
    }  # fmt: skip
    seoul.load(list(e.values()))

    plain = seoul.view(GROUP)
    assert "included_accounts" not in plain
    assert plain["account"]["name"] == "한빛그룹"
    assert plain["commitments"]["open"] == []  # CM-90 belongs to the child
    assert plain["pressure"]["total"] == {"7d": 2, "30d": 2, "90d": 2}  # G1 and K3 (related)
    assert plain["last_touch"]["overall"]["event_id"] == e["K3"]["event_id"]
    assert plain["health"] == {"score": 100, "at_risk": False, "factors": []}

    rolled = seoul.view(GROUP, include_children="true")
    assert rolled["included_accounts"] == [H]
    assert rolled["account_id"] == GROUP
    assert rolled["account"]["name"] == "한빛그룹"
    assert [c["commitment_id"] for c in rolled["commitments"]["open"]] == ["CM-90"]
    assert rolled["commitments"]["open"][0]["event_id"] == e["K1"]["event_id"]
    assert rolled["commitments"]["counts"] == {
        "open": 1, "fulfilled": 0, "cancelled": 0, "overdue": 0}  # fmt: skip
    # K3 is on both timelines but counts once
    assert rolled["pressure"]["by_department"]["success"] == {"7d": 2, "30d": 2, "90d": 2}
    assert rolled["pressure"]["by_department"]["support"] == {"7d": 1, "30d": 1, "90d": 1}
    assert rolled["pressure"]["total"] == {"7d": 4, "30d": 4, "90d": 4}
    assert rolled["relationships"]["breadth_90d"] == {
        "employees": 3, "departments": 3, "touches": 4}  # fmt: skip
    (cto,) = rolled["relationships"]["contacts"]
    assert [(p["employee"]["id"], p["touches"]) for p in cto["people"]] == [
        ("emp-jang", 1), ("emp-park", 1)]  # fmt: skip
    assert rolled["last_touch"]["overall"]["event_id"] == e["K3"]["event_id"]
    assert rolled["health"]["score"] == 90
    assert [(f["name"], f["evidence"]) for f in rolled["health"]["factors"]] == [
        ("low_csat", eid(e, "K2"))]  # fmt: skip

    child = seoul.view(H)
    assert child["account"]["parent_account_id"] == GROUP
    assert child["pressure"]["total"] == {"7d": 3, "30d": 3, "90d": 3}
    assert child["health"]["score"] == 90

    # unknown account: 404 with a JSON body naming the problem
    missing = seoul.http.get("/v1/accounts/nobody-here/view")
    assert missing.status_code == 404
    error = missing.json()["error"]
    assert error["code"] == "account_not_found"
    assert "nobody-here" in error["message"]
    missing = seoul.http.get("/v1/accounts/nobody-here/view", params={"include_children": "true"})
    assert missing.status_code == 404

    # an id containing "/" sent as %2F
    slashed = seoul.http.get("/v1/accounts/hanbit%2F%EB%B6%80%EC%82%B0/view")
    assert slashed.status_code == 200, slashed.text
    body = slashed.json()
    assert body["account_id"] == "hanbit/부산"
    assert body["last_touch"]["overall"]["event_id"] == e["SL"]["event_id"]
    assert body["account"]["registered"] is False
    assert seoul.http.get("/v1/accounts/hanbit%2Fnobody/view").status_code == 404

    # Each event once: K3 is stored for the child and (related) for the parent, yet it is one
    # touch of the contact by emp-jang, in 90 days too.
    assert [(p["employee"]["id"], p["touches"], p["touches_90d"]) for p in cto["people"]] == [
        ("emp-jang", 1, 1), ("emp-park", 1, 1)]  # fmt: skip
    # README: with include_children=true "the answer lists included_accounts" (as the timeline
    # does, [] when there are none)
    assert seoul.view(H, include_children="true")["included_accounts"] == []


# --- story 3: a portfolio, by health and in the coverage report ------------------------------


def portfolio() -> dict[str, dict[str, Any]]:
    """Scores (hand-computed):
    bravo 55 (3 overdue commitments -30 capped, open complaint -10, urgent -5),
    alpha 65 (neglected -25, single-threaded -10), charlie 65 (recurring -15, open complaint
    -10, single-threaded -10), golf 65 (neglected -25, single-threaded -10),
    foxtrot 90 (single-threaded 4/5), delta 100, echo 100, hotel 100 (never contacted).
    """

    def ticket(account: str, at: str, ticket_id: str, severity: str = "normal") -> dict[str, Any]:
        return ev("support.ticket_opened", account, at, KIM, {
            "ticket_id": ticket_id, "subject": "배송 지연", "category": "배송",
            "severity": severity, "complaint": True}, "배송 불만")  # fmt: skip

    def resolved(account: str, at: str, ticket_id: str) -> dict[str, Any]:
        return ev("support.ticket_resolved", account, at, KIM, {"ticket_id": ticket_id})

    def promise(at: str, actor: dict[str, Any], cid: str, due: str) -> dict[str, Any]:
        return ev("commitment.made", "bravo", at, actor,
                  {"commitment_id": cid, "text": f"{cid} 이행", "due_at": due})  # fmt: skip

    return {
        "rA": register("alpha", "알파"), "rB": register("bravo", "브라보"),
        "rC": register("charlie", "찰리"), "rD": register("delta", "델타"),
        "rE": register("echo", "에코"), "rF": register("foxtrot", "폭스트롯"),
        "rG": register("golf", "골프"), "rH": register("hotel", "호텔"),
        "A1": call("alpha", "2026-10-01T01:00:00Z"),
        "B1": promise("2026-11-01T01:00:00Z", PARK, "CM-B1", "2026-11-10T00:00:00Z"),
        "B2": promise("2026-11-02T01:00:00Z", JANG, "CM-B2", "2026-11-12T00:00:00Z"),
        "B3": promise("2026-11-03T01:00:00Z", LEE, "CM-B3", "2026-11-15T00:00:00Z"),
        "B4": ticket("bravo", "2026-11-20T01:00:00Z", "T-B1", "urgent"),
        "C1": ticket("charlie", "2026-09-10T01:00:00Z", "T-C1"),
        "C1r": resolved("charlie", "2026-09-12T01:00:00Z", "T-C1"),
        "C2": ticket("charlie", "2026-10-10T01:00:00Z", "T-C2"),
        "C2r": resolved("charlie", "2026-10-11T01:00:00Z", "T-C2"),
        "C3": ticket("charlie", "2026-11-20T01:00:00Z", "T-C3"),
        "D1": call("delta", "2026-11-20T01:00:00Z"),
        "D2": csat("delta", "2026-11-21T01:00:00Z", 5),
        "F1": call("foxtrot", "2026-11-17T01:00:00Z"),
        "F2": call("foxtrot", "2026-11-18T01:00:00Z"),
        "F3": call("foxtrot", "2026-11-19T01:00:00Z"),
        "F4": call("foxtrot", "2026-11-20T01:00:00Z"),
        "F5": csat("foxtrot", "2026-11-21T03:00:00Z", 4),
        "G0": call("golf", "2026-06-01T01:00:00Z"),
        # (a campaign, not a contact's signal: a signal would open a handoff, stale by now)
        "G1": ev("marketing.campaign_sent", "golf", "2026-09-01T01:00:00Z", LEE,
                 {"campaign_id": "C-G", "name": "웨비나 다시보기", "channel": "email"}),
    }  # fmt: skip


HEALTH_ORDER = ["bravo", "alpha", "charlie", "golf", "foxtrot", "delta", "echo", "hotel"]
SCORES = {"bravo": 55, "alpha": 65, "charlie": 65, "golf": 65, "foxtrot": 90, "delta": 100,
          "echo": 100, "hotel": 100}  # fmt: skip


def account_ids(live: Live, **params: Any) -> list[str]:
    return [i["account_id"] for i in live.get("/v1/accounts", **params)["items"]]


def test_accounts_by_health_and_the_coverage_report(seoul: Live) -> None:
    e = portfolio()
    seoul.load(list(e.values()))

    items = seoul.get("/v1/accounts", sort="health")["items"]
    assert [i["account_id"] for i in items] == HEALTH_ORDER
    assert {i["account_id"]: i["health"]["score"] for i in items} == SCORES
    assert [i["account_id"] for i in items if i["health"]["at_risk"]] == ["bravo"]
    for item in items:
        health = seoul.view(item["account_id"])["health"]
        assert item["health"] == {"score": health["score"], "at_risk": health["at_risk"]}
    bravo = seoul.view("bravo")["health"]["factors"]
    assert [(f["name"], f["effect"], f["count"], f["evidence"]) for f in bravo] == [
        ("overdue_commitments", -30, 3, eid(e, "B1", "B2", "B3")),
        ("open_complaints", -10, 1, eid(e, "B4")),
        ("urgent_tickets", -5, 1, eid(e, "B4")),
    ]

    assert account_ids(seoul, at_risk="true") == ["bravo"]
    assert account_ids(seoul, at_risk="true", sort="health") == ["bravo"]
    assert account_ids(seoul, at_risk="false", sort="health") == HEALTH_ORDER[1:]
    assert account_ids(seoul, at_risk="false", sort="name") == [
        "golf", "delta", "alpha", "echo", "charlie", "foxtrot", "hotel"]  # fmt: skip
    assert account_ids(seoul, sort="health", segment="none") == []

    for limit in (1, 3):
        seen, cursor, pages = [], None, 0
        while True:
            params: dict[str, Any] = {"sort": "health", "limit": limit}
            if cursor is not None:
                params["cursor"] = cursor
            page = seoul.get("/v1/accounts", **params)
            seen += [i["account_id"] for i in page["items"]]
            cursor, pages = page["next_cursor"], pages + 1
            if cursor is None:
                break
            assert pages < 20
        assert seen == HEALTH_ORDER, limit
        assert pages == -(-len(HEALTH_ORDER) // limit)
    first = seoul.get("/v1/accounts", sort="health", at_risk="false", limit=2)
    second = seoul.get("/v1/accounts", sort="health", at_risk="false", limit=2,
                       cursor=first["next_cursor"])  # fmt: skip
    assert [i["account_id"] for i in first["items"] + second["items"]] == HEALTH_ORDER[1:5]

    name_cursor = seoul.get("/v1/accounts", sort="name", limit=1)["next_cursor"]
    for bad in ("garbage", name_cursor):
        answer = seoul.http.get("/v1/accounts", params={"sort": "health", "cursor": bad})
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["fields"][0]["path"] == "query.cursor"

    # coverage
    report = seoul.get("/v1/reports/coverage")
    assert report["as_of"] == {"at": NOW_TEXT, "time_zone": "Asia/Seoul"}
    neglected = report["neglected"]
    assert neglected["count"] == 2
    assert [(i["account_id"], i["name"], i["last_touch_at"], i["evidence"])
            for i in neglected["items"]] == [
        ("golf", "골프", "2026-09-01T01:00:00Z", eid(e, "G1")),
        ("alpha", "알파", "2026-10-01T01:00:00Z", eid(e, "A1")),
    ]  # fmt: skip
    assert report["never_contacted"] == {
        "count": 2,
        "items": [{"account_id": "echo", "name": "에코"}, {"account_id": "hotel", "name": "호텔"}],
    }
    single = report["single_threaded"]
    assert single["count"] == 4
    assert [(i["account_id"], i["employee_id"], i["department"], i["touches"], i["share"])
            for i in single["items"]] == [
        ("alpha", "emp-park", "sales", 1, 1.0),
        ("charlie", "emp-kim", "support", 5, 1.0),
        ("golf", "emp-lee", "marketing", 1, 1.0),
        ("foxtrot", "emp-park", "sales", 4, 0.8),
    ]  # fmt: skip
    recurring = report["recurring_complaints"]
    assert recurring["count"] == 1
    (charlie,) = recurring["items"]
    assert charlie["account_id"] == "charlie" and charlie["name"] == "찰리"
    assert charlie["categories"] == [{
        "category": "배송", "count": 3, "ticket_ids": ["T-C1", "T-C2", "T-C3"],
        "event_ids": eid(e, "C1", "C2", "C3")}]  # fmt: skip
    overdue = report["overdue_commitments"]
    assert overdue["count"] == 3
    assert [(i["account_id"], i["commitment_id"], i["due_at"], i["evidence"])
            for i in overdue["items"]] == [
        ("bravo", "CM-B1", "2026-11-10T00:00:00Z", eid(e, "B1")),
        ("bravo", "CM-B2", "2026-11-12T00:00:00Z", eid(e, "B2")),
        ("bravo", "CM-B3", "2026-11-15T00:00:00Z", eid(e, "B3")),
    ]  # fmt: skip
    assert overdue["items"][0]["made_by"] == PARK
    assert overdue["items"][0]["text"] == "CM-B1 이행"

    short = seoul.get("/v1/reports/coverage", limit=1)
    assert {k: (v["count"], [i["account_id"] for i in v["items"]])
            for k, v in short.items() if isinstance(v, dict) and "count" in v} == {
        "neglected": (2, ["golf"]), "never_contacted": (2, ["echo"]),
        "single_threaded": (4, ["alpha"]), "recurring_complaints": (1, ["charlie"]),
        "overdue_commitments": (3, ["bravo"]), "stale_handoffs": (0, []),
        "recurrences_after_fix": (0, []), "silent_employees": (0, []),  # no owners, nobody
    }  # fmt: skip
    assert short["overdue_commitments"]["items"][0]["commitment_id"] == "CM-B1"
    assert seoul.http.get("/v1/reports/coverage", params={"limit": 0}).status_code == 422

    # neglected_for is an exact duration back from now (2026-10-24T01:00Z); never touched too
    assert account_ids(seoul, neglected_for="30d") == ["alpha", "golf", "hotel", "echo"]


# --- story 4: the demo, the issue's "done when" ----------------------------------------------


def test_the_demo_story_answers_the_issue(seoul: Live) -> None:
    from services.demo import STORY, build_events

    built = build_events(FIXED_NOW)
    e = {row[0]: event for row, event in zip(STORY, built, strict=True)}
    seoul.load(built)

    view = seoul.view(H)
    (conflict,) = view["messaging"]["conflicts"]
    assert conflict["product"] == "OneVoice Cloud"
    assert conflict["event_ids"] == eid(e, "proposal", "campaign")
    assert [(o["department"], o["discount_pct"]) for o in conflict["offers"]] == [
        ("sales", 10), ("marketing", 25)]  # fmt: skip
    (recurring,) = view["support"]["recurring_complaints"]
    assert (recurring["category"], recurring["ticket_ids"], recurring["event_ids"]) == (
        "billing", ["T-3101", "T-3388"], eid(e, "ticket-1", "ticket-2"))  # fmt: skip
    assert [(c["text"], c["event_id"]) for c in view["leadership"]["concerns_90d"]] == [
        ("가격 인상 우려", e["dinner"]["event_id"]),
        ("청구 오류 반복", e["dinner"]["event_id"]),
    ]
    assert view["leadership"]["last_executive_touch"]["event_id"] in eid(e, "dinner", "commit")
    prevention, open_commitment = view["commitments"]["open"]
    assert open_commitment["commitment_id"] == "CM-77"
    assert open_commitment["event_id"] == e["commit"]["event_id"]
    assert open_commitment["overdue"] is False  # due 10 days from now
    # Issue 10: T-3101 was resolved with a prevention, a commitment of support's ...
    assert (prevention["commitment_id"], prevention["prevention"]) == (
        "prevent-T-3101", {"ticket_id": "T-3101", "owner": "emp-kim"})  # fmt: skip
    # ... so the billing complaint T-3388 is a recurrence after that fix.
    (again,) = view["support"]["recurrences_after_fix"]
    assert (again["ticket_id"], again["fix"]["event_id"]) == (
        "T-3388", e["ticket-1-done"]["event_id"])  # fmt: skip
    # The marketer on the rep's visit counts as a touch of marketing, and in relationships.
    cto = next(c for c in view["relationships"]["contacts"] if c["contact"]["id"] == "hb-cto")
    assert {"emp-park", "emp-lee"} <= {p["employee"]["id"] for p in cto["people"]}
    marketing = view["last_touch"]["by_department"]["marketing"]
    assert marketing["event_id"] == e["joint-visit"]["event_id"]
    # The seminar attendee nobody followed up: a stale handoff (12 days > 7).
    (stale,) = view["handoffs"]["open"]
    assert (stale["event_id"], stale["stale"], stale["contact"]["id"]) == (
        e["seminar"]["event_id"], True, "hb-dev")  # fmt: skip
    # The engineer's need, solved on site; the CSM's, still open.
    assert [n["need_id"] for n in view["needs"]["solved_on_site_90d"]] == ["N-501"]
    assert [n["need_id"] for n in view["needs"]["open"]] == ["N-502"]
    # README: a health score of 15 (complaint -10, recurring -15, recurrence after a fix -20,
    # urgent -5, executives -15, conflict -10, stale handoff -10)
    health = view["health"]
    assert [(f["name"], f["effect"]) for f in health["factors"]] == [
        ("open_complaints", -10), ("recurring_complaints", -15), ("recurrence_after_fix", -20),
        ("urgent_tickets", -5), ("executive_concerns", -15), ("conflicting_offers", -10),
        ("stale_handoffs", -10)]  # fmt: skip
    assert (health["score"], health["at_risk"]) == (15, True)
    # The bank: renewal in 20 days, nobody there for 45 days (neglected -25, unattended renewal
    # -15, single-threaded -10).
    bank = seoul.view("seoul-bank")
    assert bank["value"]["next_renewal"]["days_until"] == 20
    assert bank["value"]["lifetime_value"] == {"KRW": 180_000_000}
    assert [(f["name"], f["effect"]) for f in bank["health"]["factors"]] == [
        ("neglected", -25), ("unattended_renewal", -15), ("single_threaded", -10)]  # fmt: skip
    assert account_ids(seoul, renewal_within="30d") == ["seoul-bank"]

    report = seoul.get("/v1/reports/coverage")
    assert [(i["account_id"], i["evidence"]) for i in report["neglected"]["items"]] == [
        ("northwind", eid(e, "north-csat")), ("seoul-bank", eid(e, "bank-renewal"))]  # fmt: skip
    assert [i["account_id"] for i in report["never_contacted"]["items"]] == ["daehan-logistics"]
    assert [i["account_id"] for i in report["recurring_complaints"]["items"]] == [H]
    assert [i["account_id"] for i in report["single_threaded"]["items"]] == [GROUP, "seoul-bank"]
    assert report["overdue_commitments"] == {"count": 0, "items": []}
    assert [i["account_id"] for i in report["stale_handoffs"]["items"]] == [H]
    assert [i["account_id"] for i in report["recurrences_after_fix"]["items"]] == [H]

    assert account_ids(seoul, neglected_for="30d") == [
        "seoul-bank", "northwind", "daehan-logistics"]  # fmt: skip
    assert account_ids(seoul, at_risk="true", sort="health") == [H, "seoul-bank"]
    rolled = seoul.view(GROUP, include_children="true")
    assert rolled["included_accounts"] == [H]
    assert rolled["health"]["score"] == 15
