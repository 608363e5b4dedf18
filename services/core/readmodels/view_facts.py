"""Loads the facts the one-voice rules need, for one account group or for every account.

Only rows that can matter at ``as_of`` are read: the 90-day window, open items, and offers that
may still be live. ``account_ids=None`` loads every account (the accounts list sorted by health).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    case,
    exists,
    func,
    not_,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.orm import aliased

from services.core.readmodels import accounts, leadership, onevoice, timeline
from services.core.view_rules import (
    ActorTouches,
    AsOf,
    Commitment,
    ExecutiveTouch,
    Facts,
    Message,
    Ticket,
)

Ids = Sequence[str] | None


def _among(column: Any, account_ids: Ids) -> ColumnElement[bool]:
    return true() if account_ids is None else column.in_(list(account_ids))


def load_facts(
    conn: Connection, account_ids: Ids, as_of: AsOf, *, open_only: bool = False
) -> dict[str, Facts]:
    """Facts per account id. ``open_only`` skips closed commitments and old closed tickets,
    which only the view's counts need."""
    facts: dict[str, Facts] = {}

    def of(account_id: str) -> Facts:
        return facts.setdefault(account_id, Facts())

    a = accounts.TABLES.accounts
    for r in conn.execute(
        select(a.c.account_id, a.c.last_touch_us, a.c.last_touch_event_id).where(
            _among(a.c.account_id, account_ids)
        )
    ):
        of(r.account_id).last_touch_us = r.last_touch_us
        of(r.account_id).last_touch_event_id = r.last_touch_event_id
    # The directory keeps the latest touch whatever its date; health wants the latest up to now.
    future = [a for a, f in facts.items() if (f.last_touch_us or 0) > as_of.now_us]
    until_now = _last_touch_until(conn, future, as_of)
    for account_id in future:
        us, event_id = until_now.get(account_id, (None, None))
        of(account_id).last_touch_us, of(account_id).last_touch_event_id = us, event_id
    for account_id, actor in _actors(conn, account_ids, as_of):
        of(account_id).actors_90d.append(actor)
    for account_id, commitment in _commitments(conn, account_ids, as_of, open_only):
        of(account_id).commitments.append(commitment)
    for account_id, ticket in _tickets(conn, account_ids, as_of, open_only):
        of(account_id).tickets.append(ticket)
    for account_id, message in _messages(conn, account_ids, as_of):
        of(account_id).messages.append(message)
    for account_id, touch in executive_touches(conn, account_ids, as_of.since(90), as_of.now_us):
        of(account_id).executive_touches.append(touch)
    c = onevoice.TABLES.csat
    for score in conn.execute(
        select(c.c.account_id, c.c.event_id, c.c.score, c.c.at_us).where(
            _among(c.c.account_id, account_ids), c.c.at_us.between(as_of.since(90), as_of.now_us)
        )
    ):
        of(score.account_id).csat.append((score.event_id, score.score, score.at_us))
    return facts


def _last_touch_until(
    conn: Connection, account_ids: Sequence[str], as_of: AsOf
) -> dict[str, tuple[int, str]]:
    """The latest touch dated up to now of each of ``account_ids``."""
    if not account_ids:
        return {}
    e = timeline.TABLES.entries
    rank = func.row_number().over(
        partition_by=e.c.account_id,
        order_by=(e.c.occurred_us.desc(), e.c.partition.desc(), e.c.offset.desc()),
    )
    inner = (
        select(e.c.account_id, e.c.occurred_us, e.c.event_id, rank.label("rank"))
        .where(e.c.account_id.in_(list(account_ids)), e.c.occurred_us <= as_of.now_us,
               e.c.type != "account.registered")
        .subquery()
    )  # fmt: skip
    rows = conn.execute(select(inner).where(inner.c.rank == 1))
    return {r.account_id: (r.occurred_us, r.event_id) for r in rows}


def _touches_90d(account_ids: Ids, as_of: AsOf) -> list[ColumnElement[bool]]:
    e = timeline.TABLES.entries
    return [
        _among(e.c.account_id, account_ids),
        e.c.occurred_us.between(as_of.since(90), as_of.now_us),
        e.c.type != "account.registered",
    ]


