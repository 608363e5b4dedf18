"""Account states at past moments: what the KPI report counts at each period's end.

The KPI report's state figures (accounts neglected, at risk, never contacted; commitments
overdue; conflicting offers) are the view's rules applied to every account at a period's end
``E``. For the current period that moment is now, and the health cache holds it. A past ``E``
never moves, so an account's state there changes only when the facts *before* ``E`` change: an
event that occurred at or before ``E`` (a late one), or one that changes a row whose time is at
or before ``E`` (a commitment made again, a renewal rescheduled: the view keeps each lifecycle
side's latest event; a ticket's opening gives its preventions their category:
``projections.onevoice.replaced_since``). This table keeps those states per (period end,
account):

- the refresher (``projections.health_refresh``) fills the ends of the last
  ``ONEVOICE_KPI_HISTORY_WEEKS`` weeks and ``ONEVOICE_KPI_HISTORY_MONTHS`` months, after the
  health cache is caught up (``missing``, ``evaluate``, ``store``);
- the live projector and the re-driver, in the transaction that applies a batch, delete every
  state of an account at or after the earliest moment the batch changes for it (``forget``,
  through ``projections.derived``); a switch, a rollback and a replay delete them all
  (``changed_wholesale``);
- a read takes the rows of its end and evaluates the accounts without one itself (``evaluate``),
  so, as with the health cache, the answer never depends on how far the refresher got.

A refresher that evaluated an account while a batch changed it must not store the result. It
reads the account's health-cache stamp before loading the facts, and stores only where the
stamp is unchanged (``store``). That holds because it only takes accounts whose health row is
not stale-and-unclaimed: the projector's ``touch`` bumps the stamp of every such row it
touches (it leaves stale, unclaimed rows alone).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    bindparam,
    delete,
    exists,
    func,
    or_,
    select,
    text,
)

from services.core.adapters.sql import bulk_insert
from services.core.codec import StoredEvent
from services.core.health import health
from services.core.readmodels import accounts, health_cache, kpi_figures, state_figures, view_facts
from services.core.readmodels.schema import METADATA
from services.core.readmodels.timeline import to_micros
from services.core.view_rules import (
    AsOf,
    Facts,
    conflicts,
    is_overdue,
    live_offers,
    open_commitments,
)

TABLE = Table(
    "account_state_history",
    METADATA,
    Column("end_us", BigInteger, nullable=False),
    Column("account_id", String(128), nullable=False),
    Column("policy", String(32), nullable=False),  # health_cache.policy_key
    Column("last_touch_us", BigInteger, nullable=True),  # the latest touch up to end_us
    Column("score", Integer, nullable=False),
    Column("conflicts", Integer, nullable=False),
    Column("overdue", Integer, nullable=False),
    Column("overdue_by", Text, nullable=True),  # JSON: committing department -> overdue count
    PrimaryKeyConstraint("end_us", "account_id"),
    Index("ix_account_state_history_account", "account_id", "end_us"),
)


@dataclass(frozen=True)
class State:
    """One account at one moment, as the KPI report counts it."""

    last_touch_us: int | None
    score: int
    conflicts: int
    overdue_by: dict[str | None, int] = field(default_factory=dict)

    def columns(self) -> dict[str, Any]:
        """The columns this table and the health cache keep it in (``score`` aside)."""
        return {"last_touch_us": self.last_touch_us, "conflicts": self.conflicts,
                "overdue": sum(self.overdue_by.values()),
                "overdue_by": _dump(self.overdue_by)}  # fmt: skip


def of_facts(f: Facts, as_of: AsOf) -> State:
    """The state of the account whose facts (``load_facts``, ``open_only``) are ``f``."""
    overdue = Counter(c.department for c in open_commitments(f, as_of) if is_overdue(c, as_of))
    return State(f.last_touch_us, int(health(f, as_of)["score"]),
                 len(conflicts(live_offers(f, as_of))), dict(overdue))  # fmt: skip


def of_row(row: Any) -> State:
    """A state from a row with the columns of ``State.columns``."""
    return State(row.last_touch_us, int(row.score), int(row.conflicts),
                 load_by(row.overdue_by))  # fmt: skip


def _dump(by: Mapping[str | None, int]) -> str | None:
    # JSON keys are strings: a commitment without a department is "" (departments are never "").
    return json.dumps({k or "": v for k, v in sorted(by.items(), key=lambda kv: kv[0] or "")},
                      ensure_ascii=False) if by else None  # fmt: skip


def load_by(text_: str | None) -> dict[str | None, int]:
    """``overdue_by`` as stored, read back."""
    return {} if not text_ else {k or None: int(v) for k, v in json.loads(text_).items()}


def evaluate(conn: Connection, account_ids: Sequence[str] | None,
             as_of: AsOf) -> dict[str, State]:  # fmt: skip
    """Each account's state at ``as_of`` (``None``: every account with facts); accounts with
    no facts have the state of ``Facts()``."""
    ids = None if account_ids is None or len(account_ids) > 500 else list(account_ids)
    facts = view_facts.load_facts(conn, ids, as_of, open_only=True, orders=False)
    wanted = facts.keys() if account_ids is None else account_ids
    return {a: of_facts(facts.get(a, Facts()), as_of) for a in wanted}


# -- reads -------------------------------------------------------------------------------------


def read(conn: Connection, end_us: int, as_of: AsOf) -> dict[str, State]:
    """The stored states at ``end_us`` under ``as_of``'s rules."""
    t = TABLE.c
    rows = conn.execute(select(t.account_id, t.last_touch_us, t.score, t.conflicts,
                               t.overdue_by).where(
        t.end_us == end_us, t.policy == health_cache.policy_key(as_of)))  # fmt: skip
    return {r.account_id: of_row(r) for r in rows}


