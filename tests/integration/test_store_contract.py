"""Contracts of the SQL store: receipts, checkpoints, transactions and the timeline read model.

``StoreContract`` runs against a migrated database; each backend subclasses it with a ``db``
fixture (SQLite here; PostgreSQL joins with the Kafka/PostgreSQL issue).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import bindparam, func, select, text
from sqlalchemy.exc import DBAPIError

from services.bootstrap import migrate
from services.core.adapters.sql import Database, insert_ignore, read_together
from services.core.adapters.sql_receipts import SqlReceiptStore
from services.core.codec import StoredEvent
from services.core.events import parse_event
from services.core.ports import Receipt, ReceiptStore, StoreUnavailable
from services.core.readmodels import (  # noqa: F401 - all tables
    accounts,
    checkpoints,
    copies,
    leadership,
    timeline,
)
from services.core.readmodels.schema import CHECKPOINTS
from services.projections.timeline import AccountTimeline
from tests.fakes import InMemoryReceipts
from tests.samples import make_event


def stored(offset: int, partition: int = 0, **overrides: object) -> StoredEvent:
    event = parse_event(make_event(**overrides))  # type: ignore[arg-type]
    return StoredEvent(event, str(event.event_id), partition, offset, datetime.now(UTC))


class ReceiptStoreContract:
    @pytest.fixture
    def receipts(self) -> ReceiptStore:
        raise NotImplementedError

    def test_first_claim_wins_and_later_ones_see_it(self, receipts: ReceiptStore) -> None:
        assert receipts.claim({"a": "d1", "b": "d2"}) == {}
        assert receipts.claim({"a": "other", "c": "d3"}) == {"a": Receipt("a", "d1", None)}

    def test_confirm_records_the_position(self, receipts: ReceiptStore) -> None:
        receipts.claim({"a": "d1"})
        receipts.confirm({"a": (3, 41)})
        assert receipts.claim({"a": "d1"}) == {"a": Receipt("a", "d1", (3, 41))}

    def test_release_forgets_the_claim(self, receipts: ReceiptStore) -> None:
        receipts.claim({"a": "d1"})
        receipts.release(["a"])
        assert receipts.claim({"a": "d2"}) == {}
        assert receipts.claim({"a": "x"}) == {"a": Receipt("a", "d2", None)}

    def test_empty_calls_are_harmless(self, receipts: ReceiptStore) -> None:
        assert receipts.claim({}) == {}
        receipts.confirm({})
        receipts.release([])


class TestInMemoryReceipts(ReceiptStoreContract):
    @pytest.fixture
    def receipts(self) -> ReceiptStore:
        return InMemoryReceipts()


class StoreContract(ReceiptStoreContract):
    @pytest.fixture
    def db(self) -> Iterator[Database]:
        raise NotImplementedError

    @pytest.fixture
    def receipts(self, db: Database) -> ReceiptStore:
        return SqlReceiptStore(db)

    def test_migrations_match_the_table_definitions(self, db: Database) -> None:
        """Alembic's schema and the code's tables must not drift apart."""
        from alembic.autogenerate import compare_metadata
        from alembic.migration import MigrationContext

        from services.core.readmodels.schema import METADATA

        with db.reading() as conn:
            assert compare_metadata(MigrationContext.configure(conn), METADATA) == []

    def test_concurrent_claims_of_one_id_have_one_winner(self, db: Database) -> None:
        store = SqlReceiptStore(db)
        winners: list[str] = []
        barrier = threading.Barrier(4)

        def claim(digest: str) -> None:
            barrier.wait()
            if store.claim({"same-id": digest}) == {}:
                winners.append(digest)

        threads = [threading.Thread(target=claim, args=(f"d{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(winners) == 1

    def test_a_failed_transaction_writes_nothing(self, db: Database) -> None:
        with pytest.raises(RuntimeError), db.transaction() as conn:
            checkpoints.advance(conn, "P", 0, "t", {0: 5})
            raise RuntimeError("boom")
        with db.reading() as conn:
            assert checkpoints.load(conn, "P", 0, "t") == {}

    def test_checkpoints_are_per_projection_generation_topic(self, db: Database) -> None:
        with db.transaction() as conn:
            checkpoints.advance(conn, "A", 0, "t", {0: 5, 1: 7})
            checkpoints.advance(conn, "A", 1, "t", {0: 2})
            checkpoints.advance(conn, "B", 0, "t", {0: 9})
        with db.transaction() as conn:
            checkpoints.advance(conn, "A", 0, "t", {1: 8})
        with db.reading() as conn:
            assert checkpoints.load(conn, "A", 0, "t") == {0: 5, 1: 8}
            assert checkpoints.load(conn, "A", 1, "t") == {0: 2}
            assert checkpoints.load(conn, "B", 0, "t", lock=False) == {0: 9}
            assert checkpoints.load(conn, "A", 0, "other") == {}
        with db.transaction() as conn:
            assert checkpoints.load(conn, "A", 0, "t", lock=True, partitions=[1]) == {1: 8}
            checkpoints.reset(conn, ["A"], 0)
        with db.reading() as conn:
            assert checkpoints.load(conn, "A", 0, "t") == {0: 0, 1: 0}
            assert checkpoints.load(conn, "A", 1, "t") == {0: 2}
            assert checkpoints.load(conn, "B", 0, "t") == {0: 9}

    def test_a_bumped_fence_refuses_runners_that_resumed_before(self, db: Database) -> None:
        with db.transaction() as conn:
            resumed = checkpoints.epochs(conn, ["A", "B"], 0)
            assert resumed == {"A": 0, "B": 0}
            checkpoints.fence(conn, resumed, 0)  # nothing moved: no error
            checkpoints.bump(conn, ["A"], 0)
            checkpoints.bump(conn, ["A"], 0)
            checkpoints.bump(conn, ["B"], 1)
        with db.transaction() as conn:
            assert checkpoints.epochs(conn, ["A", "B"], 0) == {"A": 2, "B": 0}
            with pytest.raises(checkpoints.Fenced, match="A reset by a replay"):
                checkpoints.fence(conn, resumed, 0)
            checkpoints.fence(conn, {"A": 2, "B": 0}, 0)

    def test_the_first_copy_of_an_event_id_is_registered_once(self, db: Database) -> None:
        with db.transaction() as conn:
            # In one call: the first position given for an id wins.
            assert copies.first_copies(conn, "t", [("e1", 0, 3), ("e2", 1, 4), ("e1", 0, 9)]) \
                == {(0, 3), (1, 4)}  # fmt: skip
        with db.transaction() as conn:
            # Later calls: re-deliveries of the first copy still win, other copies never do.
            assert copies.first_copies(conn, "t", [("e1", 0, 3), ("e1", 2, 1), ("e3", 0, 10)]) \
                == {(0, 3), (0, 10)}  # fmt: skip
            assert copies.first_copies(conn, "other", [("e1", 2, 1)]) == {(2, 1)}
            copies.forget(conn, "t")
            assert copies.first_copies(conn, "other", [("e1", 0, 5)]) == set()  # kept
            assert copies.first_copies(conn, "t", [("e1", 2, 1)]) == {(2, 1)}
            copies.forget(conn, "other")
            copies.forget(conn, "t")  # the only topic left: one TRUNCATE on PostgreSQL
            assert copies.first_copies(conn, "t", [("e1", 0, 7)]) == {(0, 7)}
            assert copies.first_copies(conn, "other", [("e1", 0, 5)]) == {(0, 5)}

    def test_insert_ignore_skips_existing_keys(self, db: Database) -> None:
        row = {"projection": "P", "generation": 0, "topic": "t", "partition": 0, "next_offset": 1}
        with db.transaction() as conn:
            insert_ignore(conn, CHECKPOINTS, [row])
            insert_ignore(conn, CHECKPOINTS, [{**row, "next_offset": 99}, {**row, "partition": 1}])
        with db.reading() as conn:
            assert checkpoints.load(conn, "P", 0, "t") == {0: 1, 1: 1}

    def test_read_together_answers_each_statement_in_order_inside_the_transaction(
        self, db: Database
    ) -> None:
        """One round trip on PostgreSQL (pipeline), one statement after another on SQLite: the
        same rows either way, the transaction's own writes included; errors as SQLAlchemy's."""
        c = CHECKPOINTS.c
        rows = [{"projection": p, "generation": 0, "topic": "t", "partition": n,
                 "next_offset": 10 * n + len(p)}
                for p in ("A", "BB") for n in range(3)]  # fmt: skip
        by_names = (
            select(c.projection, c.partition, c.next_offset.label("offset"))
            .where(c.projection.in_(bindparam("names", expanding=True)),
                   c.next_offset >= bindparam("least"))
            .order_by(c.projection, c.partition)
        )  # fmt: skip
        none = select(c.partition).where(c.topic == bindparam("topic"))
        with db.transaction() as conn:
            insert_ignore(conn, CHECKPOINTS, rows)  # not committed yet: the same transaction
            first, empty, second = read_together(conn, [
                (by_names, {"names": ["A", "BB", "C"], "least": 1, "topic": "x"}),
                (none, {"topic": "nowhere"}),
                (by_names, {"names": ["BB"], "least": 12}),
            ])  # fmt: skip
            expected = [("A", 0, 1), ("A", 1, 11), ("A", 2, 21), ("BB", 0, 2), ("BB", 1, 12),
                        ("BB", 2, 22)]  # fmt: skip
            assert [tuple(r) for r in first] == expected
            assert [(r.projection, r.partition, r.offset) for r in second] == [
                ("BB", 1, 12), ("BB", 2, 22)]  # fmt: skip
            assert empty == []
            assert read_together(conn, []) == []
        with pytest.raises(DBAPIError), db.reading() as conn:
            read_together(conn, [(none, {"topic": "t"}),
                                 (select(func.no_such_function(c.partition)), {})])  # fmt: skip
        # Columns that could not be a row's attributes on every backend: refused up front.
        for columns in ((c.partition.label("_p"),), (c.partition.label("from"),)):
            with pytest.raises(ValueError, match="plain column names"), db.reading() as conn:
                read_together(conn, [(select(*columns), {})])

    def test_timeline_applies_idempotently(self, db: Database) -> None:
        projection = AccountTimeline()
        first = stored(0, account_id="acme", related_account_ids=["acme-parent"])
        copy = StoredEvent(first.event, first.event_id, 2, 9, first.recorded_at)
        with db.transaction() as conn:
            projection.apply(conn, [first, copy])
        with db.transaction() as conn:
            projection.apply(conn, [copy])
        with db.reading() as conn:
            for account in ("acme", "acme-parent"):
                page = timeline.read_page(conn, timeline.TimelineQuery(account_id=account))
                assert [i["position"] for i in page.items] == [{"partition": 0, "offset": 0}]
            count = conn.execute(select(func.count()).select_from(timeline.TABLES.events))
            assert count.scalar() == 1

    def test_timeline_orders_by_time_then_position_and_pages(self, db: Database) -> None:
        times = ["2026-01-03T00:00:00Z", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z",
                 "2026-01-02T00:00:00Z", "2026-01-02T00:00:00+09:00"]  # fmt: skip
        events = [stored(i, partition=i % 2, account_id="acme", occurred_at=t)
                  for i, t in enumerate(times)]  # fmt: skip
        with db.transaction() as conn:
            AccountTimeline().apply(conn, events)
        expected = [events[i].event_id for i in (1, 4, 2, 3, 0)]
        with db.reading() as conn:
            seen, cursor = [], None
            while True:
                page = timeline.read_page(
                    conn, timeline.TimelineQuery(account_id="acme", order="asc", limit=2,
                                                 after=cursor and timeline.decode_cursor(cursor))
                )  # fmt: skip
                seen += [i["event_id"] for i in page.items]
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert seen == expected
            desc = timeline.read_page(conn, timeline.TimelineQuery(account_id="acme"))
            assert [i["event_id"] for i in desc.items] == expected[::-1]
            assert timeline.account_known(conn, "acme")
            assert not timeline.account_known(conn, "nobody")
            assert timeline.read_event(conn, expected[0])["event_id"] == expected[0]  # type: ignore[index]

    def test_timeline_search_is_case_insensitive_and_literal(self, db: Database) -> None:
        hit = stored(0, account_id="a", summary="Renewal with ACME — 가격 인상 우려 100%")
        miss = stored(1, account_id="a", summary="unrelated 1000")
        with db.transaction() as conn:
            AccountTimeline().apply(conn, [hit, miss])

        def search(q: str) -> list[str]:
            with db.reading() as conn:
                page = timeline.read_page(conn, timeline.TimelineQuery(account_id="a", q=q))
            return [i["event_id"] for i in page.items]

        assert search("acme") == [hit.event_id]
        assert search("인상") == [hit.event_id]
        assert search("0%") == [hit.event_id]
        assert search("_") == []
        assert sorted(search("100")) == sorted([hit.event_id, miss.event_id])


class TestSqliteStore(StoreContract):
    @pytest.fixture
    def db(self, tmp_path: Path) -> Iterator[Database]:
        database = Database(f"sqlite:///{tmp_path / 'store.sqlite3'}")
        migrate(database)
        yield database
        database.dispose()


class TestPostgresStore(StoreContract):
    @pytest.fixture
    def db(self, pg_url: str) -> Iterator[Database]:
        database = Database(pg_url)
        migrate(database)
        yield database
        database.dispose()

    def test_read_together_on_a_lost_connection_is_store_unavailable_and_heals(
        self, db: Database
    ) -> None:
        """The server ends the session under a pipelined read: 503's exception (as for any
        other read), the connection is invalidated, and the next read works."""
        statement = select(CHECKPOINTS.c.partition)
        with pytest.raises(StoreUnavailable), db.reading() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
            with db.engine.connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            read_together(conn, [(statement, {}), (statement, {})])
        with db.reading() as conn:
            assert read_together(conn, [(statement, {})]) == [[]]

    def test_it_really_is_postgresql(self, db: Database) -> None:
        from sqlalchemy import text

        with db.reading() as conn:
            assert "PostgreSQL" in conn.execute(text("select version()")).scalar_one()
