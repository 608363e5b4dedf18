"""``adapters.sql.json_rows``: rows sent as one JSON parameter come back as the same typed rows
on both backends — Korean text, quotes, 64-bit integers, nulls, thousands of rows, none.

Runs on both backends (SQLite and PostgreSQL) through the ``db`` fixture.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, Text, func, select

from services.core.adapters.sql import Database, json_rows

COLUMNS = (("k", Integer), ("name", Text), ("big", BigInteger))


def test_rows_come_back_as_sent(db: Database) -> None:
    rows = [(1, "고객 \"따옴표\" '작은' \\ 역슬래시", 2**62), (2, None, -(2**63)), (3, "", None),
            (4, "😀 \u200b zero-width", 0)]  # fmt: skip
    rows += [(k, f"acct-{k}", k * 10**9) for k in range(5, 5000)]
    with db.reading() as conn:
        j = json_rows(conn, COLUMNS, rows)
        got = [tuple(r) for r in conn.execute(select(j.c.k, j.c.name, j.c.big).order_by(j.c.k))]
        assert got == rows
        assert conn.execute(select(func.sum(j.c.big)).where(j.c.k >= 5)).scalar() == sum(
            k * 10**9 for k in range(5, 5000))  # fmt: skip


def test_no_rows(db: Database) -> None:
    with db.reading() as conn:
        j = json_rows(conn, COLUMNS, [])
        assert conn.execute(select(func.count()).select_from(j)).scalar() == 0
