"""``make demo``: a realistic multi-department story, posted through the public batch API.

Event times are relative to today (UTC) and event ids derive from today's date, so running the
demo twice on one day answers "duplicate" instead of doubling the timelines.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

_NAMESPACE = uuid.UUID("0b6f0c52-3d4e-4a9e-9f7e-6f6e65766f69")

# (key, days ago, type, account, actor, summary, payload, extra envelope fields)
_PARK = {"id": "emp-park", "name": "박영희", "department": "sales", "title": "Account Executive"}
_LEE = {"id": "emp-lee", "name": "이수진", "department": "marketing", "title": "Campaign Manager"}
_KIM = {"id": "emp-kim", "name": "김지원", "department": "support", "title": "Support Lead"}
_CHOI = {"id": "emp-choi", "name": "최민호", "department": "leadership", "title": "CEO"}
_JANG = {"id": "emp-jang", "name": "장하늘", "department": "success", "title": "CSM"}
_SMITH = {"id": "emp-smith", "name": "Dana Smith", "department": "sales", "title": "AE"}
_HAN = {"id": "emp-han", "name": "한지민", "department": "engineering", "title": "솔루션 엔지니어"}
_DEV = {"id": "hb-dev", "name": "박서준", "email": "sj.park@hanbit.example", "title": "개발팀장"}
_SB_CFO = {
    "id": "sb-cfo",
    "name": "Grace Lim",
    "email": "grace.lim@seoulbank.example",
    "title": "CFO",
}
_CTO = {"id": "hb-cto", "name": "오세훈", "email": "sh.oh@hanbit.example", "title": "CTO"}
_BUYER = {"id": "hb-buy", "name": "윤서연", "email": "sy.yoon@hanbit.example", "title": "구매팀장"}
_HR = {"id": "emp-shin", "name": "신유나", "department": "hr", "title": "HR Manager"}
_MIRAE = {"id": "mr-ops", "name": "정다은", "email": "de.jung@mirae.example", "title": "운영이사"}


def _employee(key: str, person: dict[str, str], days_ago: float) -> tuple[Any, ...]:
    payload = {"employee_id": person["id"], "name": person["name"],
               "department": person["department"], "title": person["title"]}  # fmt: skip
    return (key, days_ago, "employee.registered", None, _HR, f"{person['name']} 등록", payload, {})


# Organisation events (the roster, KPI targets) have no account (None).
STORY: list[tuple[str, float, str, str | None, dict[str, str], str, dict[str, Any],
                  dict[str, Any]]] = [
    ("reg-hanbit", 400, "account.registered", "hanbit-electronics", _PARK, "신규 고객 등록",
     {"name": "한빛전자", "segment": "enterprise", "tier": "gold",
      "parent_account_id": "hanbit-group",
      "owners": {"sales": "emp-park", "support": "emp-kim", "success": "emp-jang"}}, {}),
    ("reg-group", 400, "account.registered", "hanbit-group", _PARK, "그룹 본사 등록",
     {"name": "한빛그룹", "segment": "enterprise", "tier": "platinum"}, {}),
    ("meet-1", 21, "sales.meeting_held", "hanbit-electronics", _PARK, "CTO와 갱신 논의",
     {"subject": "2027 갱신 미팅", "notes": "예산은 1분기에 확정", "next_steps": "견적서 송부"},
     {"contacts": [_CTO]}),
    ("proposal", 14, "sales.proposal_sent", "hanbit-electronics", _PARK, "갱신 견적 10% 할인",
     {"proposal_id": "P-2027-001", "product": "OneVoice Cloud", "amount": 120_000_000,
      "currency": "KRW", "discount_pct": 10}, {"contacts": [_BUYER]}),
    ("campaign", 10, "marketing.campaign_sent", "hanbit-electronics", _LEE,
     "연말 프로모션 메일: 25% 할인",
     {"campaign_id": "C-YE-2026", "name": "연말 프로모션", "channel": "email",
      "offer": {"product": "OneVoice Cloud", "discount_pct": 25, "terms": "3년 약정 시"}},
     {"contacts": [_BUYER]}),
    ("ticket-1", 45, "support.ticket_opened", "hanbit-electronics", _KIM, "결제 오류 불만",
     {"ticket_id": "T-3101", "subject": "청구서 금액 오류", "category": "billing",
      "severity": "high", "complaint": True}, {}),
    ("ticket-1-done", 43, "support.ticket_resolved", "hanbit-electronics", _KIM,
     "환불 처리, 원인과 재발 방지책 기록",
     {"ticket_id": "T-3101", "resolution": "환불 처리 완료",
      "cause": {"category": "billing", "text": "세금계산서 이중 발행"},
      "prevention": {"action": "발행 전 중복 검사 추가", "owner": "emp-kim"}}, {}),
    ("ticket-2", 6, "support.ticket_opened", "hanbit-electronics", _KIM,
     "또 청구서 오류 — 재발 불만",
     {"ticket_id": "T-3388", "subject": "청구서 금액 오류 재발", "category": "billing",
      "severity": "urgent", "complaint": True}, {}),
    ("dinner", 4, "leadership.meeting_held", "hanbit-electronics", _CHOI,
     "CEO 만찬: 가격 인상 우려를 들음",
     {"subject": "한빛전자 CEO 만찬", "heard": ["내년 해외 확장 계획"],
      "concerns": ["가격 인상 우려", "청구 오류 반복"], "complaints": ["장애 대응 지연"],
      "learnings": ["경쟁사와 접촉 중"]}, {"contacts": [_CTO]}),
    ("commit", 4, "commitment.made", "hanbit-electronics", _CHOI, "청구 오류 재발 방지책 약속",
     {"commitment_id": "CM-77", "text": "청구 오류 재발 방지책을 2주 안에 공유",
      "due_at": None}, {}),
    ("review", 2, "success.review_held", "hanbit-electronics", _JANG, "QBR: 사용률 저조",
     {"subject": "분기 비즈니스 리뷰", "notes": "활성 사용자 40%",
      "risks": ["챔피언 이직 예정"]}, {"related_account_ids": ["hanbit-group"]}),
    # Issue 10: the whole company. A marketer joins the rep on a visit ...
    ("joint-visit", 8, "sales.meeting_held", "hanbit-electronics", _PARK,
     "마케팅과 공동 방문: 도입 사례 발표 제안",
     {"subject": "공동 방문", "next_steps": "사례 발표 일정 조율"},
     {"contacts": [_CTO], "participants": [_LEE]}),
    # ... a developer attends a seminar and nobody in sales or success follows up ...
    ("seminar", 12, "marketing.event_attended", "hanbit-electronics", _LEE,
     "개발팀장이 AI 고객경험 세미나 참석", {"event_name": "AI 고객경험 세미나"},
     {"contacts": [_DEV]}),
    # ... an engineer hears a need and solves it on site ...
    ("need", 9, "customer.need_identified", "hanbit-electronics", _HAN, "한국어 음성 인식 요구",
     {"need_id": "N-501", "text": "콜센터 한국어 음성 인식 정확도 개선", "category": "speech",
      "priority": "high"}, {"contacts": [_CTO]}),
    ("need-done", 9, "customer.need_addressed", "hanbit-electronics", _HAN, "현장에서 사전 튜닝",
     {"need_id": "N-501", "how": "방문 중 도메인 사전 튜닝", "on_site": True}, {}),
    ("need-open", 5, "customer.need_identified", "hanbit-electronics", _JANG, "월간 리포트 요청",
     {"need_id": "N-502", "text": "임원용 월간 리포트", "category": "reporting"}, {}),
    # ... and a bank whose renewal is 20 days away has not been touched for 45 days.
    ("reg-bank", 500, "account.registered", "seoul-bank", _SMITH, "서울은행 등록",
     {"name": "서울은행", "segment": "enterprise", "tier": "gold",
      "owners": {"sales": "emp-smith", "success": "emp-jang"}}, {}),
    ("bank-order", 380, "sales.order_placed", "seoul-bank", _SMITH, "연간 구독 주문",
     {"order_id": "SO-2025-77", "amount": 180_000_000, "currency": "KRW",
      "products": ["OneVoice Cloud", "Premium Support"]}, {"contacts": [_SB_CFO]}),
    ("bank-renewal", 45, "success.renewal_scheduled", "seoul-bank", _JANG, "갱신 일정 확정",
     {"contract_id": "SB-K1", "renews_at": None, "amount": 190_000_000, "currency": "KRW"},
     {}),
    ("reg-north", 300, "account.registered", "northwind", _SMITH, "New logo",
     {"name": "Northwind Traders", "segment": "mid-market", "tier": "silver",
      "owners": {"sales": "emp-smith"}}, {}),
    ("north-call", 95, "sales.call_logged", "northwind", _SMITH, "Intro call, asked for pricing",
     {"subject": "Intro", "notes": "Interested in SSO", "duration_s": 1260}, {}),
    ("north-csat", 92, "support.csat_recorded", "northwind", _KIM, "CSAT 3/5",
     {"score": 3, "comment": "Setup docs were unclear"}, {}),
    ("reg-daehan", 3, "account.registered", "daehan-logistics", _SMITH, "대한물류 신규 등록",
     {"name": "대한물류", "segment": "smb", "owners": {"sales": "emp-smith"}}, {}),
    # Issue 11: the roster (a VP who has met no customer yet), a followed-up campaign response,
    # a low CSAT, and targets the leaders set.
    *(_employee(f"hr-{p['id']}", p, 400) for p in (_CHOI, _PARK, _KIM, _JANG, _SMITH, _LEE)),
    _employee("hr-yoo", {"id": "emp-yoo", "name": "유재석", "department": "sales",
                         "title": "VP Sales"}, 60),
    ("reg-mirae", 60, "account.registered", "mirae-bio", _PARK, "미래바이오 등록",
     {"name": "미래바이오", "segment": "mid-market", "owners": {"sales": "emp-park"}}, {}),
    ("mirae-reply", 9, "marketing.campaign_responded", "mirae-bio", _LEE, "프로모션에 데모 요청",
     {"campaign_id": "C-YE-2026", "response": "데모 요청", "channel": "email"},
     {"contacts": [_MIRAE]}),
    ("mirae-demo", 8, "sales.meeting_held", "mirae-bio", _PARK, "데모 미팅",
     {"subject": "제품 데모", "next_steps": "파일럿 제안서 송부"}, {"contacts": [_MIRAE]}),
    ("mirae-csat", 3, "support.csat_recorded", "mirae-bio", _KIM, "CSAT 2/5",
     {"score": 2, "comment": "설정 안내가 부족했어요"}, {}),
    ("target-touch", 30, "kpi.target_set", None, _CHOI, "영업 주간 접점 목표",
     {"metric": "accounts_touched", "group_by": "department", "group": "sales",
      "period": "week", "target": 5}, {}),
    ("target-complaints", 30, "kpi.target_set", None, _CHOI, "불만 주간 목표",
     {"metric": "complaints_opened", "group_by": "department", "group": "support",
      "period": "week", "target": 0}, {}),
]  # fmt: skip


def build_events(now: datetime) -> list[dict[str, Any]]:
    """The story's events, timed relative to ``now``."""
    anchor = now.date().isoformat()
    events = []
    for key, days_ago, etype, account, actor, summary, payload, extra in STORY:
        occurred = now - timedelta(days=days_ago)
        body = dict(payload)
        if etype == "commitment.made":
            body["due_at"] = (occurred + timedelta(days=14)).isoformat()
        if etype == "success.renewal_scheduled":  # 20 days from now
            body["renews_at"] = (occurred + timedelta(days=days_ago + 20)).isoformat()
        event = {
            "event_id": str(uuid.uuid5(_NAMESPACE, f"{anchor}:{key}")),
            "type": etype, "account_id": account, "occurred_at": occurred.isoformat(),
            "source": "onevoice-demo", "actor": actor, "summary": summary, "payload": body,
            **extra,
        }  # fmt: skip
        if account is None:
            del event["account_id"]
        events.append(event)
    return events


