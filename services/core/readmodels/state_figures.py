"""The KPI report's state figures at past period ends, summed per group: what the report would
otherwise add up from every account's kept state on each request.

A past end's figures (per group: accounts never contacted, neglected and at risk, conflicting
offers, overdue commitments) are a pure function of three things: the account states at that end
(``state_history``, or an evaluation where none is kept), the facts before it that say which
accounts existed and which departments had touched them (``report_facts.firsts``), and the
directory's current segments, owners and registrations (the groups). So a row here stays true
until one of them changes:

- a batch with an event that occurred at or before the end, or that replaces a row dated before
  it, deletes the figures of every end from its earliest such moment (``forget``, from
  ``projections.derived`` in the batch's transaction: the moments are those
  ``state_history.forget`` gets);
- a batch with an ``account.registered`` (segments, owners, registration times) deletes them all,
  as do a switch, a rollback and a replay (``forget``, ``EVER``; a replay first of all, before it
  empties the views);
- the rules, the business time zone and the at-risk threshold are part of the key.

The refresher computes a row once the state history's fill finds nothing missing (it evaluates
at most a few accounts lacking a state itself, ``kpi_states.state_sums``), and it must not
compute from facts a batch is about to change without that batch deleting the row,
nor from states another refresher is storing or pruning meanwhile (its statements each see what
has committed by then). Both hold by a lock: every batch, every store and prune of states, and
every switch or rollback (before it locks tables) hold it shared until they commit (``hold``);
the refresher computes and stores a row only when it can take it exclusively at once
(``computing``; it never queues, so batches never wait behind a waiting refresher), and lets
go at commit. So nothing that changes a sum's inputs is in flight while it is computed, and
everything later sees the row it must delete. On SQLite every one of those is a write
transaction, which excludes the others already.

The key carries ``VERSION``: raise it with any change to how the sums are computed (the groups,
which accounts count as existing), so a release never reads another's.

Reads use a row when there is one and compute the figures themselves when there is none.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    bindparam,
    delete,
    func,
    or_,
    select,
    text,
)

from services.core.readmodels.schema import METADATA

TABLE = Table(
    "account_state_figures",
    METADATA,
    Column("end_us", BigInteger, nullable=False),
    Column("group_by", String(16), nullable=False),
    Column("policy", String(32), nullable=False),  # key(health_cache.policy_key)
    Column("at_risk_below", Integer, nullable=False),
    Column("figures", Text, nullable=False),  # JSON: [[group, {metric: count}], ...]
    Column("computed_us", BigInteger, nullable=False),  # wall clock, for operators
    PrimaryKeyConstraint("end_us", "group_by", "policy", "at_risk_below"),
)

VERSION = 1
EVER = -(2**63)
_LOCK = 0x4F56_4B50_4946_4752  # "OVKPIFGR": one pg_advisory lock key for the whole database

Figures = list[tuple[str | None, dict[str, int]]]


def hold(conn: Connection) -> None:
    """The side of whatever changes a sum's inputs: taken before it changes them, held until it
    commits. Holders do not wait for one another, only for a refresher computing a sum
    (PostgreSQL; a SQLite write transaction excludes every other already)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": _LOCK})


def computing(conn: Connection) -> bool:
    """The refresher's side, the first statement of ``conn``'s transaction: True when nothing
    that holds the lock is in flight, and nothing can begin until that transaction ends (it is
    set to READ COMMITTED, so each later statement sees everything committed before); False, at
    once, when something holds it (try again later). Never call ``hold`` on another connection
    of the same thread while this transaction is open: it would wait for this one forever."""
    if conn.dialect.name != "postgresql":
        return True
    # Whatever the server's default: a snapshot taken before the lock could predate a holder.
    conn.execute(text("SET TRANSACTION ISOLATION LEVEL READ COMMITTED"))
    return bool(conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _LOCK}).scalar())


def key(policy: str) -> str:
    """The key column for sums computed under ``policy`` (``health_cache.policy_key``) by this
    release's ``VERSION``."""
    return hashlib.sha256(f"{VERSION}|{policy}".encode()).hexdigest()[:32]


def forget(conn: Connection, since_us: int) -> None:
    """Delete the figures of every end at or after ``since_us`` (``EVER``: all), in the
    transaction of the batch that changes them, after ``hold``."""
    if since_us == EVER:
        conn.execute(_FORGET_ALL)
    else:
        conn.execute(_FORGET_SINCE, {"since_us": since_us})


_FORGET_ALL = delete(TABLE)
_FORGET_SINCE = delete(TABLE).where(TABLE.c.end_us >= bindparam("since_us"))


def read(conn: Connection, end_us: int, group_by: str, policy: str,
         at_risk_below: int) -> Figures | None:  # fmt: skip
    """The figures kept for that end and grouping, or None."""
    t = TABLE.c
    stored = conn.execute(select(t.figures).where(
        t.end_us == end_us, t.group_by == group_by, t.policy == policy,
        t.at_risk_below == at_risk_below)).scalar()  # fmt: skip
    if stored is None:
        return None
    return [(g, dict(counts)) for g, counts in json.loads(stored)]


def store(conn: Connection, end_us: int, group_by: str, policy: str, at_risk_below: int,
          figures: Mapping[str | None, Mapping[str, int]], now_us: int) -> None:  # fmt: skip
    """Keep ``figures`` (group -> metric -> count), after ``computing`` said yes."""
    rows = sorted(([g, dict(sorted(c.items()))] for g, c in figures.items()),
                  key=lambda r: (r[0] is None, r[0] or ""))  # fmt: skip
    t = TABLE.c
    ours = (
        t.end_us == end_us,
        t.group_by == group_by,
        t.policy == policy,
        t.at_risk_below == at_risk_below,
    )
    conn.execute(delete(TABLE).where(*ours))
    conn.execute(TABLE.insert().values(
        end_us=end_us, group_by=group_by, policy=policy, at_risk_below=at_risk_below,
        figures=json.dumps(rows, ensure_ascii=False), computed_us=now_us))  # fmt: skip


def lacking(conn: Connection, ends: Sequence[int], group_bys: Sequence[str], policy: str,
            at_risk_below: int) -> list[tuple[int, str]]:  # fmt: skip
    """The (end, grouping) pairs of ``ends`` x ``group_bys`` without figures, latest end first."""
    t = TABLE.c
    ours = select(t.end_us, t.group_by).where(t.policy == policy,
                                               t.at_risk_below == at_risk_below)  # fmt: skip
    have = {(int(end), group_by) for end, group_by in conn.execute(ours)}
    return [(e, g) for e in sorted(ends, reverse=True) for g in group_bys if (e, g) not in have]


def prune(conn: Connection, keep: Sequence[int], policy: str, at_risk_below: int) -> int:
    """Delete the figures of ends not in ``keep`` or kept under other rules."""
    t = TABLE.c
    stale: Any = or_(t.policy != policy, t.at_risk_below != at_risk_below)
    if keep:
        stale = or_(stale, t.end_us.not_in(list(keep)))
    result = conn.execute(delete(TABLE).where(stale) if keep else delete(TABLE))
    return max(0, int(result.rowcount or 0))


def counts(conn: Connection) -> int:
    """How many (end, grouping) rows are kept."""
    return int(conn.execute(select(func.count()).select_from(TABLE)).scalar_one())