# -- the projector's side ----------------------------------------------------------------------


EVER = -(2**63)
"""A moment before every end: ``forget`` from it deletes all of an account's states."""


def changed_since(events: Iterable[StoredEvent]) -> dict[str, int]:
    """Per account whose facts these events may change (each one's account and related
    accounts; organisation events have none), the earliest moment they change at: the earliest
    of its events' times."""
    found: dict[str, int] = {}
    for s in events:
        if not s.event.about_customer:
            continue
        at = to_micros(s.event.occurred_at)
        for account_id in (s.event.account_id, *s.event.related_account_ids):
            if account_id not in found or at < found[account_id]:
                found[account_id] = at
    return found


def earliest(*maps: Mapping[str, int]) -> dict[str, int]:
    """The earliest moment per account over ``maps``."""
    found: dict[str, int] = {}
    for m in maps:
        for account_id, at in m.items():
            if account_id not in found or at < found[account_id]:
                found[account_id] = at
    return found


def latest_end(conn: Connection) -> int | None:
    """The latest end any state is kept for (None: none is kept)."""
    return conn.execute(_LATEST_END).scalar()


_LATEST_END = select(func.max(TABLE.c.end_us))


def forget(conn: Connection, since: Mapping[str, int], last: int | None) -> None:
    """Delete each account's states at or after its moment in ``since`` (its facts up to
    those ends changed); ``last``: ``latest_end`` read after ``health_cache.touch`` in the same
    transaction (see the module's note)."""
    rows = [{"account_id": a, "since_us": at} for a, at in sorted(since.items())
            if last is not None and at <= last]  # fmt: skip
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(text(_PG_FORGET), {"rows": json.dumps(rows, ensure_ascii=False)})
        return
    conn.execute(_FORGET, rows)


_FORGET = delete(TABLE).where(TABLE.c.account_id == bindparam("account_id"),
                              TABLE.c.end_us >= bindparam("since_us"))  # fmt: skip


_PG_FORGET = f"""
DELETE FROM {TABLE.name} AS h USING json_to_recordset(CAST(:rows AS json))
    AS v(account_id varchar(128), since_us bigint)
WHERE h.account_id = v.account_id AND h.end_us >= v.since_us
"""


def forget_all(conn: Connection) -> None:
    """Delete every state (the facts changed wholesale: a switch, rollback or replay)."""
    conn.execute(delete(TABLE))


def changed_wholesale(conn: Connection) -> None:
    """Every account's facts may have changed (a generation switch, a rollback, a replay):
    every health row stale, every state and every sum of them forgotten (in that order: see the
    module's note)."""
    state_figures.hold(conn)
    health_cache.touch_all(conn)
    forget_all(conn)
    state_figures.forget(conn, state_figures.EVER)
    kpi_figures.forget(conn, kpi_figures.EVER)


# -- the refresher's side ----------------------------------------------------------------------


