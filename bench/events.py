"""Realistic event bodies: every catalog type, Korean and English text, a year of history.

Accounts are skewed: one "large account" gets ``large`` events (for the timeline query phase),
the rest follow a Zipf-like spread over the other accounts. Generation is seeded, except event
ids, which are fresh UUIDs so a run never collides with an earlier one.
"""

from __future__ import annotations

import itertools
import json
import random
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from services.core import codec
from services.core.events import TYPE_DEPARTMENTS, EnvelopeBase, parse_event
from services.core.ports import OutgoingRecord
from tests.samples import make_event

TYPE_WEIGHTS: dict[str, int] = {
    "account.registered": 1, "sales.meeting_held": 10, "sales.call_logged": 12,
    "sales.email_sent": 14, "sales.proposal_sent": 4, "sales.deal_stage_changed": 5,
    "marketing.campaign_sent": 10, "marketing.event_attended": 4,
    "marketing.content_engaged": 8, "support.ticket_opened": 8, "support.ticket_resolved": 6,
    "support.csat_recorded": 4, "success.review_held": 4, "leadership.meeting_held": 2,
    "commitment.made": 3, "commitment.fulfilled": 2, "commitment.cancelled": 1,
    "marketing.campaign_responded": 3, "customer.need_identified": 2,
}  # fmt: skip
PEOPLE_PER_DEPARTMENT = 60  # actors are emp-<department>-<1..60>
CAMPAIGNS = 20

SUMMARIES: dict[str, list[str]] = {
    "sales": [
        "{c} 구매팀과 분기 리뷰 — 예산 확정 전",
        "Follow-up call with {c} about SSO and renewal",
        "{c} 견적 송부, 할인율 협의 중",
        "Demo for {c}: reporting module, positive feedback",
    ],
    "marketing": [
        "{c} 연말 프로모션 메일 발송",
        "{c} attended Customer Day Seoul",
        "{c} 담당자 백서 다운로드",
        "Webinar invite opened by {c}",
    ],
    "support": [
        "{c} 청구서 금액 오류 — 불만 접수",
        "{c}: login failures after SSO change",
        "{c} 환불 처리 완료",
        "{c} CSAT 2 — 응답이 늦었어요",
    ],
    "success": ["{c} QBR: adoption low in the Busan office", "{c} 온보딩 점검, 챔피언 교체 위험"],
    "leadership": ["CEO dinner with {c}: 가격 인상 우려", "{c} 임원 미팅 — 확장 계획 공유"],
}
SUBJECTS = ["분기 리뷰", "Renewal", "가격 협상", "SSO rollout", "청구서 문의", "Expansion plan",
            "장애 보고", "Onboarding"]  # fmt: skip
NAMES = ["김지원", "박영희", "이민수", "Jane Park", "최서윤", "David Kim", "정하준", "윤서연"]
TITLES = ["구매팀장", "CTO", "VP Operations", "재무 담당", "IT Manager"]
SOURCES = ["salesforce", "zendesk", "hubspot", "gmail", "calendar", "manual"]
COMPANIES = ["한빛전자", "Acme Korea", "서울로지스", "Blue Harbor", "대한바이오", "Nori Games",
             "미래금융", "Pacific Steel"]  # fmt: skip
SEOUL = timezone(timedelta(hours=9))
ID_FIELDS = ("ticket_id", "deal_id", "proposal_id", "campaign_id", "commitment_id")


@dataclass(frozen=True)
class Dataset:
    """The generated bodies, the large account's id and how many events it has."""

    bodies: list[dict[str, Any]]
    accounts: list[str]
    large_account: str
    large_events: int


def account_names(count: int) -> list[str]:
    """``count`` account ids; the first one is the large account."""
    return ["hanbit-electronics-large", *(f"acct-{i:05d}" for i in range(1, count))]


def _payload(rng: random.Random, event_type: str, base: dict[str, Any]) -> dict[str, Any]:
    payload = dict(base)
    for key in ID_FIELDS:
        if key in payload:
            payload[key] = f"{key.split('_')[0][:2].upper()}-{rng.randint(1, 999_999)}"
    if "subject" in payload:
        payload["subject"] = rng.choice(SUBJECTS)
    if "amount" in payload:
        payload["amount"] = rng.randint(1, 5000) * 100_000
    if event_type == "support.csat_recorded":
        payload["score"] = rng.randint(1, 5)
    if event_type == "sales.call_logged":
        payload["duration_s"] = rng.randint(30, 3600)
    if event_type == "support.ticket_opened":
        payload["severity"] = rng.choice(["low", "normal", "high", "urgent"])
        payload["category"] = rng.choice(["billing", "sso", "performance", "reporting"])
    if event_type == "marketing.campaign_responded":  # a few campaigns, as in real life
        payload["campaign_id"] = f"C-{rng.randint(1, CAMPAIGNS)}"
    if event_type == "customer.need_identified":
        payload["need_id"] = f"N-{rng.randint(1, 999_999)}"
        payload["category"] = rng.choice(["localization", "security", "reporting", "speech"])
    return payload


