"""Loads the facts the one-voice rules need, for one account group or for every account.

Only rows that can matter at ``as_of`` are read: the 90-day window, open items, and offers that
may still be live. ``account_ids=None`` loads every account (the accounts list sorted by health,
the coverage report). Statements are built once (``_statement``) and bound per call: building
SQLAlchemy statements per request cost more than running them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    bindparam,
    case,
    exists,
    func,
    not_,
    or_,
    select,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.orm import aliased

from services.core.readmodels import accounts, leadership, onevoice, timeline
from services.core.view_rules import (
    ActorTouches,
    AsOf,
    Commitment,
    Contract,
    ExecutiveTouch,
    Facts,
    Handoff,
    Message,
    Need,
    OrderTotal,
    Ticket,
    iso,
)

Ids = Sequence[str] | None
_CHUNK = 500
Params = dict[str, Any]


def _among(column: Any, by_ids: bool) -> ColumnElement[bool]:
    return column.in_(bindparam("ids", expanding=True)) if by_ids else true()


def _params(account_ids: Ids, as_of: AsOf) -> Params:
    params: Params = {"now": as_of.now_us, "since90": as_of.since(90),
                      "since365": as_of.since(365),
                      "since_recurring": as_of.since(as_of.policy.recurring_days)}  # fmt: skip
    if account_ids is not None:
        params["ids"] = list(account_ids)
    return params


# -- statements (built once per shape) ---------------------------------------------------------


@cache
def _statement(name: str, by_ids: bool, open_only: bool = False) -> Select[Any]:
    return _BUILDERS[name](by_ids, open_only)


def _last_touches(by_ids: bool, _: bool) -> Select[Any]:
    a = accounts.TABLES.accounts
    return select(a.c.account_id, a.c.last_touch_us, a.c.last_touch_event_id).where(
        _among(a.c.account_id, by_ids)
    )


def _people_rows(by_ids: bool) -> Any:
    """Each touch in the 90-day window once per person of ours in it: the actor (from the
    event) and every participant, with that person's department."""
    e, ev, pa = timeline.TABLES.entries, timeline.TABLES.events, timeline.TABLES.participants
    window = (_among(e.c.account_id, by_ids),
              e.c.occurred_us.between(bindparam("since90"), bindparam("now")),
              e.c.type != "account.registered")  # fmt: skip
    columns = (e.c.account_id, e.c.event_id, e.c.occurred_us, e.c.partition, e.c.offset)
    actors = (
        select(*columns, e.c.department, ev.c.actor_id)
        .join(ev, ev.c.event_id == e.c.event_id).where(*window)
    )  # fmt: skip
    participants = (
        select(*columns, pa.c.department, pa.c.person_id.label("actor_id"))
        .join(pa, pa.c.event_id == e.c.event_id).where(*window)
    )  # fmt: skip
    return union_all(actors, participants).subquery()


def _touch_rows(by_ids: bool, several: bool) -> Select[Any]:
    """Each touch in the 90-day window once per person (with ``several`` accounts, an event
    naming a parent and its child too)."""
    t = _people_rows(by_ids)
    stmt = select(t.c.event_id, t.c.occurred_us, t.c.partition, t.c.offset, t.c.department,
                  t.c.actor_id)  # fmt: skip
    return stmt.distinct() if several else stmt


def _actor_counts(by_ids: bool, _: bool) -> Select[Any]:
    t = _people_rows(by_ids)
    return select(t.c.account_id, t.c.actor_id, t.c.department, func.count().label("n")).group_by(
        t.c.account_id, t.c.actor_id, t.c.department
    )


def _commitments(by_ids: bool, open_only: bool) -> Select[Any]:
    t = onevoice.TABLES.commitments
    where = [_among(t.c.account_id, by_ids)]
    if open_only:  # and every prevention: a fix counts whenever it was recorded
        where.append(or_(t.c.closed_us.is_(None), t.c.closed_us > bindparam("now"),
                         t.c.ticket_id.is_not(None)))  # fmt: skip
    return select(t).where(*where)


