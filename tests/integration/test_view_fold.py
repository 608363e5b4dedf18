"""The one-voice view and the leaders' reports are pure folds: built incrementally, in any
interleaving of partitions, with any duplicate deliveries, they equal what replaying the same log
in one pass builds.

Runs on both backends (SQLite and PostgreSQL) through the ``settings`` fixture.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Connection, select

from services.bootstrap import projections
from services.core.adapters.sql import Database
from services.core.codec import StoredEvent
from services.core.events import parse_event
from services.core.readmodels import health_cache, leadership, state_history, view
from services.core.readmodels.reports import complaints, handoffs, kpi, roster, voice
from services.core.readmodels.timeline import to_micros
from services.core.view_rules import AsOf
from services.projections.onevoice import OneVoiceView
from services.projections.reports import ReportFacts
from tests.integration.test_catalog_v1_compat import differences
from tests.samples import make_event

NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
ACCOUNTS = [f"acct-{i}" for i in range(5)]
PARTITIONS = 4
CONTACTS = [{"id": "c-1", "name": "오세훈"}, {"email": "Buyer@Hanbit.example"},
            {"name": "Dana"}, {"id": "c-2", "title": "CTO"}]  # fmt: skip
PEOPLE = [("emp-park", "sales"), ("emp-lee", "marketing"), ("emp-kim", "support"),
          ("emp-jang", "success"), ("emp-choi", "leadership")]  # fmt: skip


def _payload(rng: random.Random, kind: str, i: int) -> dict[str, Any]:
    ref = rng.randrange(4)  # few ids, so lifecycles collide and interleave
    days = rng.choice([-10, 5, 40, 100])
    return {
        "account.registered": {"name": f"고객 {i}", "segment": rng.choice(["smb", "enterprise"]),
                               "owners": {"sales": rng.choice(["emp-park", "emp-x"])}},
        "commitment.made": {"commitment_id": f"CM-{ref}", "text": f"약속 {i}",
                            "due_at": (NOW + timedelta(days=rng.choice([-3, 0, 7]))).isoformat()},
        "commitment.fulfilled": {"commitment_id": f"CM-{ref}"},
        "commitment.cancelled": {"commitment_id": f"CM-{ref}"},
        "support.ticket_opened": {"ticket_id": f"T-{ref + 4 * rng.randrange(3)}",
                                  "subject": "오류",
                                  "category": rng.choice(["billing", "Billing", "sso"]),
                                  "severity": rng.choice(["low", "high", "urgent"]),
                                  "complaint": rng.random() < 0.6},
        "support.ticket_resolved": {
            "ticket_id": f"T-{ref + 4 * rng.randrange(3)}",
            **({} if rng.random() < 0.5 else {
                "cause": {"category": rng.choice(["billing", "sso"])},
                "prevention": {"action": f"방지 {i}", "owner": "emp-kim"}})},
        "support.csat_recorded": {"score": rng.randrange(1, 6)},
        "sales.proposal_sent": {"proposal_id": f"P-{ref % 2}", "product": "OneVoice Cloud",
                                "amount": 100.0, "currency": "KRW",
                                "discount_pct": rng.choice([None, 10, 25]),
                                "valid_until": (NOW + timedelta(days=days)).isoformat()},
        "marketing.campaign_sent": {"campaign_id": f"C-{ref}", "name": "연말", "channel": "email",
                                    "offer": {"product": "onevoice  cloud",
                                              "discount_pct": rng.choice([10, 25]),
                                              "terms": rng.choice(["3년 약정", None])}},
        "leadership.meeting_held": {"subject": "만찬", "concerns": [f"우려 {i}"],
                                    "complaints": rng.choice([[], ["지연"]])},
        "sales.call_logged": {"subject": "call"},
        "marketing.event_attended": {"event_name": "세미나"},
        "marketing.campaign_responded": {"campaign_id": f"C-{ref}", "response": "demo"},
        "success.review_held": {"subject": "리뷰"},
        "customer.need_identified": {"need_id": f"N-{ref}", "text": f"필요 {i}",
                                     "category": rng.choice(["speech", "Speech", "sso"]),
                                     "priority": rng.choice(["low", "normal", "high"])},
        "customer.need_addressed": {"need_id": f"N-{ref}", "how": "해결",
                                    "on_site": rng.random() < 0.5},
        "sales.order_placed": {"order_id": f"O-{ref}", "amount": float(rng.randrange(1, 9)),
                               "currency": rng.choice(["KRW", "USD"])},
        "success.renewal_scheduled": {"contract_id": f"K-{ref % 2}", "renews_at": (
            NOW + timedelta(days=rng.choice([-5, 20, 200]))).isoformat()},
        "success.renewed": {"contract_id": f"K-{ref % 2}", "renews_at": (
            NOW + timedelta(days=rng.choice([30, 400]))).isoformat()},
        "success.churned": {"reason": "이탈", **({"contract_id": "K-0"} if ref % 2 else {})},
    }[kind]  # fmt: skip


def _participants(rng: random.Random, actor: str) -> list[dict[str, Any]] | None:
    """A third of the events are joint: other people of ours, some flagged executives."""
    if rng.random() < 0.67:
        return None
    others = rng.sample([p for p in PEOPLE + EXTRA_PEOPLE if p[0] != actor], rng.randrange(1, 3))
    return [{"id": pid, "department": dept, **({"executive": True} if rng.random() < 0.3 else {})}
            for pid, dept in others]  # fmt: skip


EXTRA_PEOPLE = [("emp-han", "engineering"), ("emp-baek", "finance")]

KINDS = ["account.registered", "commitment.made", "commitment.fulfilled", "commitment.cancelled",
         "support.ticket_opened", "support.ticket_resolved", "support.csat_recorded",
         "sales.proposal_sent", "marketing.campaign_sent", "leadership.meeting_held",
         "sales.call_logged", "marketing.event_attended", "marketing.campaign_responded",
         "success.review_held", "customer.need_identified", "customer.need_addressed",
         "sales.order_placed", "success.renewal_scheduled", "success.renewed",
         "success.churned",
         # twice as likely: recurrences after a fix need several tickets per account
         "support.ticket_opened", "support.ticket_resolved"]  # fmt: skip


def history(seed: int, size: int = 240) -> list[list[StoredEvent]]:
    """Per partition, the log's records in offset order; ~5% are second copies of an event."""
    rng = random.Random(seed)
    logs: list[list[StoredEvent]] = [[] for _ in range(PARTITIONS)]
    for i in range(size):
        account = rng.choice(ACCOUNTS)
        kind = rng.choice(KINDS)
        person, department = rng.choice(PEOPLE)
        if kind.split(".")[0] in {"sales", "marketing", "support", "success", "leadership"}:
            department = kind.split(".")[0]
        when = NOW - timedelta(hours=rng.choice([0, 1, 30, 24 * 6, 24 * 29, 24 * 45, 24 * 89,
                                                 24 * 95, 24 * 200]))  # fmt: skip
        when += timedelta(hours=rng.choice([-2, 0, 9]))  # a few in the future of NOW too
        body = make_event(
            kind, account_id=account, occurred_at=when.isoformat(),
            actor={"id": person, "name": person.upper(), "department": department},
            payload=_payload(rng, kind, i),
            contacts=rng.sample(CONTACTS, rng.randrange(3)),
            related_account_ids=[rng.choice([a for a in ACCOUNTS if a != account])]
            if rng.random() < 0.2 else [],
            participants=_participants(rng, person),
        )  # fmt: skip
        if kind == "account.registered" and rng.random() < 0.3 and account != ACCOUNTS[0]:
            body["payload"]["parent_account_id"] = ACCOUNTS[0]
        event = parse_event(body)
        partition = rng.randrange(PARTITIONS)  # the log keys by account; any split is fine here
        copies = 2 if rng.random() < 0.05 else 1
        for _ in range(copies):
            log = logs[partition]
            log.append(StoredEvent(event, str(event.event_id), partition, len(log), NOW))
    # Always one of each new section (random stories do not always line them up), delivered
    # with the rest.
    account = rng.choice(ACCOUNTS)
    kim = {"id": "emp-kim", "department": "support"}
    for days, kind, payload in (
        (3, "marketing.event_attended", {"event_name": "고객 초청 세미나"}),
        (4, "customer.need_identified", {"need_id": "N-90", "text": "감사 로그 보관",
                                         "category": "compliance"}),
        (6, "sales.order_placed", {"order_id": "O-90", "amount": 7.0, "currency": "KRW"}),
        (6, "success.renewal_scheduled", {"contract_id": "K-90", "renews_at": (
            NOW + timedelta(days=20)).isoformat()}),
        (200, "support.ticket_opened", {"ticket_id": "T-90", "subject": "s", "category": "sso",
                                        "severity": "low", "complaint": True}),
        (190, "support.ticket_resolved", {"ticket_id": "T-90", "cause": {"category": "SSO"},
                                          "prevention": {"action": "인증서 자동 갱신"}}),
        (5, "support.ticket_opened", {"ticket_id": "T-91", "subject": "s", "category": "sso",
                                      "severity": "low", "complaint": True}),
    ):  # fmt: skip
        prefix = kind.split(".", 1)[0]
        actor = {**kim, "department": prefix} if prefix in ("marketing", "sales", "success") \
            else kim  # fmt: skip
        when = (NOW - timedelta(days=days)).isoformat()
        event = parse_event(make_event(kind, account_id=account, actor=actor, payload=payload,
                                       contacts=[{"id": "c-99", "name": "신규 참석자"}],
                                       occurred_at=when))  # fmt: skip
        partition = rng.randrange(PARTITIONS)
        log = logs[partition]
        log.append(StoredEvent(event, str(event.event_id), partition, len(log), NOW))
    # The roster and a KPI target: a registration and its updates, in whatever order they land.
    hr = {"id": "emp-hr", "department": "hr"}
    for days, kind, payload in (
        (40, "employee.registered", {"employee_id": "emp-choi", "name": "최민호",
                                     "department": "leadership", "title": "CEO"}),
        (10, "employee.updated", {"employee_id": "emp-choi", "title": "Chairman"}),
        (2, "employee.updated", {"employee_id": "emp-choi", "active": False}),
        (30, "employee.registered", {"employee_id": "emp-yoo", "name": "유재석",
                                     "department": "sales", "title": "VP Sales",
                                     "executive": True}),
        (20, "kpi.target_set", {"metric": "accounts_touched", "group_by": "department",
                                "group": "sales", "period": "week", "target": 3}),
        (1, "kpi.target_set", {"metric": "accounts_touched", "group_by": "department",
                               "group": "sales", "period": "week", "target": 5}),
    ):  # fmt: skip
        event = parse_event(
            make_event(
                kind,
                actor=hr,
                payload=payload,
                occurred_at=(NOW - timedelta(days=days)).isoformat(),
            )
        )
        partition = rng.randrange(PARTITIONS)
        log = logs[partition]
        log.append(StoredEvent(event, str(event.event_id), partition, len(log), NOW))
    return logs


