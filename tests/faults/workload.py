"""A realistic stream of customer touchpoints for the fault tests.

Every department speaks, in Korean: registrations (and re-registrations), meetings with contacts
and related accounts, proposals and campaigns with offers, tickets that open and resolve,
CSAT scores, commitments made and fulfilled, executives' meetings. Lifecycle ids are few per
account so later events land on earlier ones; business times fall on a 10-minute grid so sort
keys tie and the log position has to break them.
"""

from __future__ import annotations

import random
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from services.core import codec
from services.core.events import EnvelopeBase, parse_event
from services.core.ports import EventLog, OutgoingRecord
from tests.samples import make_event

SEOUL = ZoneInfo("Asia/Seoul")
# Their keys fall in every partition of a 6-partition topic (3 to 5 accounts each).
ACCOUNTS = {
    "hanbit-electronics": "한빛전자", "seoul-logistics": "서울물류", "busan-marine": "부산해운",
    "daegu-textile": "대구섬유", "jeju-resort": "제주리조트", "incheon-air": "인천항공서비스",
    "gwangju-motors": "광주모터스", "ulsan-chem": "울산화학", "suwon-semicon": "수원반도체",
    "pangyo-soft": "판교소프트", "daejeon-bio": "대전바이오", "sejong-energy": "세종에너지",
    "changwon-robotics": "창원로보틱스", "gangneung-foods": "강릉식품",
    "jeonju-media": "전주미디어", "pohang-steel": "포항제철소재", "mokpo-shipyard": "목포조선",
    "yeosu-petro": "여수석유화학", "iksan-foods": "익산식품", "yongin-chip": "용인반도체",
    "chuncheon-ai": "춘천AI랩",
}  # fmt: skip
GROUP = "hanbit-group"
PEOPLE = {
    "sales": [("u-park", "박영희", "Account Executive"), ("u-jung", "정민호", "영업 이사")],
    "marketing": [("u-lee", "이수진", "캠페인 매니저")],
    "support": [("u-kim", "김도윤", "고객지원 엔지니어"), ("u-han", "한지민", "지원팀장")],
    "success": [("u-jang", "장서연", "CSM")],
    "leadership": [("u-choi", "최재원", "CEO")],
}  # fmt: skip
CONTACTS = [
    {"id": "c-1", "name": "이민수", "email": "minsu@acme.example", "title": "CTO"},
    {"id": "c-2", "name": "오세훈", "title": "구매팀장"},
    {"email": "Buyer@Hanbit.example", "name": "구매 담당"},
    {"name": "김하늘"},
]  # fmt: skip
KINDS = [
    ("sales.meeting_held", 5), ("sales.proposal_sent", 2), ("marketing.campaign_sent", 3),
    ("support.ticket_opened", 4), ("support.ticket_resolved", 3), ("support.csat_recorded", 2),
    ("commitment.made", 3), ("commitment.fulfilled", 2), ("leadership.meeting_held", 1),
    ("account.registered", 1),
]  # fmt: skip


