"""Migrations that move data, run on both databases with data in them."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, inspect, text

from services.bootstrap import ROOT
from services.core.adapters.sql import Database
from services.core.settings import Settings


def upgrade(db: Database, revision: str) -> None:
    config = Config(str(ROOT / "alembic.ini"))
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def downgrade(db: Database, revision: str) -> None:
    config = Config(str(ROOT / "alembic.ini"))
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


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


def kept_and_rebuilding(conn: Connection, kept: int, shadow: int) -> None:
    """A generation of the OneVoiceView kept for rollback and a running rebuild (r3) into a
    shadow, with its claim."""
    conn.execute(text("INSERT INTO projection_generations VALUES ('OneVoiceView', 1, :kept, 5)"),
                 {"kept": kept})  # fmt: skip
    conn.execute(text(
        "INSERT INTO rebuilds (id, generation, projections, state, accept_diff, keep_old,"
        " created_us, updated_us, progress) VALUES ('r3', :shadow, '[\"OneVoiceView\"]',"
        " 'running', false, false, 1, 1, '{}')"
    ), {"shadow": shadow})  # fmt: skip
    conn.execute(text("INSERT INTO rebuild_claims VALUES ('OneVoiceView', 'r3')"))


def test_0009_to_0012_keep_rows_and_retire_other_generations(settings: Settings) -> None:
    """Existing rows survive the new primary keys; shadow and kept generations of the changed
    read models are dropped and their open rebuilds failed (they have the old shape)."""
    db = Database(settings.resolved_database_url())
    try:
        upgrade(db, "0008")
        with db.transaction() as conn:
            conn.execute(TIMELINE_EVENT)
            conn.execute(text(
                "INSERT INTO one_voice_view_contacts (account_id, contact_key, event_id,"
                ' contact_pii, actor_id, actor, department, at_us, partition, "offset")'
                " VALUES ('acme', 'id:c-1', 'e1', '{}', 'u', '{}', 'sales', 1, 2, 7)"
            ))  # fmt: skip
            conn.execute(text(
                "INSERT INTO leadership_log_contacts (event_id, executive_id, executive,"
                ' account_id, at_us, partition, "offset", type, details)'
                " VALUES ('e1', 'ceo', '{}', 'acme', 1, 2, 7, 'sales.call_logged', '{}')"
            ))  # fmt: skip
            conn.execute(text(
                "INSERT INTO account_directory_touches (account_id, department, at_us,"
                ' partition, "offset", event_id, type, actor)'
                " VALUES ('acme', 'sales', 1, 2, 7, 'e1', 'sales.call_logged', '{}')"
            ))  # fmt: skip
            # A kept generation (2) and a running rebuild's shadow (3) of OneVoiceView.
            for generation in (2, 3):
                conn.execute(
                    text(f"CREATE TABLE one_voice_view__g{generation}_csat (account_id TEXT)")
                )
            kept_and_rebuilding(conn, kept=2, shadow=3)
        upgrade(db, "0012")
        with db.reading() as conn:
            assert conn.execute(text(
                "SELECT actor_id FROM one_voice_view_contacts")).all() == [("u",)]  # fmt: skip
            assert conn.execute(text(
                "SELECT role FROM leadership_log_contacts")).all() == [("actor",)]  # fmt: skip
            assert [bool(r[0]) for r in conn.execute(text(
                "SELECT by_actor FROM account_directory_touches"))] == [True]  # fmt: skip
            tables = set(inspect(conn).get_table_names())
            assert not {t for t in tables if "__g" in t}
            assert conn.execute(text("SELECT kept FROM projection_generations")).all() == [
                (None,)]  # fmt: skip
            state, error = conn.execute(text("SELECT state, error FROM rebuilds")).one()
            assert state == "failed" and "start the rebuild again" in error
            assert conn.execute(text("SELECT count(*) FROM rebuild_claims")).scalar_one() == 0
    finally:
        db.dispose()


def test_0013_marks_report_facts_not_built_where_events_were_projected(
    settings: Settings,
) -> None:
    """An install that has projected events gets ReportFacts marked not built (the rebuild
    worker backfills it from the log); a fresh one starts it live, from offset 0."""
    db = Database(settings.resolved_database_url())
    try:
        upgrade(db, "0012")
        with db.transaction() as conn:
            conn.execute(text(
                "INSERT INTO projection_checkpoints (projection, generation, topic, partition,"
                " next_offset) VALUES ('AccountTimeline', 1, 'onevoice.events', 0, 5)"
            ))  # fmt: skip
            conn.execute(TIMELINE_EVENT)
        upgrade(db, "head")
        with db.reading() as conn:
            assert conn.execute(text(
                "SELECT projection, active, kept FROM projection_generations")).all() == [
                ("ReportFacts", 0, None)]  # fmt: skip
            tables = set(inspect(conn).get_table_names())
            assert {f"report_facts_{t}" for t in ("employees", "people", "touches", "firsts",
                                                  "voice", "targets")} <= tables  # fmt: skip
            indexes = {i["name"] for i in inspect(conn).get_indexes("one_voice_view_tickets")}
            assert {"ix_one_voice_view_tickets_opened",
                    "ix_one_voice_view_tickets_resolved"} <= indexes  # fmt: skip
            assert conn.execute(text("SELECT count(*) FROM account_timeline_events")).scalar() == 1
    finally:
        db.dispose()


def test_0013_on_a_fresh_database_leaves_report_facts_live(settings: Settings) -> None:
    db = Database(settings.resolved_database_url())
    try:
        upgrade(db, "head")
        with db.reading() as conn:
            assert conn.execute(text("SELECT count(*) FROM projection_generations")).scalar() == 0
    finally:
        db.dispose()


def test_0013_downgrade_forgets_report_facts_and_indexes_every_generation(
    settings: Settings,
) -> None:
    """Up: the new time indexes go on the live OneVoiceView tables and on a shadow; down: no
    trace of ReportFacts is left for the older release to trip over."""
    db = Database(settings.resolved_database_url())
    try:
        upgrade(db, "0012")
        with db.transaction() as conn:  # a rebuild's shadow of the tickets, in the 0012 shape
            conn.execute(
                text(
                    "CREATE TABLE one_voice_view__g4_tickets"
                    " (account_id TEXT, opened_us BIGINT, resolved_us BIGINT)"
                )
            )
        upgrade(db, "0022")  # 0023 drops the OneVoiceView's other generations
        with db.reading() as conn:
            shadow = {i["name"] for i in inspect(conn).get_indexes("one_voice_view__g4_tickets")}
        assert shadow == {"ix_one_voice_view__g4_tickets_opened",
                          "ix_one_voice_view__g4_tickets_resolved"}  # fmt: skip
        with db.transaction() as conn:
            conn.execute(text("INSERT INTO projection_generations VALUES"
                              " ('ReportFacts', 0, NULL, NULL)"))  # fmt: skip
            conn.execute(text(
                "INSERT INTO dead_letters (projection, generation, topic, partition, \"offset\","
                " headers, timestamp_ms, reason, error_class, error_message, first_seen_us,"
                " last_seen_us, attempts, state) VALUES ('ReportFacts', 1, 't', 0, 1, '[]', 0,"
                " 'failed', 'E', 'e', 0, 0, 1, 'parked')"
            ))  # fmt: skip
            conn.execute(text(
                "INSERT INTO rebuilds (id, generation, projections, state, accept_diff, keep_old,"
                " created_us, updated_us, progress) VALUES ('r5', 5, '[\"ReportFacts\"]',"
                " 'running', false, false, 1, 1, '{}')"
            ))  # fmt: skip
            conn.execute(text("INSERT INTO rebuild_claims VALUES ('ReportFacts', 'r5')"))
            conn.execute(text("CREATE TABLE report_facts__g5_voice (event_id TEXT)"))
        downgrade(db, "0012")
        with db.reading() as conn:
            tables = set(inspect(conn).get_table_names())
            assert not {t for t in tables if t.startswith("report_facts")}
            assert {i["name"] for i in inspect(conn).get_indexes("one_voice_view__g4_tickets")} \
                == set()  # fmt: skip
            for table in ("projection_generations", "dead_letters", "rebuild_claims"):
                assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 0, table
            state, error = conn.execute(text("SELECT state, error FROM rebuilds")).one()
            assert state == "failed" and "0013" in error
    finally:
        db.dispose()


def test_0014_indexes_every_generation_by_time_and_downgrade_drops_them(
    settings: Settings,
) -> None:
    """The time indexes go on the live tables and on a rebuild's shadows; down removes them."""
    db = Database(settings.resolved_database_url())
    new = {"account_timeline__g3_entries": "ix_account_timeline__g3_entries_time",
           "one_voice_view__g3_contacts": "ix_one_voice_view__g3_contacts_time",
           "account_timeline_entries": "ix_account_timeline_entries_time",
           "one_voice_view_contacts": "ix_one_voice_view_contacts_time"}  # fmt: skip
    try:
        upgrade(db, "0013")
        with db.transaction() as conn:  # a rebuild's shadows, in the 0013 shape
            conn.execute(text("CREATE TABLE account_timeline__g3_entries"
                              " (account_id TEXT, occurred_us BIGINT)"))  # fmt: skip
            conn.execute(text("CREATE TABLE one_voice_view__g3_contacts"
                              " (account_id TEXT, at_us BIGINT)"))  # fmt: skip
        upgrade(db, "0014")
        with db.reading() as conn:
            for table, index in new.items():
                assert index in {i["name"] for i in inspect(conn).get_indexes(table)}, table
        downgrade(db, "0013")
        with db.reading() as conn:
            for table, index in new.items():
                assert index not in {i["name"] for i in inspect(conn).get_indexes(table)}, table
    finally:
        db.dispose()


