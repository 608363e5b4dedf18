"""The handoff report and the KPIs find each signal's first follow-up in the database (one
ordered index probe per signal); the one-voice view finds it in Python over the candidates it
loads (``view_facts.handoffs_since``). Both must name the same follow-up for every signal, for
random stories (every event kind, related accounts, participants, contacts named or not, events
dated in the future, second copies) and clocks, on both backends (the ``db`` fixture)."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from services.core.adapters.sql import Database
from services.core.readmodels import view_facts
from services.core.readmodels.reports import handoffs
from services.core.readmodels.timeline import to_micros
from services.core.view_rules import AsOf
from tests.integration.test_view_fold import NOW, fold, history

CLOCKS = (timedelta(0), timedelta(days=-30), timedelta(hours=-2), timedelta(days=10))


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_the_database_finds_the_follow_up_the_view_finds(db: Database, seed: int) -> None:
    fold(db, history(seed, size=400))
    followed = left = 0
    for shift in CLOCKS:
        as_of = AsOf(to_micros(NOW + shift), ZoneInfo("Asia/Seoul"))
        since = to_micros(NOW + shift - timedelta(days=90))
        with db.reading() as conn:
            by_view = sorted(
                (a, h.event_id, h.contact_key, h.type, h.at_us, h.campaign_id, h.detail,
                 h.contact, h.followed_us, h.followed_event_id)
                for a, h in view_facts.handoffs_since(conn, since, as_of)
            )  # fmt: skip
            by_database = sorted(
                (s.account_id, s.event_id, s.contact_key, s.type, s.at_us, s.campaign_id,
                 s.detail, s.contact, s.followed_us, s.followed_event_id)
                for s in handoffs.signals_between(conn, since, as_of.now_us + 1, as_of)
            )  # fmt: skip
        assert by_database == by_view, shift
        followed += sum(1 for h in by_view if h[-1] is not None)
        left += sum(1 for h in by_view if h[-1] is None)
    assert followed > 10 and left > 2, (followed, left)