def _tickets(by_ids: bool, open_only: bool) -> Select[Any]:
    t, c = onevoice.TABLES.tickets, onevoice.TABLES.commitments
    where = [_among(t.c.account_id, by_ids)]
    if open_only:
        where.append(or_(
            t.c.resolved_us.is_(None), t.c.resolved_us > bindparam("now"),
            and_(t.c.complaint.is_(True), t.c.opened_us >= bindparam("since_recurring")),
            exists().where(  # the ticket of a prevention: its category may be the fix's
                c.c.account_id == t.c.account_id, c.c.ticket_id == t.c.ticket_id),
        ))  # fmt: skip
    return select(t).where(*where)


def _messages(by_ids: bool, _: bool) -> Select[Any]:
    """Campaigns and offers that may be live: in the 90-day window or valid beyond now, and not
    replaced by a later proposal with the same id."""
    m = onevoice.TABLES.messages
    later = aliased(m)
    replaced = exists().where(
        later.c.account_id == m.c.account_id, later.c.kind == "proposal",
        later.c.ref_id == m.c.ref_id, later.c.at_us <= bindparam("now"),
        tuple_(later.c.at_us, later.c.partition, later.c.offset)
        > tuple_(m.c.at_us, m.c.partition, m.c.offset),
    )  # fmt: skip
    return select(m).where(
        _among(m.c.account_id, by_ids),
        m.c.at_us <= bindparam("now"),
        or_(m.c.at_us >= bindparam("since90"), m.c.valid_until_us > bindparam("now")),
        or_(m.c.kind != "proposal", not_(replaced)),
    )


def _executive(by_ids: bool, _: bool) -> Select[Any]:
    c = leadership.TABLES.contacts
    return select(c).where(
        _among(c.c.account_id, by_ids), c.c.at_us.between(bindparam("since90"), bindparam("now"))
    )


def _executive_last(by_ids: bool, _: bool) -> Select[Any]:
    """Every executive's row of the latest executive touch up to now."""
    c = leadership.TABLES.contacts
    latest = (
        select(c.c.at_us, c.c.partition, c.c.offset)
        .where(_among(c.c.account_id, by_ids), c.c.at_us <= bindparam("now"))
        .order_by(c.c.at_us.desc(), c.c.partition.desc(), c.c.offset.desc())
        .limit(1)
        .subquery()
    )
    return select(c).join(latest, and_(
        c.c.at_us == latest.c.at_us, c.c.partition == latest.c.partition,
        c.c.offset == latest.c.offset,
    )).where(_among(c.c.account_id, by_ids))  # fmt: skip


def _csat(by_ids: bool, _: bool) -> Select[Any]:
    c = onevoice.TABLES.csat
    return select(c.c.account_id, c.c.event_id, c.c.score, c.c.at_us).where(
        _among(c.c.account_id, by_ids), c.c.at_us.between(bindparam("since90"), bindparam("now"))
    )


def _signals(by_ids: bool, _: bool) -> Select[Any]:
    """Signals of the 90-day window, each with its first follow-up when that came by now (the
    projection keeps each signal's first follow-up in the whole log: a later one is not yet)."""
    s = onevoice.TABLES.signals
    came = s.c.followed_us <= bindparam("now")
    return select(
        s, case((came, s.c.followed_us)).label("first_us"),
        case((came, s.c.followed_event_id)).label("first_event_id"),
    ).where(
        _among(s.c.account_id, by_ids), s.c.at_us.between(bindparam("since90"), bindparam("now"))
    )  # fmt: skip


def _needs(by_ids: bool, _: bool) -> Select[Any]:
    """Needs open now, or identified or addressed in the 90-day window."""
    n = onevoice.TABLES.needs
    return select(n).where(
        _among(n.c.account_id, by_ids),
        or_(n.c.addressed_us.is_(None), n.c.addressed_us > bindparam("now"),
            n.c.addressed_us >= bindparam("since90"),
            n.c.identified_us >= bindparam("since90")),
    )  # fmt: skip


def _order_amounts(by_ids: bool, _: bool) -> Select[Any]:
    """Every order up to now: summed in Python (``math.fsum``), whose result does not depend on
    the order rows come back in, as a database's floating-point SUM does."""
    o = onevoice.TABLES.orders
    return select(o.c.account_id, o.c.currency, o.c.amount, o.c.placed_us).where(
        _among(o.c.account_id, by_ids), o.c.placed_us <= bindparam("now"))  # fmt: skip