def load_demo(base_url: str, key: str, shown_key: str = "$ONEVOICE_API_KEY") -> int:
    """Post the story with the API ``key``; print what happened and where to look (curl lines
    with ``shown_key`` in place of the key). Returns a process exit code."""
    now = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    try:
        answer = httpx.post(f"{base_url}/v1/events/batch", json={"events": build_events(now)},
                            headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    except httpx.HTTPError as exc:
        print(f"could not reach OneVoice at {base_url} ({exc}); start it with `make run` first")
        return 1
    if answer.status_code != 200:
        print(f"OneVoice answered {answer.status_code}: {answer.text}")
        return 1
    result = answer.json()
    print(
        f"demo loaded: {result['accepted']} accepted, {result['duplicates']} duplicates,"
        f" {result['rejected']} rejected, {result['conflicts']} conflicts"
    )
    for item in result["items"]:
        if item["status"] in ("rejected", "conflict"):
            print("  problem:", item)
    curl = f'curl -s -H "Authorization: Bearer {shown_key}"'
    print(f"try: {curl} '{base_url}/v1/accounts/hanbit-electronics/timeline?limit=5'")
    print(f"     {curl} '{base_url}/v1/accounts/hanbit-electronics/timeline?q=청구'")
    print(
        f"     {curl} '{base_url}/v1/accounts/hanbit-electronics/view'"
        "   # conflict, recurring complaint, CM-77, health"
    )
    print(f"     {curl} '{base_url}/v1/reports/coverage'   # northwind is neglected")
    print(f"     {curl} '{base_url}/v1/accounts/seoul-bank/view'   # renewal in 20 days, untouched")
    print(f"     {curl} '{base_url}/v1/needs?status=all'   # needs across accounts")
    print(f"     {curl} '{base_url}/v1/reports/leadership'   # the VP met nobody this week")
    print(f"     {curl} '{base_url}/v1/reports/voice?from={(now - timedelta(days=30)).date()}"
          "T00:00:00Z'   # what customers said")  # fmt: skip
    print(f"     {curl} '{base_url}/v1/reports/kpi?format=csv'   # KPIs beside their targets")
    return 0 if result["rejected"] == result["conflicts"] == 0 else 1
