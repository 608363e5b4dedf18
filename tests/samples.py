"""Realistic valid events for every catalog type, and a builder for variations."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from services.core.events import ORGANISATION_TYPES

SAMPLE_PAYLOADS: dict[str, dict[str, Any]] = {
    "account.registered": {
        "name": "한빛전자", "segment": "enterprise", "tier": "gold",
        "parent_account_id": "hanbit-group", "owners": {"sales": "u-park", "support": "u-kim"},
    },
    "sales.meeting_held": {"subject": "분기 리뷰", "notes": "예산 확정 전",
                           "next_steps": "견적 송부"},
    "sales.call_logged": {"subject": "follow-up", "notes": "asked about SSO", "duration_s": 420},
    "sales.email_sent": {"subject": "Proposal attached"},
    "sales.proposal_sent": {
        "proposal_id": "P-100", "product": "OneVoice Cloud", "amount": 120000000,
        "currency": "KRW", "discount_pct": 10, "valid_until": "2026-12-31T23:59:59+09:00",
    },
    "sales.deal_stage_changed": {"deal_id": "D-7", "stage": "negotiation", "amount": 1.5e8,
                                 "currency": "KRW"},
    "marketing.campaign_sent": {
        "campaign_id": "C-9", "name": "연말 프로모션", "channel": "email",
        "offer": {"product": "OneVoice Cloud", "discount_pct": 25, "terms": "3년 약정"},
    },
    "marketing.event_attended": {"event_name": "Customer Day Seoul 2026"},
    "marketing.content_engaged": {"content": "whitepaper-cx", "action": "downloaded"},
    "marketing.campaign_responded": {"campaign_id": "C-2026-11", "response": "데모 요청",
                                     "channel": "email"},
    "support.ticket_opened": {
        "ticket_id": "T-1", "subject": "결제 오류", "category": "billing",
        "severity": "high", "complaint": True,
    },
    "support.ticket_resolved": {"ticket_id": "T-1", "resolution": "환불 처리 완료"},
    "support.csat_recorded": {"score": 2, "ticket_id": "T-1", "comment": "응답이 늦었어요"},
    "success.review_held": {"subject": "QBR", "notes": "adoption low", "risks": ["champion left"]},
    "leadership.meeting_held": {
        "subject": "CEO dinner", "heard": ["확장 계획"], "concerns": ["가격 인상 우려"],
        "complaints": ["장애 대응 지연"], "learnings": ["경쟁사 접촉 중"],
    },
    "customer.need_identified": {"need_id": "N-1", "text": "한국어 음성 인식 지원",
                                 "category": "localization", "priority": "high"},
    "customer.need_addressed": {"need_id": "N-1", "how": "설정에서 켜는 법 안내",
                                "on_site": True},
    "sales.order_placed": {"order_id": "O-1", "amount": 12000000, "currency": "KRW",
                           "products": ["OneVoice Cloud"]},
    "success.renewal_scheduled": {"contract_id": "K-1", "renews_at": "2027-01-01T00:00:00+09:00",
                                  "amount": 24000000, "currency": "KRW"},
    "success.renewed": {"contract_id": "K-1", "renews_at": "2028-01-01T00:00:00+09:00"},
    "success.churned": {"reason": "경쟁사로 이전", "contract_id": "K-1"},
    "commitment.made": {"commitment_id": "CM-1", "text": "다음 주까지 SLA 개선안 전달",
                        "due_at": "2026-11-30T18:00:00+09:00"},
    "commitment.fulfilled": {"commitment_id": "CM-1"},
    "commitment.cancelled": {"commitment_id": "CM-1"},
    "employee.registered": {"employee_id": "u-choi", "name": "최민호",
                            "department": "leadership", "title": "CEO", "active": True},
    "employee.updated": {"employee_id": "u-choi", "title": "Chairman", "active": True},
    "kpi.target_set": {"metric": "accounts_touched", "group_by": "department",
                       "group": "sales", "period": "week", "target": 40},
}  # fmt: skip
CUSTOMER_TYPES = tuple(t for t in SAMPLE_PAYLOADS if t not in ORGANISATION_TYPES)

# One way per type to break the payload (a required field missing or a value out of range).
INVALID_PAYLOADS: dict[str, tuple[dict[str, Any], str]] = {
    "account.registered": ({"segment": "smb"}, "payload.name"),
    "sales.meeting_held": ({"notes": "n"}, "payload.subject"),
    "sales.call_logged": ({"duration_s": -5}, "payload.duration_s"),
    "sales.email_sent": ({}, "payload.subject"),
    "sales.proposal_sent": ({"proposal_id": "P", "product": "X", "amount": 1, "currency": "krw"},
                            "payload.currency"),
    "sales.deal_stage_changed": ({"deal_id": "D"}, "payload.stage"),
    "marketing.campaign_sent": ({"campaign_id": "C", "name": "n", "channel": "email",
                                 "offer": {"discount_pct": 150}}, "payload.offer.discount_pct"),
    "marketing.event_attended": ({"event": "x"}, "payload.event_name"),
    "marketing.content_engaged": ({"content": "x"}, "payload.action"),
    "marketing.campaign_responded": ({"campaign_id": "C"}, "payload.response"),
    "support.ticket_opened": ({"ticket_id": "T", "subject": "s", "category": "c",
                               "severity": "critical"}, "payload.severity"),
    "support.ticket_resolved": ({"resolution": "r"}, "payload.ticket_id"),
    "support.csat_recorded": ({"score": 6}, "payload.score"),
    "success.review_held": ({"subject": "s", "risks": "not a list"}, "payload.risks"),
    "leadership.meeting_held": ({"subject": "s", "heard": [1]}, "payload.heard.0"),
    "customer.need_identified": ({"need_id": "N", "text": "t", "category": "c",
                                  "priority": "critical"}, "payload.priority"),
    "customer.need_addressed": ({"need_id": "N", "how": ""}, "payload.how"),
    "sales.order_placed": ({"order_id": "O", "amount": -1, "currency": "KRW"}, "payload.amount"),
    "success.renewal_scheduled": ({"contract_id": "K", "renews_at": "2027-01-01"},
                                  "payload.renews_at"),
    "success.renewed": ({"contract_id": "K", "currency": "krw"}, "payload.currency"),
    "success.churned": ({"contract_id": "K"}, "payload.reason"),
    "commitment.made": ({"commitment_id": "c", "text": "t", "due_at": "2026-11-30T18:00:00"},
                        "payload.due_at"),
    "commitment.fulfilled": ({}, "payload.commitment_id"),
    "commitment.cancelled": ({"commitment_id": "c", "reason": "x"}, "payload.reason"),
    "employee.registered": ({"employee_id": "e", "name": "n", "department": "Sales"},
                            "payload.department"),
    "employee.updated": ({"employee_id": "e", "active": "maybe"}, "payload.active"),
    "kpi.target_set": ({"metric": "happiness", "group_by": "department", "group": "sales",
                        "period": "week", "target": 1}, "payload.metric"),
}  # fmt: skip


def department_for(event_type: str) -> str:
    prefix = event_type.split(".", 1)[0]
    if event_type in ORGANISATION_TYPES:
        return "hr"
    return (
        prefix if prefix in {"sales", "marketing", "support", "success", "leadership"} else "sales"
    )


def make_event(event_type: str = "sales.meeting_held", **overrides: Any) -> dict[str, Any]:
    """A valid event body of ``event_type``; keyword arguments replace top-level fields. An
    organisation type's body has no account, contacts or related accounts."""
    body: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "type": event_type,
        "account_id": "acme-kr",
        "occurred_at": "2026-11-20T10:00:00+09:00",
        "source": "salesforce",
        "actor": {"id": "u-park", "name": "박영희", "department": department_for(event_type),
                  "title": "Account Executive"},
        "contacts": [{"id": "c-1", "name": "이민수", "email": "minsu@acme.example",
                      "title": "CTO"}],
        "summary": "고객과 통화: 갱신 논의",
        "payload": copy.deepcopy(SAMPLE_PAYLOADS[event_type]),
    }  # fmt: skip
    if event_type in ORGANISATION_TYPES:
        del body["account_id"], body["contacts"]
    body.update(overrides)
    return body