def _order_last(by_ids: bool, _: bool) -> Select[Any]:
    """Each account's latest order up to now."""
    o = onevoice.TABLES.orders
    ranked = select(o, func.row_number().over(
        partition_by=o.c.account_id,
        order_by=(o.c.placed_us.desc(), o.c.placed_partition.desc(), o.c.placed_offset.desc()),
    ).label("rank")).where(_among(o.c.account_id, by_ids),
                           o.c.placed_us <= bindparam("now")).subquery()  # fmt: skip
    return select(ranked).where(ranked.c.rank == 1)


def _contracts(by_ids: bool, _: bool) -> Select[Any]:
    c = onevoice.TABLES.contracts
    return select(c).where(_among(c.c.account_id, by_ids))


def _churns(by_ids: bool, _: bool) -> Select[Any]:
    c = onevoice.TABLES.churns
    return select(c).where(_among(c.c.account_id, by_ids), c.c.at_us <= bindparam("now"))


def _contacts(by_ids: bool, several: bool) -> Select[Any]:
    """Per (contact, employee): the latest touch up to now, how many, how many in 90 days."""
    c = onevoice.TABLES.contacts
    chosen = (
        select(c.c.contact_key, c.c.actor_id, c.c.event_id, c.c.at_us, c.c.partition,
               c.c.offset, c.c.contact_pii, c.c.actor)
        .where(_among(c.c.account_id, by_ids), c.c.at_us <= bindparam("now"))
    )  # fmt: skip
    rows = (chosen.distinct() if several else chosen).subquery()  # parent + child: once
    pair = (rows.c.contact_key, rows.c.actor_id)
    ranked = select(
        rows,
        func.row_number().over(partition_by=pair, order_by=(
            rows.c.at_us.desc(), rows.c.partition.desc(), rows.c.offset.desc())).label("rank"),
        func.count().over(partition_by=pair).label("n"),
        func.sum(case((rows.c.at_us >= bindparam("since90"), 1), else_=0))
        .over(partition_by=pair).label("n90"),
    ).subquery()  # fmt: skip
    return select(ranked).where(ranked.c.rank == 1)


_BUILDERS: dict[str, Callable[[bool, bool], Select[Any]]] = {
    "last_touches": _last_touches, "touch_rows": _touch_rows, "actor_counts": _actor_counts,
    "commitments": _commitments, "tickets": _tickets, "messages": _messages,
    "executive": _executive, "executive_last": _executive_last, "csat": _csat,
    "contacts": _contacts, "signals": _signals, "needs": _needs, "order_amounts": _order_amounts,
    "order_last": _order_last, "contracts": _contracts, "churns": _churns,
}  # fmt: skip


# -- facts -------------------------------------------------------------------------------------


def load_facts(
    conn: Connection, account_ids: Ids, as_of: AsOf, *, open_only: bool = False,
    orders: bool = True,
) -> dict[str, Facts]:  # fmt: skip
    """Facts per account id (each account alone, not merged with its children).

    ``open_only`` skips closed commitments and old closed tickets, which only the view's counts
    need, and the needs, which no rule reads; without ``orders`` the orders are not read (only
    the value sort and the view show them)."""
    by_ids, params = account_ids is not None, _params(account_ids, as_of)
    facts: dict[str, Facts] = {}

    def of(account_id: str) -> Facts:
        return facts.setdefault(account_id, Facts())

    def rows(name: str) -> Any:
        return conn.execute(_statement(name, by_ids, open_only), params)

    for r in rows("last_touches"):
        of(r.account_id).last_touch_us = r.last_touch_us
        of(r.account_id).last_touch_event_id = r.last_touch_event_id
    _until_now(conn, facts, as_of)
    for r in rows("actor_counts"):
        of(r.account_id).actors_90d.append(ActorTouches(r.actor_id, r.department, int(r.n)))
    _add_facts(rows, of, params["since365"], needs=not open_only, orders=orders)
    return facts