def ends(as_of: AsOf, weeks: int, months: int) -> list[int]:
    """The period ends kept: those of the last ``weeks`` weeks and ``months`` months that have
    ended by ``as_of``, latest first (a month may end where a week does: once)."""
    past = kpi_figures.periods(as_of, weeks, months)  # the current ones end after now
    return sorted({p.end_us for p in past if p.end_us <= as_of.now_us}, reverse=True)


def missing(conn: Connection, end_us: int, as_of: AsOf, limit: int,
            after: str = "") -> dict[str, int]:  # fmt: skip
    """Up to ``limit`` accounts of the directory after ``after``, in the directory's order,
    without a state at ``end_us`` under ``as_of``'s rules, whose health row is not
    stale-and-unclaimed, with their health-cache stamps (read before the facts are: ``store``).
    A caller filling the history passes the last account it was given as ``after``: each call
    then reads on from there instead of passing every account already kept again (which made
    a fill quadratic in the number of accounts)."""
    a, h, t = accounts.TABLES.accounts.c, health_cache.TABLE.c, TABLE.c
    kept = exists().where(t.account_id == a.account_id, t.end_us == end_us,
                          t.policy == health_cache.policy_key(as_of))  # fmt: skip
    query = (
        select(a.account_id, h.stamp).join_from(accounts.TABLES.accounts, health_cache.TABLE,
                                                h.account_id == a.account_id)
        .where(~kept, h.valid_until_us != health_cache.UNCLAIMED)
        .order_by(a.account_id).limit(limit)
    )  # fmt: skip
    if after:
        query = query.where(a.account_id > after)
    return {r.account_id: int(r.stamp) for r in conn.execute(query)}


def store(conn: Connection, end_us: int, as_of: AsOf, states: Mapping[str, State],
          stamps: Mapping[str, int]) -> int:  # fmt: skip
    """Keep each state whose account's health-cache stamp is still the one in ``stamps`` (no
    batch changed it since it was read), replacing a state kept under other rules; returns how
    many were kept. On PostgreSQL the health rows are share-locked until commit, and rows a
    batch holds are skipped: that batch deletes what it changes after its ``touch`` of them."""
    state_figures.hold(conn)  # no sum is computed from states half stored
    ids = sorted(a for a in states if a in stamps)
    if not ids:
        return 0
    h = health_cache.TABLE.c
    current = select(h.account_id, h.stamp).where(h.account_id.in_(ids))
    if conn.dialect.name == "postgresql":
        current = current.with_for_update(read=True, skip_locked=True)
    same = [r.account_id for r in conn.execute(current) if int(r.stamp) == stamps[r.account_id]]
    if not same:
        return 0
    key = health_cache.policy_key(as_of)
    rows = [{"end_us": end_us, "account_id": a, "policy": key, "score": states[a].score,
             **states[a].columns()}
            for a in sorted(same)]  # fmt: skip
    stmt, params = bulk_insert(conn, TABLE, rows)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=[TABLE.c.end_us, TABLE.c.account_id],
        set_={c: stmt.excluded[c] for c in rows[0] if c not in ("end_us", "account_id")},
    ), params)  # fmt: skip
    return len(rows)


def prune(conn: Connection, keep: Sequence[int], as_of: AsOf) -> int:
    """Delete the states of ends not in ``keep`` or kept under other rules; returns how many."""
    state_figures.hold(conn)
    t = TABLE.c
    stale = t.policy != health_cache.policy_key(as_of)
    if keep:
        stale = or_(stale, t.end_us.not_in(list(keep)))
    result = conn.execute(delete(TABLE).where(stale) if keep else delete(TABLE))
    return max(0, int(result.rowcount or 0))


def counts(conn: Connection) -> int:
    """How many states are kept."""
    return int(conn.execute(select(func.count()).select_from(TABLE)).scalar_one())


def progress(conn: Connection, keep: Sequence[int], as_of: AsOf) -> tuple[int, int]:
    """(states kept at the ends ``keep`` under ``as_of``'s rules, states missing there: one per
    end and account of the directory not kept yet)."""
    if not keep:
        return 0, 0
    t = TABLE.c
    ours = (t.end_us.in_(list(keep)), t.policy == health_cache.policy_key(as_of))
    kept = conn.execute(select(func.count()).select_from(TABLE).where(*ours)).scalar_one()
    every = conn.execute(select(func.count()).select_from(accounts.TABLES.accounts)).scalar_one()
    return int(kept), max(0, len(keep) * int(every) - int(kept))
