"""The OneVoiceView keeps each signal's first follow-up as events arrive; the handoff report,
the KPIs and the one-voice view read it. All must name the follow-up the rule names when applied
to the log itself — the first sales or success touch (by the actor or a participant; not a
registration) of the signal's account, or of its contact when it named one, at or after the
signal, in log order on ties, up to now — for random stories (every event kind, related
accounts, participants, contacts named or not, events dated in the future, second copies) and
clocks, on both backends (the ``db`` fixture). Order-independence of the kept follow-ups is
proven with the rest of the view by ``test_view_fold`` (incremental = replayed, any
interleaving)."""

from __future__ import annotations

import threading
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from services.bootstrap import migrate
from services.core.adapters.sql import Database
from services.core.codec import StoredEvent
from services.core.events import parse_event
from services.core.readmodels import onevoice, view_facts
from services.core.readmodels.reports import handoffs
from services.core.readmodels.timeline import to_micros
from services.core.view_rules import FOLLOW_UP_DEPARTMENTS, AsOf
from services.projections.base import customer_events
from services.projections.onevoice import OneVoiceView, contact_key
from tests.integration.test_view_fold import ACCOUNTS, NOW, fold, history
from tests.samples import make_event

CLOCKS = (timedelta(0), timedelta(days=-30), timedelta(hours=-2), timedelta(days=10))
SIGNALS = ("marketing.event_attended", "marketing.content_engaged", "marketing.campaign_responded")

Found = dict[tuple[str, str, str], tuple[int, tuple[int, str] | None]]


def by_the_rule(logs: list[list[StoredEvent]], since_us: int, now_us: int) -> Found:
    """(account, signal event, contact key) -> (signal time, first follow-up (time, event) up
    to now), straight from the log: the first copy of an event counts."""
    first_copies: dict[str, StoredEvent] = {}
    for log in logs:
        for stored in customer_events(log):
            first_copies.setdefault(stored.event_id, stored)
    candidates: dict[tuple[str, str], list[tuple[int, int, int, str]]] = {}
    signals: list[tuple[str, str, str, int]] = []
    for stored in first_copies.values():
        event, at_us = stored.event, to_micros(stored.event.occurred_at)
        keys = [k for k in dict.fromkeys(contact_key(c) for c in event.contacts) if k]
        if stored.type in SIGNALS:
            signals += [(event.account_id, stored.event_id, k, at_us) for k in keys or [""]]
        if stored.type == "account.registered" or not any(
                p.department in FOLLOW_UP_DEPARTMENTS for p in event.people()):  # fmt: skip
            continue
        for account_id in dict.fromkeys((event.account_id, *event.related_account_ids)):
            for key in ("", *keys):
                candidates.setdefault((account_id, key), []).append(
                    (at_us, stored.partition, stored.offset, stored.event_id))  # fmt: skip
    found: Found = {}
    for account_id, event_id, key, at_us in signals:
        if not since_us <= at_us <= now_us:
            continue
        later = sorted(c for c in candidates.get((account_id, key), []) if c[0] >= at_us)
        first = later[0] if later and later[0][0] <= now_us else None
        found[(account_id, event_id, key)] = (at_us, None if first is None else
                                              (first[0], first[3]))  # fmt: skip
    return found


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_the_reports_and_the_view_name_the_follow_up_the_rule_names(
    db: Database, seed: int
) -> None:
    logs = history(seed, size=400)
    fold(db, logs)
    followed = left = 0
    for shift in CLOCKS:
        as_of = AsOf(to_micros(NOW + shift), ZoneInfo("Asia/Seoul"))
        since = to_micros(NOW + shift - timedelta(days=90))
        expected = by_the_rule(logs, since, as_of.now_us)
        with db.reading() as conn:
            by_view: Found = {
                (a, h.event_id, h.contact_key): (h.at_us, None if h.followed_us is None
                                                 else (h.followed_us, h.followed_event_id))
                for a, h in view_facts.handoffs_of(conn, ACCOUNTS, as_of)
            }  # fmt: skip
            by_report: Found = {
                (s.account_id, s.event_id, s.contact_key): (s.at_us, None if s.followed_us
                                                            is None else (s.followed_us,
                                                                          s.followed_event_id))
                for s in handoffs.signals_between(conn, since, as_of.now_us + 1, as_of)
            }  # fmt: skip
        assert by_report == expected, shift
        assert by_view == expected, shift
        followed += sum(1 for v in expected.values() if v[1] is not None)
        left += sum(1 for v in expected.values() if v[1] is None)
    assert followed > 10 and left > 2, (followed, left)