def _add_facts(
    rows: Callable[[str], Any], of: Callable[[str], Facts], since365: int, *,
    needs: bool = True, orders: bool = True,
) -> None:  # fmt: skip
    for r in rows("commitments"):
        of(r.account_id).commitments.append(Commitment(
            r.commitment_id, r.made_event_id, r.made_us, r.text,
            None if r.made_by is None else _json(r.made_by), r.department, r.due_us,
            r.closed_state, r.closed_event_id, r.closed_us, r.owner_id,
            r.ticket_id, r.cause_key, r.cause_text, r.account_id))  # fmt: skip
    for r in rows("tickets"):
        of(r.account_id).tickets.append(Ticket(
            r.ticket_id, r.opened_event_id, r.opened_us, r.subject, r.category, r.category_key,
            r.severity, bool(r.complaint), r.resolved_us, r.resolved_event_id,
            r.account_id))  # fmt: skip
    for r in rows("messages"):
        of(r.account_id).messages.append(Message(
            r.event_id, r.kind, r.ref_id, r.name, r.channel, r.product, r.product_key,
            r.discount_pct, r.terms, r.amount, r.currency, r.valid_until_us, r.department,
            _json(r.actor), r.summary, (r.at_us, r.partition, r.offset)))  # fmt: skip
    for account_id, touch in _executive_touches(rows("executive")):
        of(account_id).executive_touches.append(touch)
    for r in rows("csat"):
        of(r.account_id).csat.append((r.event_id, r.score, r.at_us))
    for account_id, handoff in _handoffs(rows):
        of(account_id).handoffs.append(handoff)
    _add_value(rows, of, since365, needs=needs, orders=orders)


def _side_key(r: Any, side: str) -> tuple[int, int, int] | None:
    us = getattr(r, f"{side}_us")
    if us is None:
        return None
    return (us, getattr(r, f"{side}_partition"), getattr(r, f"{side}_offset"))


def _add_value(
    rows: Callable[[str], Any], of: Callable[[str], Facts], since365: int, *,
    needs: bool, orders: bool,
) -> None:  # fmt: skip
    """Needs, orders, contracts and churns."""
    for r in rows("needs") if needs else ():
        of(r.account_id).needs.append(Need(
            r.need_id, r.identified_event_id, r.identified_us, r.text, r.category, r.priority,
            r.department, None if r.identified_by is None else _json(r.identified_by),
            r.addressed_event_id, r.addressed_us, r.how,
            None if r.on_site is None else bool(r.on_site),
            None if r.addressed_by is None else _json(r.addressed_by), r.account_id))  # fmt: skip
    amounts: dict[tuple[str, str], list[tuple[float, int]]] = {}
    for r in rows("order_amounts") if orders else ():
        amounts.setdefault((r.account_id, r.currency), []).append((float(r.amount or 0),
                                                                   r.placed_us))  # fmt: skip
    for (account_id, currency), found in sorted(amounts.items()):
        recent = [a for a, at in found if at >= since365]
        of(account_id).order_totals.append(OrderTotal(
            currency, len(found), math.fsum(a for a, _ in found), len(recent),
            math.fsum(recent)))  # fmt: skip
    for r in rows("order_last") if orders else ():
        facts = of(r.account_id)
        key = (r.placed_us, r.placed_partition, r.placed_offset)
        if facts.last_order is None or facts.last_order["_key"] < key:
            facts.last_order = {
                "_key": key, "order_id": r.order_id, "at": iso(r.placed_us),
                "amount": r.amount, "currency": r.currency, "event_id": r.placed_event_id,
                "products": json.loads(r.products or "[]"),
            }  # fmt: skip
    for r in rows("contracts"):
        of(r.account_id).contracts.append(Contract(
            r.contract_id, r.scheduled_event_id, _side_key(r, "scheduled"), r.renews_us,
            r.amount, r.currency, r.renewed_event_id, _side_key(r, "renewed"),
            r.next_renews_us, r.renewed_amount, r.renewed_currency))  # fmt: skip
    for r in rows("churns"):
        of(r.account_id).churns.append((r.event_id, r.at_us, r.contract_id, r.reason))