class Workload:
    """Deterministic (per seed) event bodies with client-chosen event ids; not thread-safe."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._now = datetime.now(UTC).replace(second=0, microsecond=0)
        self._registered: set[str] = set()
        self._count = 0

    def bodies(self, n: int) -> list[dict[str, Any]]:
        return [self.body() for _ in range(n)]

    def body(self) -> dict[str, Any]:
        rng = self._rng
        self._count += 1
        account = rng.choice(sorted(ACCOUNTS))
        kind = "account.registered"
        if account in self._registered:
            kind = rng.choices([k for k, _ in KINDS], [w for _, w in KINDS])[0]
        self._registered.add(account)
        department = kind.split(".")[0]
        if department not in PEOPLE:
            department = rng.choice(["sales", "success", "leadership"])
        person, name, title = rng.choice(PEOPLE[department])
        minutes = rng.randrange(0, 60 * 24 * 45, 10)  # a 10-minute grid: sort keys tie
        occurred = (self._now - timedelta(minutes=minutes)).astimezone(SEOUL)
        related = [GROUP] if rng.random() < 0.25 else []
        if rng.random() < 0.1:
            related.append(rng.choice([a for a in sorted(ACCOUNTS) if a != account]))
        return make_event(
            kind, event_id=_uuid(rng), account_id=account, related_account_ids=related,
            occurred_at=occurred.isoformat(), source=rng.choice(["salesforce", "zendesk", "web"]),
            actor={"id": person, "name": name, "department": department, "title": title},
            contacts=rng.sample(CONTACTS, rng.randrange(0, 3)),
            summary=f"{ACCOUNTS[account]} {kind} #{self._count}: 고객 의견 청취",
            payload=self._payload(kind, account, occurred),
        )  # fmt: skip

    def _payload(self, kind: str, account: str, occurred: datetime) -> dict[str, Any]:
        rng = self._rng
        ref = rng.randrange(3)  # few lifecycle ids per account: events land on earlier ones
        later = (occurred + timedelta(days=rng.choice([3, 14, 60]))).isoformat()
        payloads: dict[str, dict[str, Any]] = {
            "account.registered": {
                "name": ACCOUNTS[account], "segment": rng.choice(["enterprise", "smb"]),
                "tier": rng.choice(["gold", "silver", None]), "parent_account_id": GROUP,
                "owners": {"sales": rng.choice(["u-park", "u-jung"]), "support": "u-kim"},
            },
            "sales.meeting_held": {"subject": "분기 리뷰", "notes": "예산 확정 전",
                                   "next_steps": rng.choice(["견적 송부", "데모 일정 조율"])},
            "sales.proposal_sent": {
                "proposal_id": f"P-{ref}", "product": "OneVoice Cloud",
                "amount": rng.choice([1.2e8, 98_500_000.5]), "currency": "KRW",
                "discount_pct": rng.choice([None, 10, 12.5]), "valid_until": later,
            },
            "marketing.campaign_sent": {
                "campaign_id": f"C-{ref}", "name": "연말 프로모션", "channel": "email",
                "offer": {"product": rng.choice(["OneVoice Cloud", "onevoice  cloud"]),
                          "discount_pct": rng.choice([10, 25]),
                          "terms": rng.choice(["3년 약정", None])},
            },
            "support.ticket_opened": {
                "ticket_id": f"T-{ref}", "subject": rng.choice(["결제 오류", "로그인 불가"]),
                "category": rng.choice(["billing", "Billing", "sso"]),
                "severity": rng.choice(["low", "normal", "high", "urgent"]),
                "complaint": rng.random() < 0.5,
            },
            "support.ticket_resolved": {"ticket_id": f"T-{ref}", "resolution": "환불 처리 완료"},
            "support.csat_recorded": {"score": rng.randrange(1, 6), "ticket_id": f"T-{ref}",
                                      "comment": "응답이 늦었어요"},
            "commitment.made": {"commitment_id": f"CM-{ref}", "text": "다음 주까지 SLA 개선안 전달",
                                "due_at": later},
            "commitment.fulfilled": {"commitment_id": f"CM-{ref}"},
            "leadership.meeting_held": {"subject": "CEO 만찬", "heard": ["확장 계획"],
                                        "concerns": ["가격 인상 우려"],
                                        "complaints": rng.choice([[], ["장애 대응 지연"]])},
        }  # fmt: skip
        return {k: v for k, v in payloads[kind].items() if v is not None}


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def as_recorded(body: dict[str, Any]) -> EnvelopeBase:
    """The event as ingest would append it: validated, ``recorded_at`` set to now."""
    return parse_event(body).model_copy(update={"recorded_at": datetime.now(UTC)})


class Appender:
    """Appends the workload straight to the log (as ingest would), from the test or from a
    background thread, with the retried copies a client leaves behind: about one event in 30
    is appended again later under the same id and key, with a later ``recorded_at``."""

    def __init__(self, log: EventLog, topic: str, seed: int) -> None:
        self._log, self._topic = log, topic
        self._workload = Workload(seed)
        self._rng = random.Random(seed + 1)
        self._sent: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.appended = 0
        self.copies = 0
        self.error: BaseException | None = None

    def append(self, n: int) -> None:
        """Append ``n`` new events (and maybe a retried copy of an earlier one), in one call."""
        with self._lock:
            bodies = self._workload.bodies(n)
            retried = [self._rng.choice(self._sent) for _ in range(n) if self._sent
                       and self._rng.random() < 1 / 30]  # fmt: skip
            records: list[OutgoingRecord] = [codec.encode(as_recorded(b))
                                             for b in bodies + retried]  # fmt: skip
            self._log.append(self._topic, records)
            self._sent += bodies
            self.appended += len(records)
            self.copies += len(retried)

    def start(self, chunk: int = 20, pause_s: float = 0.05) -> None:
        """Keep appending ``chunk`` events every ``pause_s`` in a thread until ``stop``."""

        def loop() -> None:
            try:
                while not self._stop.is_set():
                    self.append(chunk)
                    self._stop.wait(pause_s)
            except BaseException as exc:  # reported by stop(), which fails the test
                self.error = exc

        self._stop.clear()
        self._thread = threading.Thread(target=loop, name="appender", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            assert not self._thread.is_alive(), "the appender thread did not stop within 60 s"
        assert self.error is None, f"appending to the log failed: {self.error!r}"
