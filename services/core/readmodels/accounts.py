"""The AccountDirectory read model: who each account is, and when each department last touched it.

Every column is a commutative, idempotent fold of the log — "the latest by sort key wins", with
the sort key ``(occurred_us, partition, offset)`` — so the directory is the same whatever order
partitions are applied in and however often an event is delivered.

A *touch* is any event except ``account.registered``; an event touches its account and every
related account.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Connection,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    exists,
    func,
    not_,
    or_,
    select,
    true,
    tuple_,
)

from services.core.adapters.sql import read_together
from services.core.readmodels import cursors
from services.core.readmodels.schema import METADATA
from services.core.readmodels.timeline import from_micros

NAME = "AccountDirectory"
PREFIX = "account_directory"


@dataclass(frozen=True)
class DirectoryTables:
    accounts: Table
    touches: Table
    owners: Table
    employees: Table  # which of our people have touched which accounts


def directory_tables(metadata: MetaData, prefix: str) -> DirectoryTables:
    """The read model's tables under ``prefix``."""
    accounts = Table(
        f"{prefix}_accounts",
        metadata,
        Column("account_id", String(128), primary_key=True),
        Column("registered", Boolean, nullable=False),
        Column("name", Text, nullable=True),
        Column("name_key", Text, nullable=False),
        Column("segment", String(256), nullable=True),
        Column("tier", String(256), nullable=True),
        Column("parent_account_id", String(128), nullable=True),
        Column("owners", Text, nullable=False),
        Column("reg_us", BigInteger, nullable=True),
        Column("reg_partition", Integer, nullable=True),
        Column("reg_offset", BigInteger, nullable=True),
        Column("last_touch_us", BigInteger, nullable=True),
        Column("last_touch_partition", Integer, nullable=True),
        Column("last_touch_offset", BigInteger, nullable=True),
        Column("last_touch_event_id", String(36), nullable=True),
        Index(f"ix_{prefix}_accounts_last_touch", "last_touch_us", "account_id"),
        Index(f"ix_{prefix}_accounts_parent", "parent_account_id"),
    )
    touches = Table(
        f"{prefix}_touches",
        metadata,
        Column("account_id", String(128), primary_key=True),
        Column("department", String(32), primary_key=True),
        Column("at_us", BigInteger, nullable=False),
        Column("partition", Integer, nullable=False),
        Column("offset", BigInteger, nullable=False),
        Column("event_id", String(36), nullable=False),
        Column("type", String(64), nullable=False),
        Column("actor", Text, nullable=False),  # the person of this department in the event
        Column("summary", Text, nullable=True),
        # Whether that person was the event's actor (else a participant): the overall last
        # touch names the actor.
        Column("by_actor", Boolean, nullable=False, server_default="1"),
    )
    owners = Table(
        f"{prefix}_owners",
        metadata,
        Column("account_id", String(128), primary_key=True),
        Column("department", String(32), primary_key=True),
        Column("employee_id", String(256), nullable=False),
        # Who owns what, and how many accounts each owner has (reports.roster.owned_counts).
        Index(f"ix_{prefix}_owners_employee", "employee_id", "account_id"),
    )
    employees = Table(
        f"{prefix}_employees",
        metadata,
        Column("employee_id", String(256), primary_key=True),
        Column("account_id", String(128), primary_key=True),
    )
    return DirectoryTables(accounts, touches, owners, employees)


TABLES = directory_tables(METADATA, PREFIX)

SortKey = tuple[int, str]
Sort = Literal["last_touch", "name", "health", "value"]


@dataclass(frozen=True)
class AccountQuery:
    """One page of ``GET /v1/accounts``; ``None`` means no filter."""

    q: str | None = None
    owner: str | None = None
    segment: str | None = None
    touched_before_us: int | None = None
    never_contacted: bool | None = None
    silent_department: str | None = None
    silent_since_us: int | None = None
    sort: Sort = "last_touch"
    limit: int = 50
    after: tuple[Any, str] | None = None


BadCursor = cursors.BadCursor