def make_body(
    rng: random.Random, event_type: str, account: str, accounts: Sequence[str], now: datetime
) -> dict[str, Any]:
    """One valid, varied event body."""
    dept = event_type.split(".", 1)[0]
    if dept not in TYPE_DEPARTMENTS:
        dept = rng.choice(TYPE_DEPARTMENTS)
    moment = now - timedelta(seconds=rng.uniform(0, 365 * 86_400))
    tz = SEOUL if rng.random() < 0.7 else UTC
    company = COMPANIES[sum(map(ord, account)) % len(COMPANIES)]
    domain = account.rsplit("-", 1)[-1]
    body = make_event(
        event_type,
        account_id=account,
        occurred_at=moment.astimezone(tz).isoformat(timespec="milliseconds"),
        source=rng.choice(SOURCES),
        actor={"id": f"emp-{dept}-{rng.randint(1, PEOPLE_PER_DEPARTMENT)}",
               "name": rng.choice(NAMES),
               "department": dept},
        contacts=[{"name": rng.choice(NAMES), "email": f"c{rng.randint(1, 9999)}@{domain}.example",
                   "title": rng.choice(TITLES)} for _ in range(rng.randint(0, 2))],
        summary=rng.choice(SUMMARIES[dept]).format(c=company),
    )  # fmt: skip
    body["payload"] = _payload(rng, event_type, body["payload"])
    if rng.random() < 0.05:
        other = rng.choice(accounts)
        if other != account:
            body["related_account_ids"] = [other]
    return body


def generate(n: int, n_accounts: int, large: int, seed: int = 42, *,
             roster: bool = True) -> Dataset:  # fmt: skip
    """``n`` bodies over ``n_accounts`` accounts; the first account gets ``large`` of them;
    with ``roster``, 300 of the others are ``employee.registered`` for the actors."""
    rng = random.Random(seed)
    accounts = account_names(n_accounts)
    others = accounts[1:]
    cum = list(itertools.accumulate(1.0 / (rank + 5) ** 0.8 for rank in range(len(others))))
    types, weights = list(TYPE_WEIGHTS), list(TYPE_WEIGHTS.values())
    now = datetime.now(UTC)
    picks = [accounts[0]] * large + rng.choices(others, cum_weights=cum, k=n - large)
    rng.shuffle(picks)
    event_types = rng.choices(types, weights=weights, k=n)
    _cover_every_account(rng, picks, event_types, others)
    bodies = [make_body(rng, t, a, accounts, now) for t, a in zip(event_types, picks, strict=True)]
    # The roster takes the place of some other accounts' events: still n events, the large
    # account keeps its count and every other account keeps at least one event.
    slots, left = [], Counter(picks)
    for i, a in enumerate(picks if roster else ()):
        if a != accounts[0] and left[a] > 1:
            left[a] -= 1
            slots.append(i)
    for i, body in zip(slots, employees(now - timedelta(days=400)), strict=False):
        bodies[i] = body
    return Dataset(bodies, accounts, accounts[0], large)


def _cover_every_account(rng: random.Random, picks: list[str], event_types: list[str],
                         others: Sequence[str]) -> None:  # fmt: skip
    """Give each account the skewed spread left without an event one ``account.registered``,
    in a slot of an account that has several: the directory holds every account of the run
    (at 100,000 accounts and 200,000 events about half would otherwise have none)."""
    counts = Counter(picks)
    unused = [a for a in others if a not in counts]
    if not unused:
        return
    spread = set(others)
    order = list(range(len(picks)))
    rng.shuffle(order)
    for i in order:
        if not unused:
            break
        held = picks[i]
        if held in spread and counts[held] > 1:
            counts[held] -= 1
            picks[i] = unused.pop()
            event_types[i] = "account.registered"


def employees(at: datetime) -> list[dict[str, Any]]:
    """``employee.registered`` for every actor the bodies use (the reports' roster); one in
    each department of the type-owning five is an executive by title."""
    out = []
    for dept in TYPE_DEPARTMENTS:
        for i in range(1, PEOPLE_PER_DEPARTMENT + 1):
            title = "VP" if i == 1 else "Manager"
            out.append(make_event(
                "employee.registered", occurred_at=at.isoformat(), source="hr",
                actor={"id": "emp-hr-1", "department": "hr"},
                payload={"employee_id": f"emp-{dept}-{i}", "name": NAMES[i % len(NAMES)],
                         "department": dept, "title": title},
            ))  # fmt: skip
    return out


def server_form(body: dict[str, Any], recorded_at: datetime) -> EnvelopeBase:
    """The event as ingest stores it (validated, canonical, with ``recorded_at``)."""
    return parse_event(body).model_copy(update={"recorded_at": recorded_at})


def records_of(events: Sequence[EnvelopeBase]) -> list[OutgoingRecord]:
    """The exact log records ingest would append for these events."""
    return [codec.encode(e) for e in events]


def batches(bodies: Sequence[dict[str, Any]], size: int) -> Iterator[bytes]:
    """Request bodies for ``POST /v1/events/batch`` (serialised ahead of the timed phase)."""
    for start in range(0, len(bodies), size):
        chunk = bodies[start : start + size]
        yield json.dumps({"events": chunk}, ensure_ascii=False).encode()


def fresh_id() -> str:
    return str(uuid.uuid4())