def test_0015_gives_every_existing_account_a_stale_health_row(settings: Settings) -> None:
    """An install with history upgrades to a cache that answers for nothing yet: reads
    evaluate every account as before until the refresher has been round."""
    db = Database(settings.resolved_database_url())
    insert = text("INSERT INTO account_directory_accounts (account_id, registered, name_key,"
                  " owners) VALUES (:a, :registered, :k, '{}')")  # fmt: skip
    try:
        upgrade(db, "0014")
        with db.transaction() as conn:
            conn.execute(insert, [{"a": "hanbit", "k": "hanbit", "registered": False},
                                  {"a": "고객-2", "k": "고객-2", "registered": True}])  # fmt: skip
        upgrade(db, "0015")
        with db.reading() as conn:
            rows = conn.execute(text("SELECT account_id, stamp, valid_until_us, score"
                                     " FROM account_health_cache")).all()  # fmt: skip
        assert sorted(tuple(r) for r in rows) == [("hanbit", 0, 0, None), ("고객-2", 0, 0, None)]
        downgrade(db, "0014")
        with db.reading() as conn:
            assert "account_health_cache" not in inspect(conn).get_table_names()
    finally:
        db.dispose()


def test_0020_totals_the_cached_items_and_keeps_them_with_every_write(
    settings: Settings,
) -> None:
    """Rows cached before the upgrade are totalled by the migration; from then on the
    triggers follow inserts, updates and deletes (only those that move items); downgrading
    removes the totals and their triggers (0021's index too)."""
    db = Database(settings.resolved_database_url())
    row = text("INSERT INTO account_health_cache (account_id, policy, cov_neglected, cov_overdue,"
               " cov_overdue_n) VALUES (:a, :p, :neglected, :overdue, :n)")  # fmt: skip
    totals = text("SELECT policy, neglected, overdue_commitments FROM account_health_totals"
                  " WHERE neglected <> 0 OR overdue_commitments <> 0 ORDER BY policy")  # fmt: skip
    try:
        upgrade(db, "0019")
        with db.transaction() as conn:
            conn.execute(row, [
                {"a": "hanbit", "p": "old", "neglected": "2026-01-01", "overdue": None, "n": None},
                {"a": "고객-2", "p": "old", "neglected": "2026-02-01", "overdue": "x", "n": 3},
                {"a": "acme", "p": "", "neglected": None, "overdue": None, "n": None},
            ])  # fmt: skip
        upgrade(db, "head")
        with db.reading() as conn:
            assert conn.execute(totals).all() == [("old", 2, 3)]
        with db.transaction() as conn:
            conn.execute(text("UPDATE account_health_cache SET policy = 'new', cov_overdue_n = 5"
                              " WHERE account_id = '고객-2'"))  # fmt: skip
            conn.execute(text("UPDATE account_health_cache SET stamp = stamp + 1"))  # no items
            conn.execute(text("DELETE FROM account_health_cache WHERE account_id = 'hanbit'"))
            conn.execute(row, {"a": "b", "p": "new", "neglected": None, "overdue": "y", "n": 1})
        with db.reading() as conn:
            assert conn.execute(totals).all() == [("new", 1, 6)]
            # rows without items never wrote a total
            assert not conn.execute(text("SELECT 1 FROM account_health_totals"
                                         " WHERE policy = ''")).all()  # fmt: skip
        downgrade(db, "0019")
        with db.transaction() as conn:
            assert "account_health_totals" not in inspect(conn).get_table_names()
            conn.execute(text("UPDATE account_health_cache SET policy = 'x'"))  # no trigger left
    finally:
        db.dispose()


