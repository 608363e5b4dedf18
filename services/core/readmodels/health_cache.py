"""The health cache: each account's health, list keys and coverage items, evaluated ahead of the
reads that sort and filter on them, each with the span of time it is valid for.

Health depends on events *and* on the clock. An evaluation at ``T0`` (``account_health.evaluate``)
stays true until the account's facts change or until its next time-driven change
(``valid_until_us``: the next local midnight, where every window rolls; the next due date,
offer expiry or renewal edge; the next future-dated event). So a row answers for a clock ``T``
when ``valid_from_us <= T < valid_until_us`` and it was evaluated under the same rules
(``policy``); any other row is *stale*, and a read evaluates that account itself. The cache
only ever saves work: what a read returns never depends on how far the refresher got.

Who writes what:
- the live projector, in the transaction that applies a batch, marks every account of the
  batch stale (``touch``: ``stamp + 1``, ``valid_until_us = UNCLAIMED``, creating missing
  rows) — so every account of the directory has a row, which reads rely on (they join the
  directory with this table); migration 0015, ``touch_all`` and the refresher (once a minute)
  ``adopt`` any account that got into the directory another way;
- a generation switch, a rollback and a replay mark every account stale (``touch_all``);
- the refresher (``projections.health_refresh``) claims stale rows for a lease (``claim``:
  ``valid_until_us = -(lease end)``, reading their stamps), then loads their facts and
  evaluates them, and stores each result only if the row is still under that claim with that
  stamp (``store``): a batch applied meanwhile bumped it, and wins.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    bindparam,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import OperationalError

from services.core.adapters.sql import bulk_insert, bulk_insert_for, pg_record
from services.core.readmodels import accounts, attention
from services.core.readmodels.schema import METADATA
from services.core.view_rules import AsOf

_CODE_POINT_ID = String(128).with_variant(String(128, collation="C"), "postgresql")
_CODE_POINT_TEXT = Text().with_variant(Text(collation="C"), "postgresql")


SECTION_COLUMNS: dict[str, tuple[str, str | None]] = {
    "neglected": ("cov_neglected", None),
    "never_contacted": ("cov_never", None),
    "single_threaded": ("cov_single", None),
    "recurring_complaints": ("cov_recurring", None),
    "overdue_commitments": ("cov_overdue", "cov_overdue_n"),
    "stale_handoffs": ("cov_stale", None),
    "recurrences_after_fix": ("cov_after_fix", "cov_after_fix_n"),
}
"""Coverage section -> (its first-key column, its item-count column or None: one item)."""


def _section_index(column: str) -> Index:
    """The accounts holding items in a coverage section, in report order (first key, id)."""
    where = text(f"{column} IS NOT NULL")
    return Index(f"ix_account_health_cache_{column}", column, "account_id",
                 postgresql_where=where, sqlite_where=where)  # fmt: skip


TABLE = Table(
    "account_health_cache",
    METADATA,
    # In code-point order on PostgreSQL too (collation "C"), as the lists and the coverage
    # report order ids and keys, so that their indexes serve those orders (migration 0020).
    Column("account_id", _CODE_POINT_ID, primary_key=True),
    Column("stamp", BigInteger, nullable=False, server_default="0"),
    Column("valid_from_us", BigInteger, nullable=False, server_default="0"),
    Column("valid_until_us", BigInteger, nullable=False, server_default="0"),
    Column("policy", String(32), nullable=False, server_default=""),
    Column("score", Integer, nullable=True),
    Column("value_cents", BigInteger, nullable=True),
    Column("renews_us", BigInteger, nullable=True),
    Column("coverage", Text, nullable=True),  # JSON: this account's coverage items, or NULL
    # Per coverage section, the first key of the account's items there (attention.first_key;
    # NULL: none) and, for sections an account can have several items in, how many.
    Column("cov_neglected", _CODE_POINT_TEXT, nullable=True),
    Column("cov_never", _CODE_POINT_TEXT, nullable=True),
    Column("cov_single", Float, nullable=True),
    Column("cov_recurring", Integer, nullable=True),
    Column("cov_overdue", _CODE_POINT_TEXT, nullable=True),
    Column("cov_overdue_n", Integer, nullable=True),
    Column("cov_stale", _CODE_POINT_TEXT, nullable=True),
    Column("cov_after_fix", _CODE_POINT_TEXT, nullable=True),
    Column("cov_after_fix_n", Integer, nullable=True),
    # What the KPI report counts for the current period (state_history.State; score above).
    Column("last_touch_us", BigInteger, nullable=True),  # the latest touch up to now
    Column("conflicts", Integer, nullable=True),
    Column("overdue", Integer, nullable=True),
    Column("overdue_by", Text, nullable=True),  # JSON: committing department -> overdue count
    # The directory's last touch (-1: never) when evaluated, the accounts list's default order:
    # an event that moves it touches the row, so a valid row's is the directory's.
    Column("touch_key", BigInteger, nullable=True),
    Index("ix_account_health_cache_until", "valid_until_us"),
    Index("ix_account_health_cache_from", "valid_from_us"),
    Index("ix_account_health_cache_policy", "policy"),
    Index("ix_account_health_cache_score", "score", "account_id"),
    Index("ix_account_health_cache_value", "value_cents", "account_id"),
    Index("ix_account_health_cache_touch", "touch_key", "account_id"),
    # Per coverage section, the accounts holding items there in report order.
    *(_section_index(key) for key, _ in SECTION_COLUMNS.values()),
)


UNCLAIMED = 0
"""``valid_until_us`` of a stale row nobody is evaluating (any value <= now is stale; a
negative one is a refresher's claim, ``-(the end of its lease)``)."""
LEASE_US = 60_000_000
"""How long a claim keeps other refreshers off its rows (then they take over)."""

RULES_VERSION = 3
"""Raise it with any change to what ``account_health.evaluate`` or ``state_history.of_facts``
computes (a health rule, a penalty, a coverage item): rows evaluated by another release are
stale to this one (2: the KPI state columns; 3: ``touch_key``)."""


TOTALS = Table(
    "account_health_totals",
    METADATA,
    Column("policy", String(32), primary_key=True),
    *(Column(s, BigInteger, nullable=False, server_default="0") for s in SECTION_COLUMNS),
)
"""Per ``policy``, the coverage items of every row evaluated under it, per section: kept by
triggers on ``TABLE`` (migration 0020) in the transaction of every write, whoever writes, so
the coverage report counts without reading every row (``item_counts``)."""


def items_of(row: Any) -> dict[str, int]:
    """Per coverage section, how many items a row (with the ``cov_*`` columns) holds there."""
    out = {}
    for section, (key, count) in SECTION_COLUMNS.items():
        held = getattr(row, key) is not None
        out[section] = 0 if not held else 1 if count is None else int(getattr(row, count) or 0)
    return out


def item_counts(conn: Connection, as_of: AsOf) -> dict[str, int]:
    """Per coverage section, how many items the rows valid for ``as_of`` hold: the totals of
    the rows evaluated under its rules, less those of such rows that are stale now (few, unless
    the refresher is behind: each has its index)."""
    key = policy_key(as_of)
    found = conn.execute(select(TOTALS).where(TOTALS.c.policy == key)).first()
    counts = {s: 0 if found is None else int(found._mapping[s]) for s in SECTION_COLUMNS}
    t = TABLE.c
    names = [c for pair in SECTION_COLUMNS.values() for c in pair if c is not None]
    behind = or_(t.valid_until_us <= as_of.now_us, t.valid_from_us > as_of.now_us)
    for row in conn.execute(select(*(t[c] for c in names)).where(t.policy == key, behind)):
        for section, n in items_of(row).items():
            counts[section] -= n
    return counts


def section_values(items: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The ``cov_*`` columns of an account whose coverage items are ``items``."""
    values: dict[str, Any] = {}
    for section, (key, count) in SECTION_COLUMNS.items():
        found = items.get(section)
        values[key] = None if not found else attention.first_key(section, found)
        if count is not None:
            values[count] = None if not found else len(found)
    return values


def policy_key(as_of: AsOf) -> str:
    """A fingerprint of the rules an evaluation used: the release's rules, the business time
    zone and the policy."""
    rules = f"{RULES_VERSION}|{as_of.tz.key}|{as_of.policy!r}"
    return hashlib.sha256(rules.encode()).hexdigest()[:32]


def valid(as_of: AsOf) -> ColumnElement[bool]:
    """Rows that answer for ``as_of``."""
    t = TABLE.c
    return and_(t.valid_from_us <= as_of.now_us, t.valid_until_us > as_of.now_us,
                t.policy == policy_key(as_of))  # fmt: skip


def held_still(conn: Connection) -> bool:
    """Keep every other transaction from writing the cache until ``conn``'s ends (PostgreSQL:
    a SHARE lock on the table; reads go on): True, or False at once when a writer holds it
    (try again later). For a refresher summing states in a READ COMMITTED transaction, where
    another refresher's store between two of its statements would be counted by neither. On
    SQLite ``conn`` is a write transaction already, which excludes every other writer."""
    if conn.dialect.name != "postgresql":
        return True
    try:
        with conn.begin_nested():
            conn.execute(text(f"LOCK TABLE {TABLE.name} IN SHARE MODE NOWAIT"))
    except OperationalError:
        return False
    return True


def next_change_of_all(conn: Connection, as_of: AsOf) -> int:
    """The earliest moment after ``as_of`` at which a row that answers for it stops answering:
    until then no account's health changes with no new event (when every account has one)."""
    found = conn.execute(select(func.min(TABLE.c.valid_until_us)).where(valid(as_of))).scalar()
    return 2**63 - 1 if found is None else int(found)


def stale(as_of: AsOf) -> ColumnElement[bool]:
    """Rows that do not answer for ``as_of`` (each disjunct has its index)."""
    t, key = TABLE.c, policy_key(as_of)
    return or_(t.valid_until_us <= as_of.now_us, t.valid_from_us > as_of.now_us,
               t.policy < key, t.policy > key)  # fmt: skip


def in_directory(conn: Connection) -> ColumnElement[bool]:
    """A cache row's account is the directory's, compared so that the directory's key serves
    the lookup: on PostgreSQL the cache's ids are in collation "C" and the directory's in the
    database's, and a comparison of the two as they are takes "C" (the planner then neither
    looks accounts up in the directory's key nor keeps a cache index's order through a join)."""
    a, t = accounts.TABLES.accounts.c, TABLE.c
    if conn.dialect.name == "postgresql":
        return a.account_id == t.account_id.collate("default")
    return a.account_id == t.account_id


def adopt(conn: Connection) -> int:
    """Give every account of the directory that has no row a stale one; returns how many."""
    a, t = accounts.TABLES.accounts, TABLE
    result = conn.execute(insert(t).from_select(
        ["account_id"],
        select(a.c.account_id).where(~exists().where(t.c.account_id == a.c.account_id)),
    ))  # fmt: skip
    return max(0, int(result.rowcount or 0))


def touch(conn: Connection, account_ids: Iterable[str]) -> None:
    """Mark these accounts stale (their facts just changed), creating missing rows."""
    ids = sorted(set(account_ids))  # one lock order for every projector
    if not ids:
        return
    _, params = bulk_insert(conn, TABLE, [{"account_id": a} for a in ids])
    conn.execute(_touch_statement(conn.dialect.name), params)


@functools.cache
def _touch_statement(dialect: str) -> Any:
    """Built once per dialect: every projector batch runs it."""
    stmt = bulk_insert_for(dialect, TABLE, ("account_id",))
    return stmt.on_conflict_do_update(
        index_elements=[TABLE.c.account_id],
        set_={"stamp": TABLE.c.stamp + 1, "valid_until_us": UNCLAIMED},
        # A row already stale and not claimed by a refresher stays as it is: nobody is
        # evaluating it, so there is no result to refuse, and a catch-up or replay touching
        # the same accounts batch after batch writes nothing (every write here also rewrites
        # the row's five index entries).
        where=TABLE.c.valid_until_us != UNCLAIMED,
    )  # fmt: skip


def touch_all(conn: Connection) -> None:
    """Mark every account stale (the facts changed wholesale: a switch, rollback or replay)
    and give every account of the directory a row. Rows are never deleted (an account the
    directory lost keeps one, which no read joins): a stamp must never start over, or a
    refresher that read it before could store an old evaluation under it."""
    if conn.dialect.name == "postgresql":
        # Before any row lock: the projector's touch takes row locks in account order (the
        # refresher's claim and store skip locked rows), this whole-table update in another.
        conn.execute(text(f"LOCK TABLE {TABLE.name} IN SHARE ROW EXCLUSIVE MODE"))
    conn.execute(update(TABLE).values(stamp=TABLE.c.stamp + 1, valid_until_us=UNCLAIMED))
    adopt(conn)


@dataclass(frozen=True)
class Claim:
    """Rows one refresher is evaluating: ``valid_until_us = token`` (``-(lease end)``)."""

    token: int
    stamps: dict[str, int]  # account_id -> stamp when claimed


def claim(conn: Connection, as_of: AsOf, limit: int, lease_us: int = LEASE_US) -> Claim:
    """Claim up to ``limit`` stale rows, most overdue first, for ``lease_us``: another
    refresher skips them until the lease ends (then a claim that died is taken over). Evaluate
    after this commits: a batch applied from then on bumps a claimed row's stamp and clears
    the claim, so ``store`` refuses the result. Rows another transaction holds are skipped
    (PostgreSQL), so a claim never waits for the projector's batch."""
    t = TABLE.c
    token = -(as_of.now_us + lease_us)
    # No lease running, and in the directory: a row whose account is not (the directory
    # parked its first event, or a switch left it behind) is never evaluated, so it stays
    # stale and no read or total counts it (``item_counts`` takes stale rows' items away).
    listed = exists().where(in_directory(conn))
    claimable = and_(stale(as_of), t.valid_until_us >= -as_of.now_us, listed)
    ids = list(conn.execute(
        select(t.account_id).where(claimable).order_by(t.valid_until_us, t.account_id)
        .limit(limit).with_for_update(skip_locked=True)).scalars())  # fmt: skip
    if not ids:
        return Claim(token, {})
    stmt = (update(TABLE).where(t.account_id.in_(ids), claimable)
            .values(valid_until_us=token).returning(t.account_id, t.stamp))  # fmt: skip
    return Claim(token, {r.account_id: int(r.stamp) for r in conn.execute(stmt)})


@dataclass(frozen=True)
class Entry:
    """One account's evaluation, as stored."""

    score: int
    value_cents: int
    renews_us: int | None
    coverage: str | None  # JSON
    valid_from_us: int
    valid_until_us: int
    touch_key: int  # the directory's last touch, -1 when never touched
    sections: dict[str, Any]  # the cov_* columns (section_values)
    state: dict[str, Any]  # the KPI state columns (state_history.State.columns)


def store(conn: Connection, claimed: Claim, entries: dict[str, Entry], as_of: AsOf) -> int:
    """Store each entry whose row is still under ``claimed`` with the stamp it had then (no
    batch touched it since); returns how many were stored. On PostgreSQL rows another
    transaction holds are skipped (the projector is touching them: they would be refused),
    so a store never waits for a batch, nor a batch for a store it could deadlock with."""
    if not entries:
        return 0
    key = policy_key(as_of)
    rows = [
        {"account_id": account_id, "stamp": claimed.stamps[account_id], "score": e.score,
         "value_cents": e.value_cents, "renews_us": e.renews_us, "coverage": e.coverage,
         "valid_from_us": e.valid_from_us, "valid_until_us": e.valid_until_us, "policy": key,
         "touch_key": e.touch_key,
         **e.sections, **e.state}
        for account_id, e in sorted(entries.items()) if account_id in claimed.stamps
    ]  # fmt: skip
    if not rows:
        return 0
    if conn.dialect.name == "postgresql":
        # The totals first, whole: the cache's triggers update their rows (TOTALS) in whatever
        # order the rows come, and insert a new policy's, so two refreshers storing at once
        # would otherwise wait on each other crosswise (row locks in policy order would not
        # cover a row another store is inserting). Stores queue here; reads do not, and the
        # projector never writes the totals.
        conn.execute(text(f"LOCK TABLE {TOTALS.name} IN SHARE ROW EXCLUSIVE MODE"))
        # One statement (an executemany is one round trip per row, holding the rows' locks
        # against the projector's batch meanwhile).
        result = conn.execute(text(_PG_STORE), {"rows": json.dumps(rows, ensure_ascii=False),
                                                "token": claimed.token})  # fmt: skip
        return max(0, int(result.rowcount or 0))
    t = TABLE
    stmt = (update(t)
            .where(t.c.account_id == bindparam("k_id"), t.c.stamp == bindparam("k_stamp"),
                   t.c.valid_until_us == claimed.token)
            .values(**{c: bindparam(c) for c in _STORED[2:]}))  # fmt: skip
    params = [{**r, "k_id": r["account_id"], "k_stamp": r["stamp"]} for r in rows]
    result = conn.execute(stmt, params)
    return max(0, int(result.rowcount or 0))


_SECTION_NAMES = [c for pair in SECTION_COLUMNS.values() for c in pair if c is not None]
_STORED = [
    "account_id",
    "stamp",
    "score",
    "value_cents",
    "renews_us",
    "coverage",
    "valid_from_us",
    "valid_until_us",
    "policy",
    *_SECTION_NAMES,
    "last_touch_us",
    "conflicts",
    "overdue",
    "overdue_by",
    "touch_key",
]
_PG_STORE = f"""
WITH u AS (SELECT * FROM json_to_recordset(CAST(:rows AS json))
           AS u({pg_record(TABLE, _STORED)})),
locked AS (SELECT c.account_id FROM {TABLE.name} AS c
           WHERE c.account_id IN (SELECT account_id FROM u) AND c.valid_until_us = :token
           FOR UPDATE SKIP LOCKED)
UPDATE {TABLE.name} AS c SET {", ".join(f"{n} = u.{n}" for n in _STORED[2:])}
FROM u WHERE c.account_id = u.account_id AND c.account_id IN (SELECT account_id FROM locked)
    AND c.stamp = u.stamp AND c.valid_until_us = :token
"""


def valid_rows(conn: Connection, account_ids: Sequence[str], as_of: AsOf) -> dict[str, Any]:
    """The rows among ``account_ids`` that answer for ``as_of``."""
    found: dict[str, Any] = {}
    ids = sorted(set(account_ids))
    for start in range(0, len(ids), 500):
        rows = conn.execute(select(TABLE).where(
            TABLE.c.account_id.in_(ids[start : start + 500]), valid(as_of)))  # fmt: skip
        found.update({r.account_id: r for r in rows})
    return found


def counts(conn: Connection, as_of: AsOf) -> tuple[int, int]:
    """(rows, stale rows) for ``as_of``: the refresher's progress."""
    total = conn.execute(select(func.count()).select_from(TABLE)).scalar_one()
    # Not a row whose account is not in the directory: it is never evaluated (``claim``).
    behind = conn.execute(select(func.count()).select_from(TABLE).where(
        stale(as_of), exists().where(in_directory(conn)))).scalar_one()  # fmt: skip
    return int(total), int(behind)