def names_of(conn: Connection, account_ids: Collection[str]) -> dict[str, str | None]:
    """``account id -> registered name`` (None when never registered), in bounded IN lists."""
    a, ids, found = TABLES.accounts, sorted(account_ids), {}
    for start in range(0, len(ids), 500):
        rows = conn.execute(select(a.c.account_id, a.c.name)
                            .where(a.c.account_id.in_(ids[start : start + 500])))  # fmt: skip
        found.update({r.account_id: r.name for r in rows})
    return found


def encode_cursor(sort: Sort, key: tuple[Any, str]) -> str:
    return cursors.encode([sort, *key])


def decode_cursor(sort: Sort, cursor: str) -> tuple[Any, str]:
    """The key after which the next page starts; ``BadCursor`` if not one of this sort's."""
    key = cursors.decode(cursor)
    valid = (
        len(key) == 3
        and key[0] == sort
        and (isinstance(key[1], str) if sort == "name" else cursors.is_int64(key[1]))
        and isinstance(key[2], str)
    )
    if not valid:
        raise BadCursor("cursor is not valid for this sort; use next_cursor as given")
    return key[1], key[2]


def _row_json(
    row: Any, departments: dict[str, dict[str, Any]], with_us: bool = False
) -> dict[str, Any]:
    # The overall last touch is one of the departments' last touches: the actor's.
    overall = max((t for t in departments.values() if t["event_id"] == row.last_touch_event_id),
                  key=lambda t: t["_by_actor"], default=None)  # fmt: skip
    if not with_us:
        departments = {d: {k: v for k, v in t.items() if k != "_by_actor"}
                       for d, t in departments.items()}  # fmt: skip
        overall = None if overall is None else {k: v for k, v in overall.items()
                                                if k != "_by_actor"}  # fmt: skip
    return {
        "account_id": row.account_id,
        "registered": bool(row.registered),
        "name": row.name,
        "segment": row.segment,
        "tier": row.tier,
        "parent_account_id": row.parent_account_id,
        "owners": json.loads(row.owners),
        "last_touch": overall,
        "last_touch_by_department": departments,
    }


def _touches(
    conn: Connection, account_ids: Sequence[str], t: DirectoryTables, *, with_us: bool = False
) -> dict[str, Any]:
    rows = conn.execute(select(t.touches).where(t.touches.c.account_id.in_(list(account_ids))))
    return _touches_from(account_ids, rows, with_us)


def _touches_from(
    account_ids: Collection[str], rows: Iterable[Any], with_us: bool
) -> dict[str, dict[str, dict[str, Any]]]:
    found: dict[str, dict[str, dict[str, Any]]] = {a: {} for a in account_ids}
    for r in rows:
        if r.account_id not in found:
            continue
        touch = found[r.account_id][r.department] = {
            "at": from_micros(r.at_us), "event_id": r.event_id, "type": r.type,
            "actor": json.loads(r.actor), "summary": r.summary, "_by_actor": bool(r.by_actor),
        }  # fmt: skip
        if with_us:
            touch["at_us"] = r.at_us
    return found


def account_items(
    conn: Connection,
    account_ids: Sequence[str],
    tables: DirectoryTables = TABLES,
    *,
    with_us: bool = False,
) -> dict[str, dict[str, Any]]:
    """The list's item for each known id (``with_us``: ``at_us`` added to every touch)."""
    return items_from(*read_together(conn, items_reads(account_ids, tables)), with_us=with_us)


def items_reads(
    account_ids: Sequence[str], tables: DirectoryTables = TABLES
) -> list[tuple[Any, dict[str, Any]]]:
    """The two reads ``items_from`` makes the items of (for ``read_together``)."""
    ids = {"ids": list(account_ids)}
    accounts_of, touches_of = _items_statements(tables)
    return [(accounts_of, ids), (touches_of, ids)]


def items_from(
    account_rows: Sequence[Any], touch_rows: Sequence[Any], *, with_us: bool = False
) -> dict[str, dict[str, Any]]:
    """``account_items`` from the rows of ``items_reads``."""
    touches = _touches_from([r.account_id for r in account_rows], touch_rows, with_us)
    return {r.account_id: _row_json(r, touches[r.account_id], with_us) for r in account_rows}