def _actors(conn: Connection, account_ids: Ids, as_of: AsOf) -> list[tuple[str, ActorTouches]]:
    e, ev = timeline.TABLES.entries, timeline.TABLES.events
    rows = conn.execute(
        select(e.c.account_id, ev.c.actor_id, e.c.department, func.count().label("n"))
        .join(ev, ev.c.event_id == e.c.event_id)
        .where(*_touches_90d(account_ids, as_of))
        .group_by(e.c.account_id, ev.c.actor_id, e.c.department)
    )
    return [(r.account_id, ActorTouches(r.actor_id, r.department, int(r.n))) for r in rows]


def group_actors(conn: Connection, account_ids: Sequence[str], as_of: AsOf) -> list[ActorTouches]:
    """Touches per employee in the 90-day window over several accounts, each event once."""
    e, ev = timeline.TABLES.entries, timeline.TABLES.events
    touches = (
        select(e.c.event_id, ev.c.actor_id, e.c.department)
        .join(ev, ev.c.event_id == e.c.event_id)
        .where(*_touches_90d(account_ids, as_of))
        .distinct()
        .subquery()
    )
    rows = conn.execute(
        select(touches.c.actor_id, touches.c.department, func.count().label("n")).group_by(
            touches.c.actor_id, touches.c.department
        )
    )
    return [ActorTouches(r.actor_id, r.department, int(r.n)) for r in rows]


def touches_by(conn: Connection, account_ids: Ids, as_of: AsOf, actor_id: str) -> list[str]:
    """The 50 latest event ids of ``actor_id``'s touches in the 90-day window."""
    e, ev = timeline.TABLES.entries, timeline.TABLES.events
    return list(
        conn.execute(
            select(e.c.event_id)
            .join(ev, ev.c.event_id == e.c.event_id)
            .where(*_touches_90d(account_ids, as_of), ev.c.actor_id == actor_id)
            .order_by(e.c.occurred_us.desc(), e.c.partition.desc(), e.c.offset.desc())
            .limit(50)
        ).scalars().unique()
    )  # fmt: skip


def pressure(conn: Connection, account_ids: Ids, as_of: AsOf) -> dict[str, dict[str, int]]:
    """Touches per department in the 7/30/90-day windows."""
    e = timeline.TABLES.entries
    touches = (
        select(e.c.event_id, e.c.department, e.c.occurred_us)
        .where(*_touches_90d(account_ids, as_of))
        .distinct()  # an event on a parent and its child counts once
        .subquery()
    )
    in_7 = func.sum(case((touches.c.occurred_us >= as_of.since(7), 1), else_=0))
    in_30 = func.sum(case((touches.c.occurred_us >= as_of.since(30), 1), else_=0))
    rows = conn.execute(
        select(touches.c.department, in_7.label("d7"), in_30.label("d30"),
               func.count().label("d90"))
        .group_by(touches.c.department)
    )  # fmt: skip
    return {r.department: {"7d": int(r.d7), "30d": int(r.d30), "90d": int(r.d90)} for r in rows}


def _commitments(
    conn: Connection, account_ids: Ids, as_of: AsOf, open_only: bool
) -> list[tuple[str, Commitment]]:
    t = onevoice.TABLES.commitments
    conditions = [_among(t.c.account_id, account_ids)]
    if open_only:
        conditions.append(or_(t.c.closed_us.is_(None), t.c.closed_us > as_of.now_us))
    return [
        (r.account_id, Commitment(
            r.commitment_id, r.made_event_id, r.made_us, r.text,
            None if r.made_by is None else json.loads(r.made_by), r.department, r.due_us,
            r.closed_state, r.closed_event_id, r.closed_us))
        for r in conn.execute(select(t).where(*conditions))
    ]  # fmt: skip


def _tickets(
    conn: Connection, account_ids: Ids, as_of: AsOf, open_only: bool
) -> list[tuple[str, Ticket]]:
    t = onevoice.TABLES.tickets
    conditions = [_among(t.c.account_id, account_ids)]
    if open_only:
        conditions.append(or_(
            t.c.resolved_us.is_(None), t.c.resolved_us > as_of.now_us,
            and_(t.c.complaint.is_(True), t.c.opened_us >= as_of.since(90)),
        ))  # fmt: skip
    return [
        (r.account_id, Ticket(
            r.ticket_id, r.opened_event_id, r.opened_us, r.subject, r.category, r.category_key,
            r.severity, bool(r.complaint), r.resolved_us))
        for r in conn.execute(select(t).where(*conditions))
    ]  # fmt: skip


