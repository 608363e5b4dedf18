"""Migrations that move data, run on both databases with data in them."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from services.bootstrap import ROOT
from services.core.adapters.sql import Database
from services.core.settings import Settings


def upgrade(db: Database, revision: str) -> None:
    config = Config(str(ROOT / "alembic.ini"))
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


TIMELINE_EVENT = text(
    "INSERT INTO account_timeline_events (event_id, account_id, occurred_us, partition,"
    ' "offset", type, department, body, search_text, actor_id)'
    " VALUES ('e1', 'acme', 1, 2, 7, 'sales.call_logged', 'sales', '{}', '', 'u')"
)
"""Event e1 at partition 2, offset 7, on the timeline as revision 0006 stores it."""


def test_0007_registers_the_copies_the_timeline_kept_when_it_had_one_topic(
    settings: Settings,
) -> None:
    db = Database(settings.resolved_database_url())
    try:
        upgrade(db, "0006")
        with db.transaction() as conn:
            conn.execute(TIMELINE_EVENT)
            conn.execute(text(
                "INSERT INTO projection_checkpoints VALUES ('AccountTimeline', 0, 'onevoice', 2, 8)"
            ))  # fmt: skip
            conn.execute(text(
                "INSERT INTO one_voice_view_tickets (account_id, ticket_id, category_key)"
                " VALUES ('acme', 'T-1', 'ss')"
            ))  # fmt: skip
        upgrade(db, "head")
        with db.reading() as conn:
            copies = conn.execute(text("SELECT * FROM event_first_copies")).all()
            assert [tuple(r) for r in copies] == [("onevoice", "e1", 2, 7)]
            assert conn.execute(text("SELECT category_key FROM one_voice_view_tickets")).all() \
                == [("ss",)]  # fmt: skip
            assert conn.execute(text("SELECT count(*) FROM dead_letters")).scalar_one() == 0
    finally:
        db.dispose()


def test_0007_registers_nothing_when_the_timeline_had_several_topics(settings: Settings) -> None:
    db = Database(settings.resolved_database_url())
    try:
        upgrade(db, "0006")
        with db.transaction() as conn:
            conn.execute(TIMELINE_EVENT)
            for topic in ("a", "b"):
                conn.execute(text(
                    "INSERT INTO projection_checkpoints VALUES ('AccountTimeline', 0, :t, 2, 8)"
                ), {"t": topic})  # fmt: skip
        upgrade(db, "head")
        with db.reading() as conn:
            assert conn.execute(text("SELECT count(*) FROM event_first_copies")).scalar_one() == 0
    finally:
        db.dispose()
