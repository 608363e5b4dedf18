"""One realistic example of every event type, shown in ``GET /v1/schemas`` (each schema's
``examples``) and checked against the contract by the tests."""

from __future__ import annotations

import copy
from typing import Any

from services.core.events import ORGANISATION_TYPES

_ACTORS: dict[str, dict[str, Any]] = {
    "sales": {"id": "emp-park", "name": "박영희", "department": "sales",
              "title": "Account Executive"},
    "marketing": {"id": "emp-lee", "name": "이수진", "department": "marketing",
                  "title": "Campaign Manager"},
    "support": {"id": "emp-kim", "name": "김지원", "department": "support",
                "title": "Support Lead"},
    "success": {"id": "emp-jang", "name": "장하늘", "department": "success", "title": "CSM"},
    "leadership": {"id": "emp-choi", "name": "최민호", "department": "leadership",
                   "title": "CEO"},
    "hr": {"id": "emp-yoon", "name": "윤서연", "department": "hr", "title": "HR Manager"},
    "engineering": {"id": "emp-han", "name": "한지민", "department": "engineering",
                    "title": "Solutions Engineer"},
}  # fmt: skip
_CONTACT = {"id": "hb-cto", "name": "오세훈", "email": "sh.oh@hanbit.example", "title": "CTO"}