def test_a_signal_and_its_follow_up_applied_at_once_find_each_other(pg_url: str) -> None:
    """PostgreSQL only (SQLite runs one writer at a time): two projector processes apply a
    signal of acme (acme's partition) and a touch of beta naming acme as a related account
    (beta's partition) at the same time. Each looks its signals' follow-ups up in READ
    COMMITTED statements, so without a lock each would miss the other's row and the signal stay
    unanswered; the second waits for the first's accounts instead."""
    db = Database(pg_url)
    migrate(db)

    def stored(partition: int, **body: object) -> StoredEvent:
        event = parse_event(make_event(**body))
        return StoredEvent(event, str(event.event_id), partition, 0, NOW)

    signal = stored(0, event_type="marketing.event_attended", account_id="acme", contacts=[],
                    occurred_at=NOW.isoformat())  # fmt: skip
    touch = stored(1, event_type="sales.meeting_held", account_id="beta", contacts=[],
                   related_account_ids=["acme"],
                   occurred_at=(NOW + timedelta(hours=1)).isoformat())  # fmt: skip
    applied = threading.Event()

    def other() -> None:
        with db.transaction() as conn:
            OneVoiceView().apply(conn, [touch])
        applied.set()

    try:
        with db.transaction() as conn:
            OneVoiceView().apply(conn, [signal])
            worker = threading.Thread(target=other)
            worker.start()
            assert not applied.wait(1.0), "the touch did not wait for the signal's account"
        worker.join(30)
        assert applied.is_set()
        s = onevoice.TABLES.signals.c
        with db.reading() as conn:
            assert conn.execute(select(s.account_id, s.followed_event_id)).all() == [
                ("acme", touch.event_id)]  # fmt: skip
    finally:
        db.dispose()


def test_a_second_copy_of_a_follow_up_does_not_hide_an_earlier_one(db: Database) -> None:
    """``apply`` given a second copy of an event id at another position (the runner passes
    first copies only, per topic; a copy mirrored from another topic is not one of them): the
    stored follow-up keeps the first copy's position, so a new touch at the same time that
    comes before it in the log is the signal's first follow-up, not the copy."""

    def stored(offset: int, event_type: str, at: timedelta, event_id: str) -> StoredEvent:
        body = make_event(event_type=event_type, account_id="acme", contacts=[],
                          occurred_at=(NOW + at).isoformat(), event_id=event_id)  # fmt: skip
        event = parse_event(body)
        return StoredEvent(event, event_id, 0, offset, NOW)

    signal = stored(
        1, "marketing.event_attended", timedelta(0), "00000000-0000-4000-8000-000000000001"
    )
    first = stored(
        900, "sales.meeting_held", timedelta(hours=1), "00000000-0000-4000-8000-000000000002"
    )
    copy = stored(10, "sales.meeting_held", timedelta(hours=1), first.event_id)
    touch = stored(
        20, "sales.call_logged", timedelta(hours=1), "00000000-0000-4000-8000-000000000003"
    )
    s = onevoice.TABLES.signals.c
    for batch in ([signal], [first], [copy, touch]):
        with db.transaction() as conn:
            OneVoiceView().apply(conn, batch)
    with db.reading() as conn:
        assert conn.execute(select(s.followed_event_id)).scalars().all() == [touch.event_id]