def interleave(rng: random.Random, logs: list[list[StoredEvent]]) -> list[StoredEvent]:
    """One delivery order: partitions interleaved at random, each partition in offset order."""
    cursors = [0] * len(logs)
    out = []
    while any(c < len(log) for c, log in zip(cursors, logs, strict=True)):
        p = rng.choice([i for i, log in enumerate(logs) if cursors[i] < len(log)])
        out.append(logs[p][cursors[p]])
        cursors[p] += 1
    return out


def fold(db: Database, deliveries: list[list[StoredEvent]]) -> None:
    """Apply each delivered batch in its own transaction, like the runner, into empty views."""
    views = projections()
    with db.transaction() as conn:
        for projection in views:
            projection.clear(conn)
    for batch in deliveries:
        with db.transaction() as conn:
            for projection in views:
                projection.apply(conn, batch)
            health_cache.touch(conn, state_history.changed_since(batch))  # as the runner does


def views_of(db: Database, tz: str) -> dict[str, Any]:
    as_of = AsOf(to_micros(NOW), ZoneInfo(tz))
    with db.reading() as conn:
        found: dict[str, Any] = {
            a: view.read_view(conn, a, as_of) for a in ACCOUNTS
        }  # fmt: skip
        found["rolled-up"] = view.read_view(conn, ACCOUNTS[0], as_of, children=ACCOUNTS[1:])
        for table in (*OneVoiceView().tables.values(), *ReportFacts().tables.values()):
            found[table.name] = sorted(tuple(r) for r in conn.execute(select(table)))
        found["reports"] = reports_of(conn, as_of)
    return found