def handoffs_of(conn: Connection, account_ids: Sequence[str], as_of: AsOf) -> list[
        tuple[str, Handoff]]:  # fmt: skip
    """The handoffs of these accounts (signals of the 90-day window and their follow-ups)."""
    found = []
    ids = list(account_ids)
    for start in range(0, len(ids), _CHUNK):  # bounded IN lists (SQLite's variable limit)
        params = _params(ids[start : start + _CHUNK], as_of)

        def rows(name: str, bound: Params = params) -> Any:
            return conn.execute(_statement(name, True), bound)

        found += _handoffs(rows)
    return found


def _handoffs(rows: Callable[[str], Any]) -> list[tuple[str, Handoff]]:
    """Each signal in the window with its first follow-up up to now."""
    return [(r.account_id, Handoff(
        r.event_id, r.type, r.at_us, r.contact_key,
        None if r.contact_pii is None else json.loads(r.contact_pii), r.campaign_id,
        r.detail, _json(r.actor), r.summary, r.first_us, r.first_event_id,
    )) for r in rows("signals")]  # fmt: skip


def _executive_touches(rows: Any) -> list[tuple[str, ExecutiveTouch]]:
    """One touch per (account, event), naming every executive in it: the actor first, then the
    participants by id."""
    by_event: dict[tuple[str, str], list[Any]] = {}
    for r in rows:
        by_event.setdefault((r.account_id, r.event_id), []).append(r)
    found = []
    for key, group in sorted(by_event.items()):
        group.sort(key=lambda r: (r.role != "actor", r.executive_id))
        r = group[0]
        found.append((key[0], ExecutiveTouch(
            r.event_id, r.at_us, _json(r.executive), r.type, r.summary, json.loads(r.details),
            tuple(_json(x.executive) for x in group),
        )))  # fmt: skip
    return found


def _until_now(conn: Connection, facts: dict[str, Facts], as_of: AsOf) -> None:
    """The directory keeps the latest touch whatever its date; the rules want the latest one
    up to now. Looked up only for the (rare) accounts whose latest touch is in the future."""
    future = [a for a, f in facts.items() if (f.last_touch_us or 0) > as_of.now_us]
    if not future:
        return
    e = timeline.TABLES.entries
    rank = func.row_number().over(
        partition_by=e.c.account_id,
        order_by=(e.c.occurred_us.desc(), e.c.partition.desc(), e.c.offset.desc()),
    )
    inner = (
        select(e.c.account_id, e.c.occurred_us, e.c.event_id, rank.label("rank"))
        .where(e.c.account_id.in_(future), e.c.occurred_us <= as_of.now_us,
               e.c.type != "account.registered")
        .subquery()
    )  # fmt: skip
    found = {r.account_id: r for r in conn.execute(select(inner).where(inner.c.rank == 1))}
    for account_id in future:
        r = found.get(account_id)
        facts[account_id].last_touch_us = None if r is None else r.occurred_us
        facts[account_id].last_touch_event_id = None if r is None else r.event_id


# -- one account group (the view) --------------------------------------------------------------


@dataclass
class Group:
    """What the view reads for an account and its children, each event counted once."""

    facts: Facts
    touches: list[Any] = field(default_factory=list)  # rows: event_id, occurred_us, ...
    contacts: list[Any] = field(default_factory=list)
    executive_last: ExecutiveTouch | None = None


def group_reads(group: Sequence[str], as_of: AsOf) -> list[tuple[Any, Params]]:
    """The reads ``group_from`` assembles the group from (for ``sql.read_together``). The latest
    executive touch before the window is read whether or not the window has one."""
    params = _params(group, as_of)
    several = len(group) > 1
    return [(_statement(n, True, several and n in ("touch_rows", "contacts")), params)
            for n in _GROUP_READS]  # fmt: skip