def test_0023_fills_each_signals_first_follow_up_from_what_the_read_models_hold(
    settings: Settings,
) -> None:
    """Follow-ups from the timeline's sales and success touches (actor or participant; not a
    registration, not one the OneVoiceView parked) and the OneVoiceView's contacts (of events on
    the timeline); each signal's first one at or after it; the OneVoiceView's checkpoint moved
    back to where the timeline stopped applying (its checkpoint or a record it parked); its
    other generations retired; down removes it all."""
    db = Database(settings.resolved_database_url())
    entry = ("INSERT INTO account_timeline_entries (account_id, event_id, occurred_us, partition,"
             ' "offset", type, department) VALUES (:a, :e, :at, 0, :o, :type, :d)')  # fmt: skip
    try:
        upgrade(db, "0022")
        with db.transaction() as conn:
            for a, e, at, o, type_, d in (
                ("acme", "sig", 100, 1, "marketing.event_attended", "marketing"),
                ("acme", "early", 90, 0, "sales.call_logged", "sales"),  # before the signal
                ("acme", "mkt", 110, 2, "marketing.campaign_sent", "marketing"),
                ("acme", "joined", 120, 3, "support.ticket_opened", "support"),  # a participant
                ("acme", "call", 130, 4, "sales.call_logged", "sales"),
                ("beta", "reg", 50, 5, "account.registered", "sales"),  # not a touch
                ("acme", "parked", 105, 6, "sales.call_logged", "sales"),  # the view parked it
            ):
                bound = {"a": a, "e": e, "at": at, "o": o, "type": type_, "d": d}
                conn.execute(text(entry), bound)
                conn.execute(text(
                    "INSERT INTO account_timeline_events (event_id, account_id, occurred_us,"
                    ' partition, "offset", type, department, body, search_text, actor_id)'
                    " VALUES (:e, :a, :at, 0, :o, :type, :d, '{}', '', 'u')"
                ), bound)  # fmt: skip
            for projection, partition, offset in (("OneVoiceView", 0, 6),
                                                  ("AccountTimeline", 1, 2)):  # fmt: skip
                conn.execute(text(
                    'INSERT INTO dead_letters (projection, generation, topic, partition, "offset",'
                    " headers, timestamp_ms, reason, error_class, error_message, first_seen_us,"
                    " last_seen_us, attempts, state) VALUES (:p, 0, 't', :n, :o, '[]', 0,"
                    " 'failed', 'E', 'e', 0, 0, 1, 'parked')"
                ), {"p": projection, "n": partition, "o": offset})  # fmt: skip
            conn.execute(text("INSERT INTO account_timeline_participants VALUES"
                              " ('joined', 'kim', 'success', '{}')"))  # fmt: skip
            for account, key, event, at, o, department in (
                ("acme", "id:c-1", "call", 130, 4, "sales"),
                ("beta", "id:c-2", "reg", 50, 5, "sales"),
                ("acme", "id:c-9", "ghost", 110, 7, "sales"),  # not on the timeline
            ):
                conn.execute(
                    text(
                        "INSERT INTO one_voice_view_contacts (account_id, contact_key, event_id,"
                        ' contact_pii, actor_id, actor, department, at_us, partition, "offset")'
                        " VALUES (:a, :k, :e, '{}', 'u', '{}', :d, :at, 0, :o)"
                    ),
                    {"a": account, "k": key, "e": event, "d": department, "at": at, "o": o},
                )
            for account, key, at in (
                ("acme", "", 100),
                ("acme", "id:c-1", 100),
                ("acme", "id:c-9", 100),
                ("beta", "id:c-2", 40),
            ):
                conn.execute(text(
                    "INSERT INTO one_voice_view_signals (account_id, event_id, contact_key,"
                    ' type, actor, at_us, partition, "offset") VALUES'
                    " (:a, 'sig', :k, 'marketing.event_attended', '{}', :at, 0, 1)"
                ), {"a": account, "k": key, "at": at})  # fmt: skip
            for projection, partition, offset in (
                ("AccountTimeline", 0, 6),
                ("OneVoiceView", 0, 9),  # ahead: moved back
                ("AccountTimeline", 1, 4),
                ("OneVoiceView", 1, 3),  # the timeline parked offset 2: from there
                ("OneVoiceView", 2, 2),  # the timeline has none: from the start
            ):
                conn.execute(text(
                    "INSERT INTO projection_checkpoints (projection, generation, topic,"
                    " partition, next_offset) VALUES (:p, 0, 't', :n, :o)"
                ), {"p": projection, "n": partition, "o": offset})  # fmt: skip
            conn.execute(text("CREATE TABLE one_voice_view__g3_signals (account_id TEXT)"))
            kept_and_rebuilding(conn, kept=2, shadow=3)
        upgrade(db, "0023")
        with db.reading() as conn:
            assert sorted(tuple(r) for r in conn.execute(text(
                "SELECT account_id, contact_key, event_id, at_us FROM one_voice_view_follow_ups"
            ))) == [("acme", "", "call", 130), ("acme", "", "early", 90),
                    ("acme", "", "joined", 120), ("acme", "id:c-1", "call", 130)]  # fmt: skip
            assert sorted(tuple(r) for r in conn.execute(text(
                "SELECT account_id, contact_key, followed_us, followed_event_id"
                " FROM one_voice_view_signals"
            ))) == [("acme", "", 120, "joined"), ("acme", "id:c-1", 130, "call"),
                    ("acme", "id:c-9", None, None), ("beta", "id:c-2", None, None)]  # fmt: skip
            assert sorted(tuple(r) for r in conn.execute(text(
                "SELECT projection, partition, next_offset FROM projection_checkpoints"
            ))) == [("AccountTimeline", 0, 6), ("AccountTimeline", 1, 4), ("OneVoiceView", 0, 6),
                    ("OneVoiceView", 1, 2), ("OneVoiceView", 2, 0)]  # fmt: skip
            assert not {t for t in inspect(conn).get_table_names() if "__g" in t}
            assert conn.execute(text("SELECT kept FROM projection_generations")).all() == [
                (None,)]  # fmt: skip
            state, error = conn.execute(text("SELECT state, error FROM rebuilds")).one()
            assert state == "failed" and "0023" in error
            assert conn.execute(text("SELECT count(*) FROM rebuild_claims")).scalar_one() == 0
        downgrade(db, "0022")
        with db.reading() as conn:
            assert "one_voice_view_follow_ups" not in inspect(conn).get_table_names()
            assert "followed_us" not in {
                c["name"] for c in inspect(conn).get_columns("one_voice_view_signals")
            }
            assert conn.execute(text("SELECT count(*) FROM one_voice_view_signals")).scalar() == 4
    finally:
        db.dispose()