# type -> (actor's department, summary, payload, extra envelope fields)
_EXAMPLES: dict[str, tuple[str, str, dict[str, Any], dict[str, Any]]] = {
    "account.registered": ("sales", "신규 고객 등록", {
        "name": "한빛전자", "segment": "enterprise", "tier": "gold",
        "parent_account_id": "hanbit-group",
        "owners": {"sales": "emp-park", "success": "emp-jang"}}, {}),
    "sales.meeting_held": ("sales", "CTO와 갱신 논의", {
        "subject": "2027 갱신 미팅", "notes": "예산은 1분기에 확정",
        "next_steps": "견적서 송부"},
        {"contacts": [_CONTACT], "participants": [_ACTORS["marketing"]]}),
    "sales.call_logged": ("sales", "가격 문의 통화", {
        "subject": "가격 문의", "duration_s": 540}, {"contacts": [_CONTACT]}),
    "sales.email_sent": ("sales", "견적서 메일", {"subject": "2027 갱신 견적"}, {}),
    "sales.proposal_sent": ("sales", "갱신 견적 10% 할인", {
        "proposal_id": "P-2027-001", "product": "OneVoice Cloud", "amount": 120000000,
        "currency": "KRW", "discount_pct": 10, "valid_until": "2026-12-31T23:59:59+09:00"}, {}),
    "sales.deal_stage_changed": ("sales", "협상 단계로", {
        "deal_id": "D-88", "stage": "negotiation", "amount": 120000000, "currency": "KRW"}, {}),
    "sales.order_placed": ("sales", "연간 구독 주문", {
        "order_id": "SO-2026-77", "amount": 180000000, "currency": "KRW",
        "products": ["OneVoice Cloud", "Premium Support"]}, {}),
    "marketing.campaign_sent": ("marketing", "연말 프로모션 메일", {
        "campaign_id": "C-YE-2026", "name": "연말 프로모션", "channel": "email",
        "offer": {"product": "OneVoice Cloud", "discount_pct": 25, "terms": "3년 약정 시"}},
        {"contacts": [_CONTACT]}),
    "marketing.event_attended": ("marketing", "세미나 참석", {
        "event_name": "AI 고객경험 세미나"}, {"contacts": [_CONTACT]}),
    "marketing.content_engaged": ("marketing", "사례집 다운로드", {
        "content": "도입 사례집", "action": "downloaded"}, {"contacts": [_CONTACT]}),
    "marketing.campaign_responded": ("marketing", "데모 요청 회신", {
        "campaign_id": "C-YE-2026", "response": "demo requested", "channel": "email"},
        {"contacts": [_CONTACT]}),
    "support.ticket_opened": ("support", "청구 오류 불만", {
        "ticket_id": "T-3101", "subject": "청구서 금액 오류", "category": "billing",
        "severity": "high", "complaint": True}, {}),
    "support.ticket_resolved": ("support", "환불과 재발 방지책", {
        "ticket_id": "T-3101", "resolution": "환불 처리 완료",
        "cause": {"category": "billing", "text": "세금계산서 이중 발행"},
        "prevention": {"action": "발행 전 중복 검사 추가", "owner": "emp-kim",
                       "due_at": "2026-12-15T18:00:00+09:00"}}, {}),
    "support.csat_recorded": ("support", "CSAT 2/5", {
        "score": 2, "ticket_id": "T-3101", "comment": "처리가 느렸음"}, {}),
    "success.review_held": ("success", "분기 리뷰", {
        "subject": "QBR", "notes": "활성 사용자 40%", "risks": ["챔피언 이직 예정"]}, {}),
    "success.renewal_scheduled": ("success", "갱신 일정 확정", {
        "contract_id": "K-2026-1", "renews_at": "2027-01-01T00:00:00+09:00",
        "amount": 190000000, "currency": "KRW"}, {}),
    "success.renewed": ("success", "1년 갱신", {
        "contract_id": "K-2026-1", "renews_at": "2028-01-01T00:00:00+09:00",
        "amount": 195000000, "currency": "KRW"}, {}),
    "success.churned": ("success", "경쟁사로 이전", {
        "reason": "예산 삭감으로 경쟁사 전환", "contract_id": "K-2026-1"}, {}),
    "leadership.meeting_held": ("leadership", "CEO 만찬", {
        "subject": "CEO 만찬", "heard": ["해외 확장 계획"], "concerns": ["가격 인상 우려"],
        "complaints": ["장애 대응 지연"], "learnings": ["경쟁사와 접촉 중"]},
        {"contacts": [_CONTACT]}),
    "customer.need_identified": ("engineering", "한국어 음성 인식 요구", {
        "need_id": "N-501", "text": "콜센터 한국어 음성 인식 정확도 개선",
        "category": "speech", "priority": "high"}, {"contacts": [_CONTACT]}),
    "customer.need_addressed": ("engineering", "현장 튜닝", {
        "need_id": "N-501", "how": "방문 중 도메인 사전 튜닝", "on_site": True}, {}),
    "commitment.made": ("leadership", "재발 방지책 약속", {
        "commitment_id": "CM-77", "text": "청구 오류 재발 방지책을 2주 안에 공유",
        "due_at": "2026-12-14T18:00:00+09:00"}, {}),
    "commitment.fulfilled": ("support", "방지책 공유 완료", {"commitment_id": "CM-77"}, {}),
    "commitment.cancelled": ("sales", "고객 요청으로 취소", {"commitment_id": "CM-78"}, {}),
    "employee.registered": ("hr", "신임 CTO 등록", {
        "employee_id": "emp-seo", "name": "서준호", "department": "engineering",
        "title": "CTO", "executive": True}, {}),
    "employee.updated": ("hr", "퇴사 처리", {"employee_id": "emp-seo", "active": False}, {}),
    "kpi.target_set": ("leadership", "지원팀 주간 CSAT 목표", {
        "metric": "csat_average", "group_by": "department", "group": "support",
        "period": "week", "target": 4.2}, {}),
}  # fmt: skip


def example(event_type: str) -> dict[str, Any]:
    """A valid event body of ``event_type`` (a fresh copy)."""
    department, summary, payload, extra = _EXAMPLES[event_type]
    body = {
        "type": event_type, "account_id": "hanbit-electronics",
        "occurred_at": "2026-11-20T10:00:00+09:00", "source": "crm",
        "actor": _ACTORS[department], "summary": summary, "payload": payload, **extra,
    }  # fmt: skip
    if event_type in ORGANISATION_TYPES:
        del body["account_id"]
        body["source"] = "hr-system" if department == "hr" else "okr-tool"
    return copy.deepcopy(body)


def examples() -> dict[str, dict[str, Any]]:
    return {t: example(t) for t in _EXAMPLES}