def _messages(conn: Connection, account_ids: Ids, as_of: AsOf) -> list[tuple[str, Message]]:
    """Campaigns and offers that may be live: in the 90-day window or valid beyond now, and not
    replaced by a later proposal with the same id."""
    m = onevoice.TABLES.messages
    later = aliased(m)
    replaced = exists().where(
        later.c.account_id == m.c.account_id, later.c.kind == "proposal",
        later.c.ref_id == m.c.ref_id, later.c.at_us <= as_of.now_us,
        tuple_(later.c.at_us, later.c.partition, later.c.offset)
        > tuple_(m.c.at_us, m.c.partition, m.c.offset),
    )  # fmt: skip
    rows = conn.execute(
        select(m).where(
            _among(m.c.account_id, account_ids),
            m.c.at_us <= as_of.now_us,
            or_(m.c.at_us >= as_of.since(90), m.c.valid_until_us > as_of.now_us),
            or_(m.c.kind != "proposal", not_(replaced)),
        )
    )
    return [
        (r.account_id, Message(
            r.event_id, r.kind, r.ref_id, r.name, r.channel, r.product, r.product_key,
            r.discount_pct, r.terms, r.amount, r.currency, r.valid_until_us, r.department,
            json.loads(r.actor), r.summary, (r.at_us, r.partition, r.offset)))
        for r in rows
    ]  # fmt: skip


def executive_touches(
    conn: Connection, account_ids: Ids, from_us: int, to_us: int, *, latest_only: bool = False
) -> list[tuple[str, ExecutiveTouch]]:
    """Executive touches in ``[from_us, to_us]``, oldest first (or only the latest one)."""
    c = leadership.TABLES.contacts
    order = (c.c.at_us, c.c.partition, c.c.offset)
    stmt = select(c).where(_among(c.c.account_id, account_ids), c.c.at_us.between(from_us, to_us))
    if latest_only:
        stmt = stmt.order_by(*(o.desc() for o in order)).limit(1)
    else:
        stmt = stmt.order_by(*order)
    return [
        (r.account_id, ExecutiveTouch(
            r.event_id, r.at_us, json.loads(r.executive), r.type, r.summary,
            json.loads(r.details)))
        for r in conn.execute(stmt)
    ]  # fmt: skip


def relationships(conn: Connection, account_ids: Ids, as_of: AsOf) -> list[dict[str, Any]]:
    """Per customer contact: which of our people touched them, how often, last when."""
    c = onevoice.TABLES.contacts
    where = [_among(c.c.account_id, account_ids), c.c.at_us <= as_of.now_us]
    # An event on a parent and its child is stored once per account: count events, not rows.
    recent = func.count(func.distinct(case((c.c.at_us >= as_of.since(90), c.c.event_id))))
    counts = {
        (r.contact_key, r.actor_id): (int(r.n), int(r.n90))
        for r in conn.execute(
            select(c.c.contact_key, c.c.actor_id, func.count(func.distinct(c.c.event_id))
                   .label("n"), recent.label("n90"))
            .where(*where).group_by(c.c.contact_key, c.c.actor_id)
        )
    }  # fmt: skip
    rank = (
        func.row_number()
        .over(partition_by=(c.c.contact_key, c.c.actor_id),
              order_by=(c.c.at_us.desc(), c.c.partition.desc(), c.c.offset.desc()))
        .label("rank")
    )  # fmt: skip
    inner = select(c, rank).where(*where).subquery()
    latest = conn.execute(select(inner).where(inner.c.rank == 1)).all()
    contacts: dict[str, dict[str, Any]] = {}
    for r in sorted(latest, key=lambda r: (r.at_us, r.partition, r.offset)):
        entry = contacts.setdefault(r.contact_key, {"people": []})
        entry["contact"] = json.loads(r.contact_pii)  # the latest wins
        n, n90 = counts[(r.contact_key, r.actor_id)]
        entry["people"].append({
            "employee": json.loads(r.actor), "touches": n, "touches_90d": n90,
            "last_at": timeline.from_micros(r.at_us), "last_event_id": r.event_id,
        })  # fmt: skip
    found = []
    for key, entry in sorted(contacts.items()):
        entry["people"].sort(key=lambda p: (-p["touches"], p["employee"]["id"]))
        found.append({"contact_key": key, **entry})
    return found