def reports_of(conn: Connection, as_of: AsOf) -> dict[str, Any]:
    """Every leaders' report over the story's last 120 days, by week."""
    start, end = to_micros(NOW - timedelta(days=120)), to_micros(NOW + timedelta(days=1))
    people = roster.load(conn, as_of)
    return {
        "roster": {k: vars(v) for k, v in people.items()},
        "leadership": leadership.read_report(conn, start, end, people),
        "voice": voice.read_voice(conn, voice.VoiceQuery(start, end)),
        "complaints": complaints.read_complaints(
            conn, complaints.ComplaintQuery(start, end, "owner"), as_of),
        "handoffs": handoffs.read_handoffs(conn, handoffs.HandoffQuery(start, end), as_of),
        "kpi": kpi.read_kpi(conn, kpi.KpiQuery(to_micros(NOW - timedelta(days=21)), end),
                            as_of, ("sales", "marketing", "support", "success", "leadership")),
        "silent": roster.silent_people(conn, as_of, 1000),
    }  # fmt: skip


def batches(rng: random.Random, order: list[StoredEvent]) -> list[list[StoredEvent]]:
    """Random batch sizes, and some batches delivered again later (at-least-once delivery)."""
    out: list[list[StoredEvent]] = []
    start = 0
    while start < len(order):
        size = rng.randrange(1, 30)
        out.append(order[start : start + size])
        start += size
        if out and rng.random() < 0.2:
            out.append(rng.choice(out))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_equals_replay_for_any_interleaving_and_duplicates(
    db: Database, seed: int
) -> None:
    logs = history(seed)
    replay_order = [e for log in logs for e in log]
    fold(db, [replay_order])
    expected = {tz: views_of(db, tz) for tz in ("UTC", "Asia/Seoul")}
    # The story must exercise the rules, or equality would prove little.
    seoul = expected["Asia/Seoul"]
    assert any(v and v["commitments"]["counts"]["open"] for a, v in seoul.items() if "_" not in a)
    assert seoul["one_voice_view_commitments"] and seoul["one_voice_view_tickets"]
    assert seoul["rolled-up"]["health"]["factors"]
    assert any(v and v["pressure"]["by_department"]["engineering"]["90d"]
               for a, v in seoul.items() if "_" not in a)  # participants took part  # fmt: skip
    views = [v for a, v in seoul.items() if "_" not in a and v]
    assert any(v["handoffs"]["counts"]["open"] for v in views)
    assert any(v["handoffs"]["counts"]["followed_up"] for v in views)
    assert any(v and v["support"]["recurrences_after_fix"]
               for a, v in seoul.items() if "_" not in a)  # fmt: skip
    assert any(v["needs"]["open"] for v in views)
    assert any(v["needs"]["addressed_90d"] for v in views)
    assert any(v["value"]["next_renewal"] for v in views)
    assert any(v["value"]["lifetime_value"] for v in views)
    reports = seoul["reports"]
    assert reports["roster"]["emp-choi"]["title"] == "Chairman"
    assert reports["roster"]["emp-choi"]["active"] is False  # the update of day -2 came last
    assert [g for g in reports["voice"]["groups"] if g["count"]]
    assert any(p["total"]["recurrences_after_fix"] for p in reports["complaints"]["periods"])
    assert reports["handoffs"]["total"]["signals"]
    figures = [g["figures"] for p in reports["kpi"]["periods"] for g in p["groups"]]
    assert any(f["accounts_touched"]["target"] == 5 for f in figures)
    assert any(f["accounts_touched"]["target"] == 3 for f in figures)  # in force earlier
    rng = random.Random(seed * 101)
    for _ in range(3):
        fold(db, batches(rng, interleave(rng, logs)))
        for tz in ("UTC", "Asia/Seoul"):
            got = views_of(db, tz)
            assert got == expected[tz], differences(expected[tz], got)[:20]


def test_the_facts_do_not_depend_on_delivery_order_at_all(db: Database) -> None:
    """Stronger than the log can deliver: even a full shuffle gives the same OneVoiceView and
    ReportFacts rows.

    (Without second copies of an event at another offset: for those, the first copy in the
    partition wins, which only the partition's own order decides.)
    """
    logs = history(seed=9)
    everything = list({e.event_id: e for log in logs for e in log}.values())
    fold(db, [everything])
    tables = (*OneVoiceView().tables.values(), *ReportFacts().tables.values())

    def rows() -> dict[str, list[tuple[object, ...]]]:
        with db.reading() as conn:
            return {x.name: sorted(tuple(r) for r in conn.execute(select(x))) for x in tables}

    expected = rows()
    rng = random.Random(5)
    for _ in range(3):
        shuffled = everything + rng.sample(everything, 20)
        rng.shuffle(shuffled)
        fold(db, batches(rng, shuffled))
        assert rows() == expected