def group_from(
    conn: Connection, read: Sequence[Sequence[Any]], group: Sequence[str], as_of: AsOf,
    last_touches: dict[str, tuple[int | None, str | None]],
) -> Group:  # fmt: skip
    """The group from the rows of ``group_reads`` (one more read for accounts whose latest
    touch is in the future)."""
    fetched = dict(zip(_GROUP_READS, read, strict=True))

    def rows(name: str) -> Any:
        return fetched[name]

    facts = Facts()
    per = {a: Facts(us, event_id) for a, (us, event_id) in last_touches.items()}
    _until_now(conn, per, as_of)
    lasts = [(f.last_touch_us, f.last_touch_event_id or "") for f in per.values()
             if f.last_touch_us is not None]  # fmt: skip
    if lasts:
        facts.last_touch_us, facts.last_touch_event_id = max(lasts)
    touches = list(rows("touch_rows"))
    counts: dict[tuple[str, str], int] = {}
    for t in touches:
        counts[(t.actor_id, t.department)] = counts.get((t.actor_id, t.department), 0) + 1
    facts.actors_90d = [ActorTouches(a, d, n) for (a, d), n in sorted(counts.items())]
    _add_facts(rows, lambda _: facts, as_of.since(365))
    # The latest executive touch up to now: the window's latest, or else an older one.
    recent = max(facts.executive_touches, key=lambda t: (t.at_us, t.event_id), default=None)
    if recent is None:
        last = _executive_touches(rows("executive_last"))
        recent = last[0][1] if last else None
    return Group(facts, touches, list(rows("contacts")), recent)


_GROUP_READS = ("touch_rows", "commitments", "tickets", "messages", "executive", "csat",
                "signals", "needs", "order_amounts", "order_last", "contracts", "churns",
                "executive_last", "contacts")  # fmt: skip


def pressure(touches: Sequence[Any], as_of: AsOf) -> dict[str, dict[str, int]]:
    """Touches per department in the 7/30/90-day windows: an event counts once for each
    department that took part in it (by its actor or a participant); ``None`` holds the
    distinct events of every department together."""
    since7, since30 = as_of.since(7), as_of.since(30)
    counts: dict[str | None, dict[str, int]] = {}
    seen: set[tuple[str, str | None]] = set()
    for t in touches:
        for department in (t.department, None):
            if (t.event_id, department) in seen:
                continue
            seen.add((t.event_id, department))
            c = counts.setdefault(department, {"7d": 0, "30d": 0, "90d": 0})
            c["90d"] += 1
            c["30d"] += t.occurred_us >= since30
            c["7d"] += t.occurred_us >= since7
    return counts  # type: ignore[return-value]


def touches_by(touches: Sequence[Any], actor_id: str) -> list[str]:
    """The 50 latest event ids of ``actor_id``'s touches in the window."""
    mine = sorted(
        ((t.occurred_us, t.partition, t.offset, t.event_id) for t in touches
         if t.actor_id == actor_id), reverse=True)  # fmt: skip
    return [m[3] for m in mine[:50]]


CONTACTS_SHOWN = 50


def relationships(contact_rows: Sequence[Any]) -> tuple[list[dict[str, Any]], int]:
    """Per customer contact: which of our people touched them, how often, last when — the
    ``CONTACTS_SHOWN`` most recently touched contacts, most recent first — and how many there
    are in all."""
    pairs: dict[str, list[Any]] = {}
    latest: dict[str, Any] = {}
    for r in contact_rows:
        pairs.setdefault(r.contact_key, []).append(r)
        seen = latest.get(r.contact_key)
        if seen is None or (seen.at_us, seen.partition, seen.offset) < (
            r.at_us, r.partition, r.offset):  # fmt: skip
            latest[r.contact_key] = r
    recent = sorted(pairs, key=lambda k: (
        -latest[k].at_us, -latest[k].partition, -latest[k].offset, k))[:CONTACTS_SHOWN]  # fmt: skip
    found = []
    for key in recent:
        people = [{
            "employee": _json(r.actor), "touches": int(r.n), "touches_90d": int(r.n90),
            "last_at": iso(r.at_us), "last_event_id": r.event_id,
        } for r in pairs[key]]  # fmt: skip
        people.sort(key=lambda p: (-p["touches"], p["employee"]["id"]))
        found.append({"contact_key": key, "contact": json.loads(latest[key].contact_pii),
                      "people": people})  # fmt: skip
    return found, len(pairs)


@lru_cache(maxsize=4096)
def _json(text: str) -> Any:
    """Parsed actor JSON: the same few employees recur on every row. Callers must not mutate
    the result (it is shared)."""
    return json.loads(text)