@cache
def _items_statements(tables: DirectoryTables) -> tuple[Any, Any]:
    a, t = tables.accounts, tables.touches
    return (select(a).where(a.c.account_id.in_(bindparam("ids", expanding=True))),
            select(t).where(t.c.account_id.in_(bindparam("ids", expanding=True))))  # fmt: skip


def _statement(query: AccountQuery, tables: DirectoryTables) -> Any:
    """SELECT of the matching accounts (+ ``sort_key``) after the cursor, in page order."""
    a = tables.accounts
    conditions = _filters(query, tables)
    primary: ColumnElement[Any]
    if query.sort == "last_touch":
        primary = func.coalesce(a.c.last_touch_us, -1)  # never touched: -1, so last
        if query.after is not None:
            conditions.append(tuple_(primary, a.c.account_id) < tuple_(*query.after))
        ordering = (primary.desc(), a.c.account_id.desc())
    else:
        primary = a.c.name_key
        if query.after is not None and query.sort == "name":
            conditions.append(tuple_(primary, a.c.account_id) > tuple_(*query.after))
        ordering = (primary.asc(), a.c.account_id.asc())
    return select(a, primary.label("sort_key")).where(and_(true(), *conditions)).order_by(*ordering)


def statement(query: AccountQuery, tables: DirectoryTables = TABLES) -> Any:
    """SELECT of the accounts matching the query's filters (no order, no cursor)."""
    return select(tables.accounts).where(and_(true(), *_filters(query, tables)))


def _filters(query: AccountQuery, tables: DirectoryTables) -> list[Any]:
    a = tables.accounts
    conditions: list[Any] = []
    if query.q:
        needle = query.q.casefold()
        conditions.append(
            or_(a.c.name_key.contains(needle, autoescape=True),
                a.c.account_id.contains(query.q, autoescape=True))
        )  # fmt: skip
    if query.owner:
        o = tables.owners
        conditions.append(
            exists().where(and_(o.c.account_id == a.c.account_id, o.c.employee_id == query.owner))
        )
    if query.segment:
        conditions.append(a.c.segment == query.segment)
    if query.touched_before_us is not None:
        conditions.append(
            or_(a.c.last_touch_us.is_(None), a.c.last_touch_us < query.touched_before_us)
        )
    if query.never_contacted is not None:
        never = and_(a.c.registered.is_(True), a.c.last_touch_us.is_(None))
        conditions.append(never if query.never_contacted else not_(never))
    if query.silent_department:
        tt = tables.touches
        recent = [tt.c.account_id == a.c.account_id, tt.c.department == query.silent_department]
        if query.silent_since_us is not None:
            recent.append(tt.c.at_us >= query.silent_since_us)
        conditions.append(not_(exists().where(and_(*recent))))
    return conditions


def read_accounts(
    conn: Connection, query: AccountQuery, tables: DirectoryTables = TABLES
) -> tuple[list[dict[str, Any]], str | None]:
    """A keyset-paginated page of accounts, newest touch first (never touched last) or by name."""
    rows = conn.execute(_statement(query, tables).limit(query.limit + 1)).all()
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    touches = _touches(conn, [r.account_id for r in rows], tables)
    items = [_row_json(r, touches[r.account_id]) for r in rows]
    cursor = encode_cursor(query.sort, (rows[-1].sort_key, rows[-1].account_id)) if more else None
    return items, cursor


def descendants(
    conn: Connection, account_id: str, tables: DirectoryTables = TABLES, limit: int = 1000
) -> list[str]:
    """Every account below ``account_id`` in the registered hierarchy (breadth first).

    Cycles in registrations are tolerated; at most ``limit`` accounts are returned.
    """
    a = tables.accounts
    seen, frontier = {account_id}, [account_id]
    found: list[str] = []
    while frontier and len(found) < limit:
        children = conn.execute(
            select(a.c.account_id)
            .where(a.c.parent_account_id.in_(frontier))
            .order_by(a.c.account_id)
        ).scalars()
        frontier = [c for c in children if c not in seen]
        seen.update(frontier)
        found += frontier
    return found[:limit]
