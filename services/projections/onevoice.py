"""OneVoiceView: commitments, tickets, offers and campaigns, CSAT and customer contacts per account.

Order-independent by construction (see ``services.core.readmodels.onevoice``): lifecycles keep,
per side, the event with the greatest sort key; everything else is inserted once per event id.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import zlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    or_,
    select,
    text,
    tuple_,
    update,
)

from services.core.adapters.sql import insert_ignore, insert_new_keys, json_rows, upsert_newer
from services.core.codec import StoredEvent
from services.core.events import (
    CommitmentClosed,
    CommitmentMade,
    Contact,
    CustomerNeedAddressed,
    CustomerNeedIdentified,
    MarketingCampaignResponded,
    MarketingCampaignSent,
    MarketingContentEngaged,
    MarketingEventAttended,
    SalesOrderPlaced,
    SalesProposalSent,
    SuccessChurned,
    SuccessRenewalScheduled,
    SuccessRenewed,
    SupportCsatRecorded,
    SupportTicketOpened,
    SupportTicketResolved,
    event_payload,
)
from services.core.readmodels import onevoice
from services.core.readmodels.generations import shadow_prefix
from services.core.readmodels.timeline import to_micros
from services.core.view_rules import FOLLOW_UP_DEPARTMENTS
from services.projections.base import Projection, customer_events

Key = tuple[int, int, int]
Key3 = tuple[str, str, str]  # a signal: account, event id, contact key
Row = dict[str, Any]


def _key(stored: StoredEvent) -> Key:
    return (to_micros(stored.event.occurred_at), stored.partition, stored.offset)


def _side(side: str, stored: StoredEvent) -> Row:
    us, partition, offset = _key(stored)
    return {f"{side}_event_id": stored.event_id, f"{side}_us": us,
            f"{side}_partition": partition, f"{side}_offset": offset}  # fmt: skip


def _actor(stored: StoredEvent) -> str:
    return stored.event.actor.model_dump_json(exclude_none=True)


def prevention_id(ticket_id: str) -> str:
    """The commitment id of a ticket's prevention when the event gives none: ``prevent-`` and
    the ticket id, or (for a ticket id too long to fit a commitment id) a digest of it."""
    plain = f"prevent-{ticket_id}"
    if len(plain) <= 256:
        return plain
    return "prevent-" + hashlib.sha256(ticket_id.encode()).hexdigest()


def contact_key(contact: Contact) -> str | None:
    """Who a contact is across events: their id, else their email, else their name; for a
    contact whose personal data is sealed, their id, else the subject of its key (``privacy``:
    one per id, email or name on the account, so the same grouping)."""
    if contact.id:
        return f"id:{contact.id}"
    if contact.subject is not None:  # one key per email, else per name; a title alone: none
        return f"ref:{contact.subject}" if {"n", "e"} & set(contact.sealed_fields) else None
    if contact.email:
        return f"email:{contact.email.casefold()}"
    if contact.name:
        return f"name:{contact.name.casefold()}"
    return None


# pg_advisory_xact_lock(int4, int4): its own key space ("OVFU"; the vault's is another).
_ACCOUNT_LOCKS = 0x4F56_4655
_LOCK_ACCOUNTS = text(
    "SELECT pg_advisory_xact_lock(:cls, k) FROM unnest(CAST(:keys AS integer[])) AS k"
)


def _lock_accounts(conn: Connection, account_ids: set[str]) -> None:
    """PostgreSQL: hold these accounts' handoff lock until the transaction ends (one 32-bit key
    per account, taken in sorted order: two batches never wait for each other in a cycle; two
    accounts sharing a key only wait more). SQLite runs one writer at a time already."""
    if conn.dialect.name == "postgresql" and account_ids:
        keys = sorted({zlib.crc32(a.encode()) - 2**31 for a in account_ids})
        conn.execute(_LOCK_ACCOUNTS, {"cls": _ACCOUNT_LOCKS, "keys": keys})


class OneVoiceView(Projection):
    name = onevoice.NAME

    def __init__(self, tables: onevoice.OneVoiceTables = onevoice.TABLES) -> None:
        self.t = tables

    def in_generation(self, generation: int) -> OneVoiceView:
        return type(self)(
            onevoice.onevoice_tables(MetaData(), shadow_prefix(onevoice.PREFIX, generation))
        )

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        events = customer_events(events)
        batch = _Batch()
        for stored in events:
            batch.add(stored)
        self._merge(conn, self.t.commitments, "commitment_id", batch.commitments)
        self._merge(conn, self.t.tickets, "ticket_id", batch.tickets)
        self._merge(conn, self.t.needs, "need_id", batch.needs)
        self._merge(conn, self.t.orders, "order_id", batch.orders)
        self._merge(conn, self.t.contracts, "contract_id", batch.contracts)
        insert_ignore(conn, self.t.churns, batch.churns)
        insert_ignore(conn, self.t.messages, batch.messages)
        insert_ignore(conn, self.t.csat, batch.csat)
        insert_ignore(conn, self.t.contacts, batch.contacts)
        self._follow_through(conn, batch)

    def _follow_through(self, conn: Connection, batch: _Batch) -> None:
        """Store the batch's signals and follow-ups, then set the first follow-up of the signals
        it can change. Its own signals are looked up from every stored follow-up. Any other
        signal already holds the first of the follow-ups stored before (the invariant this
        keeps), so only the follow-ups this batch stores can take its place: the signals of
        each account and contact key it stores some for, not after the latest of them and not
        answered before the earliest, are compared with those in Python — one statement, no
        lookup per signal (an account's signals nobody followed up cost nothing). A tie in time
        with the stored follow-up is looked up too. The result is the same whatever order
        events were applied in.

        On PostgreSQL the batch first locks its accounts (``_lock_accounts``): two projector
        processes applying a signal and a follow-up of one account at once (a touch naming a
        related account is on another partition) would each miss the other's row."""
        if not batch.signals and not batch.follow_ups:
            return
        _lock_accounts(conn, {r["account_id"] for r in (*batch.signals, *batch.follow_ups)})
        insert_ignore(conn, self.t.signals, batch.signals)
        added = insert_new_keys(conn, self.t.follow_ups, batch.follow_ups,
                                ("account_id", "contact_key", "event_id"))  # fmt: skip
        s = self.t.signals
        ours = {(r["account_id"], r["event_id"], r["contact_key"]) for r in batch.signals}
        # Each pair's follow-ups this batch stored, in log order (time, then partition and
        # offset). One stored before (another copy of an event id) is in the signals already,
        # and its stored position may differ from this copy's.
        pairs: dict[tuple[str, str], list[tuple[int, int, int, str]]] = {}
        for r in batch.follow_ups:
            if (r["account_id"], r["contact_key"], r["event_id"]) not in added:
                continue
            pairs.setdefault((r["account_id"], r["contact_key"]), []).append(
                (r["at_us"], r["partition"], r["offset"], r["event_id"])
            )
        for found in pairs.values():
            found.sort()
        changed: dict[Key3, tuple[int | None, str | None]] = {}
        again = set(ours)  # looked up from the stored follow-ups
        if pairs:
            p = json_rows(conn, [("a", String), ("k", Text), ("lo", BigInteger),
                                 ("hi", BigInteger)], [
                (a, k, found[0][0], found[-1][0]) for (a, k), found in sorted(pairs.items())],
                name="pairs")  # fmt: skip
            rows = conn.execute(select(
                s.c.account_id, s.c.event_id, s.c.contact_key, s.c.at_us, s.c.followed_us,
                s.c.followed_event_id,
            ).join(p, (s.c.account_id == p.c.a) & (s.c.contact_key == p.c.k)).where(
                s.c.at_us <= p.c.hi, or_(s.c.followed_us.is_(None), s.c.followed_us >= p.c.lo),
            )).all()  # fmt: skip
            for a, e, k, at_us, old_us, old_event in rows:
                if (a, e, k) in ours:
                    continue
                found = pairs[(a, k)]
                i = bisect.bisect_left(found, (at_us,))
                if i == len(found):
                    continue
                new_us, _, _, new_event = found[i]
                if old_us is None or new_us < old_us:
                    changed[(a, e, k)] = (new_us, new_event)
                elif new_us == old_us and new_event != old_event:
                    again.add((a, e, k))  # which comes first in the log: look it up
        changed.update(self._looked_up(conn, again))
        if changed:
            conn.execute(update(s).where(
                s.c.account_id == bindparam("a"), s.c.event_id == bindparam("e"),
                s.c.contact_key == bindparam("k"),
            ).values(followed_us=bindparam("u"), followed_event_id=bindparam("f")), [
                {"a": a, "e": e, "k": k, "u": u, "f": f} for (a, e, k), (u, f)
                in sorted(changed.items())])  # fmt: skip

    def _looked_up(self, conn: Connection, keys: set[Key3]) -> dict[Key3, tuple[Any, Any]]:
        """The signals ``keys`` whose first follow-up among every stored one is not the one
        they hold, with that follow-up (``(None, None)``: none), by account, 400 to a
        statement."""
        s, f = self.t.signals, self.t.follow_ups

        def first(column: Any) -> Any:
            return select(column).where(
                f.c.account_id == s.c.account_id, f.c.contact_key == s.c.contact_key,
                f.c.at_us >= s.c.at_us,
            ).order_by(f.c.at_us, f.c.partition, f.c.offset).limit(1).scalar_subquery()  # fmt: skip

        by_account: dict[str, set[str]] = {}
        for a, e, _ in keys:
            by_account.setdefault(a, set()).add(e)
        accounts = sorted(by_account)
        out: dict[Key3, tuple[Any, Any]] = {}
        for start in range(0, len(accounts), 400):
            chunk = accounts[start : start + 400]
            events = sorted({e for account in chunk for e in by_account[account]})
            for a, e, k, old_us, old_event, new_us, new_event in conn.execute(select(
                s.c.account_id, s.c.event_id, s.c.contact_key, s.c.followed_us,
                s.c.followed_event_id, first(f.c.at_us), first(f.c.event_id),
            ).where(s.c.account_id.in_(chunk), s.c.event_id.in_(events))):  # fmt: skip
                if (a, e, k) in keys and (new_us, new_event) != (old_us, old_event):
                    out[(a, e, k)] = (new_us, new_event)
        return out

    def _merge(
        self, conn: Connection, table: Table, id_column: str,
        latest: dict[tuple[str, str, str], tuple[Key, Row]],
    ) -> None:  # fmt: skip
        """Upsert each lifecycle side, keeping the side's event with the greatest sort key."""
        by_side: dict[str, list[Row]] = {}
        for (account_id, item_id, side), (_, row) in sorted(latest.items()):
            by_side.setdefault(side, []).append(
                {"account_id": account_id, id_column: item_id, **row}
            )
        for side, rows in by_side.items():
            upsert_newer(
                conn, table, rows, keys=["account_id", id_column],
                sort=[f"{side}_us", f"{side}_partition", f"{side}_offset"],
                update=[c for c in rows[0] if c not in ("account_id", id_column)],
            )  # fmt: skip

    @property
    def tables(self) -> dict[str, Table]:
        t = self.t
        return {"commitments": t.commitments, "tickets": t.tickets, "messages": t.messages,
                "contacts": t.contacts, "csat": t.csat, "signals": t.signals, "needs": t.needs,
                "orders": t.orders, "contracts": t.contracts, "churns": t.churns,
                "follow_ups": t.follow_ups}  # fmt: skip


def replaced_since(
    conn: Connection, events: Sequence[StoredEvent],
    tables: onevoice.OneVoiceTables = onevoice.TABLES,
) -> dict[str, int]:  # fmt: skip
    """Per account, the earliest time of the rows these events change that are already stored:
    a lifecycle side they replace (a commitment made again, a renewal rescheduled: the view
    keeps each side's latest event) and, for an item's first side, its stored later sides too
    (a commitment made after its close was recorded: its due time judges that close), and the
    preventions of a ticket whose opening they write (a prevention with no cause takes its
    ticket's category, whenever the ticket was opened).
    From there on the account's state may change, before the events' own times. Read before
    the events are applied. An event the batch cannot read is left out (applying it fails the
    same way, and parks it)."""
    batch = _Batch()
    for stored in customer_events(events):
        try:
            batch.add(stored)
        except Exception:  # the projection parks it
            continue
    found: dict[str, int] = {}

    def earliest(rows: Any) -> None:
        for account_id, us in rows:
            if us is not None and (account_id not in found or us < found[account_id]):
                found[account_id] = int(us)

    for table, id_column, latest in (
        (tables.commitments, "commitment_id", batch.commitments),
        (tables.tickets, "ticket_id", batch.tickets),
        (tables.needs, "need_id", batch.needs),
        (tables.orders, "order_id", batch.orders),
        (tables.contracts, "contract_id", batch.contracts),
    ):
        by_side: dict[str, list[tuple[str, str]]] = {}
        for account_id, item_id, side in sorted(latest):
            by_side.setdefault(side, []).append((account_id, item_id))
        # The item's first side (made, opened, identified, placed, scheduled) carries what
        # judges its later ones (a commitment's due time, a ticket's category): writing it
        # changes the item from the earliest of its stored sides (a made side dated after its
        # close), writing a later side from that side's stored time.
        sides = [c for c in table.c if c.name.endswith("_us")
                 and f"{c.name[:-3]}_event_id" in table.c]  # fmt: skip
        for side, keys in by_side.items():
            looked_up = sides if side == sides[0].name[:-3] else [table.c[f"{side}_us"]]
            key = tuple_(table.c.account_id, table.c[id_column])
            for start in range(0, len(keys), 400):  # 2 bound variables a key
                stmt = select(table.c.account_id, *looked_up).where(
                    key.in_(keys[start : start + 400]))  # fmt: skip
                for account_id, *times in conn.execute(stmt):
                    earliest((account_id, us) for us in times)
            if table is tables.tickets and side == "opened":
                c = tables.commitments.c
                for start in range(0, len(keys), 400):
                    chunk = keys[start : start + 400]
                    earliest(conn.execute(select(c.account_id, c.made_us).where(
                        tuple_(c.account_id, c.ticket_id).in_(chunk))))  # fmt: skip
    return found


class _Batch:
    """One batch's rows per table; lifecycle sides reduced to their latest event per key."""

    def __init__(self) -> None:
        self.commitments: dict[tuple[str, str, str], tuple[Key, Row]] = {}
        self.tickets: dict[tuple[str, str, str], tuple[Key, Row]] = {}
        self.messages: list[Row] = []
        self.csat: list[Row] = []
        self.contacts: list[Row] = []
        self.signals: list[Row] = []
        self.needs: dict[tuple[str, str, str], tuple[Key, Row]] = {}
        self.orders: dict[tuple[str, str, str], tuple[Key, Row]] = {}
        self.contracts: dict[tuple[str, str, str], tuple[Key, Row]] = {}
        self.churns: list[Row] = []
        self.follow_ups: list[Row] = []

    def add(self, stored: StoredEvent) -> None:
        account_id, payload = stored.event.account_id, event_payload(stored.event)
        if isinstance(payload, CommitmentMade):
            due = None if payload.due_at is None else to_micros(payload.due_at)
            row = {**_side("made", stored), "text": payload.text, "made_by": _actor(stored),
                   "department": stored.event.actor.department, "due_us": due,
                   "owner_id": None, "ticket_id": None, "cause_key": None,
                   "cause_text": None}  # fmt: skip
            _keep_latest(self.commitments, (account_id, payload.commitment_id, "made"), stored, row)
        elif isinstance(payload, CommitmentClosed):
            row = {**_side("closed", stored), "closed_state": stored.type.split(".")[1]}
            key = (account_id, payload.commitment_id, "closed")
            _keep_latest(self.commitments, key, stored, row)
        elif isinstance(payload, SupportTicketOpened):
            row = {**_side("opened", stored), "subject": payload.subject,
                   "category": payload.category, "category_key": payload.category.casefold(),
                   "severity": payload.severity.value, "complaint": payload.complaint}  # fmt: skip
            _keep_latest(self.tickets, (account_id, payload.ticket_id, "opened"), stored, row)
        elif isinstance(payload, SupportTicketResolved):
            cause, prevention = payload.cause, payload.prevention
            commitment_id = None if prevention is None else (
                prevention.commitment_id or prevention_id(payload.ticket_id))  # fmt: skip
            row = _side("resolved", stored)
            _keep_latest(self.tickets, (account_id, payload.ticket_id, "resolved"), stored, row)
            if prevention is not None and commitment_id is not None:
                # A prevention is a commitment: open until fulfilled or cancelled.
                due = None if prevention.due_at is None else to_micros(prevention.due_at)
                made = {**_side("made", stored), "text": prevention.action,
                        "made_by": _actor(stored), "department": stored.event.actor.department,
                        "due_us": due, "owner_id": prevention.owner,
                        "ticket_id": payload.ticket_id,
                        "cause_key": None if cause is None else cause.category.casefold(),
                        "cause_text": None if cause is None else cause.text}  # fmt: skip
                _keep_latest(self.commitments, (account_id, commitment_id, "made"), stored, made)
        elif isinstance(payload, SupportCsatRecorded):
            self.csat.append({"account_id": account_id, "event_id": stored.event_id,
                              "score": payload.score, "ticket_id": payload.ticket_id,
                              "at_us": _key(stored)[0]})  # fmt: skip
        elif isinstance(payload, SalesProposalSent | MarketingCampaignSent):
            self.messages.append(_message(stored, payload))
        elif isinstance(payload, MarketingEventAttended | MarketingContentEngaged
                        | MarketingCampaignResponded):  # fmt: skip
            self.signals += _signals(stored, payload)
        else:
            self._value(stored, payload)
        self.contacts += _contacts(stored)
        self.follow_ups += _follow_ups(stored)

    def _value(self, stored: StoredEvent, payload: Any) -> None:
        """Needs, orders, renewals and churn."""
        account_id = stored.event.account_id
        if isinstance(payload, CustomerNeedIdentified):
            row = {**_side("identified", stored), "text": payload.text,
                   "category": payload.category, "category_key": payload.category.casefold(),
                   "priority": payload.priority.value,
                   "department": stored.event.actor.department,
                   "identified_by": _actor(stored)}  # fmt: skip
            _keep_latest(self.needs, (account_id, payload.need_id, "identified"), stored, row)
        elif isinstance(payload, CustomerNeedAddressed):
            row = {**_side("addressed", stored), "how": payload.how, "on_site": payload.on_site,
                   "addressed_by": _actor(stored)}  # fmt: skip
            _keep_latest(self.needs, (account_id, payload.need_id, "addressed"), stored, row)
        elif isinstance(payload, SalesOrderPlaced):
            row = {**_side("placed", stored), "amount": payload.amount,
                   "currency": payload.currency,
                   "products": json.dumps(payload.products, ensure_ascii=False),
                   "placed_by": _actor(stored)}  # fmt: skip
            _keep_latest(self.orders, (account_id, payload.order_id, "placed"), stored, row)
        elif isinstance(payload, SuccessRenewalScheduled):
            row = {**_side("scheduled", stored), "renews_us": to_micros(payload.renews_at),
                   "amount": payload.amount, "currency": payload.currency}  # fmt: skip
            key = (account_id, payload.contract_id, "scheduled")
            _keep_latest(self.contracts, key, stored, row)
        elif isinstance(payload, SuccessRenewed):
            row = {**_side("renewed", stored), "renewed_amount": payload.amount,
                   "renewed_currency": payload.currency,
                   "next_renews_us": None if payload.renews_at is None
                   else to_micros(payload.renews_at)}  # fmt: skip
            _keep_latest(self.contracts, (account_id, payload.contract_id, "renewed"), stored, row)
        elif isinstance(payload, SuccessChurned):
            us, partition, offset = _key(stored)
            self.churns.append({"account_id": account_id, "event_id": stored.event_id,
                                "contract_id": payload.contract_id, "reason": payload.reason,
                                "at_us": us, "partition": partition, "offset": offset})  # fmt: skip


def _keep_latest(
    found: dict[tuple[str, str, str], tuple[Key, Row]],
    key: tuple[str, str, str], stored: StoredEvent, row: Row,
) -> None:  # fmt: skip
    # One row per key and statement: PostgreSQL refuses to update a row twice in one upsert.
    if key not in found or found[key][0] < _key(stored):
        found[key] = (_key(stored), row)


def _message(stored: StoredEvent, payload: SalesProposalSent | MarketingCampaignSent) -> Row:
    us, partition, offset = _key(stored)
    row: Row = {
        "account_id": stored.event.account_id, "event_id": stored.event_id,
        "department": stored.event.actor.department, "actor": _actor(stored),
        "summary": stored.event.summary, "at_us": us, "partition": partition, "offset": offset,
        "name": None, "channel": None, "product": None, "product_key": None,
        "discount_pct": None, "terms": None, "amount": None, "currency": None,
        "valid_until_us": None,
    }  # fmt: skip
    if isinstance(payload, SalesProposalSent):
        row.update(kind="proposal", ref_id=payload.proposal_id, product=payload.product,
                   discount_pct=payload.discount_pct, amount=payload.amount,
                   currency=payload.currency,
                   valid_until_us=None if payload.valid_until is None
                   else to_micros(payload.valid_until))  # fmt: skip
    else:
        row.update(kind="campaign", ref_id=payload.campaign_id, name=payload.name,
                   channel=payload.channel)  # fmt: skip
        if payload.offer is not None:
            row.update(product=payload.offer.product, discount_pct=payload.offer.discount_pct,
                       terms=payload.offer.terms)  # fmt: skip
    if row["product"] is not None:
        row["product_key"] = " ".join(row["product"].casefold().split())
    return row


def _signals(
    stored: StoredEvent,
    payload: MarketingEventAttended | MarketingContentEngaged | MarketingCampaignResponded,
) -> list[Row]:
    """One handoff row per contact the signal names (by contact key), or one for the account."""
    us, partition, offset = _key(stored)
    if isinstance(payload, MarketingEventAttended):
        campaign, detail = None, payload.event_name
    elif isinstance(payload, MarketingContentEngaged):
        campaign, detail = None, f"{payload.content}: {payload.action}"
    else:
        campaign, detail = payload.campaign_id, payload.response
    common = {
        "account_id": stored.event.account_id, "event_id": stored.event_id,
        "type": stored.type, "campaign_id": campaign, "detail": detail,
        "actor": _actor(stored), "summary": stored.event.summary,
        "at_us": us, "partition": partition, "offset": offset,
    }  # fmt: skip
    named: dict[str, str] = {}
    for contact in stored.event.contacts:
        key = contact_key(contact)
        if key is not None:
            named.setdefault(key, contact.model_dump_json(exclude_none=True))
    if not named:
        return [{**common, "contact_key": "", "contact_pii": None}]
    return [{**common, "contact_key": k, "contact_pii": pii} for k, pii in named.items()]


def _follow_ups(stored: StoredEvent) -> list[Row]:
    """A sales or success touch (by the actor or a participant; a registration is not a
    touch): one row per account it touches for the accounts' handoffs, and one per account and
    contact it names for the contacts' handoffs."""
    event = stored.event
    if stored.type == "account.registered" or not any(
            p.department in FOLLOW_UP_DEPARTMENTS for p in event.people()):  # fmt: skip
        return []
    us, partition, offset = _key(stored)
    keys = dict.fromkeys(("", *(contact_key(c) for c in event.contacts)))
    keys.pop(None, None)
    return [{"account_id": account_id, "contact_key": key, "event_id": stored.event_id,
             "at_us": us, "partition": partition, "offset": offset}
            for account_id in dict.fromkeys((event.account_id, *event.related_account_ids))
            for key in keys]  # fmt: skip


def _contacts(stored: StoredEvent) -> list[Row]:
    """One row per customer contact, person of ours (actor and participants) and account."""
    event = stored.event
    rows: list[Row] = []
    if not event.contacts:
        return rows
    us, partition, offset = _key(stored)
    people = [(p, p.model_dump_json(exclude_none=True)) for p in event.people()]
    for contact in event.contacts:
        key = contact_key(contact)
        if key is None:
            continue
        pii = contact.model_dump_json(exclude_none=True)
        for account_id in dict.fromkeys((event.account_id, *event.related_account_ids)):
            for person, as_json in people:
                rows.append({
                    "account_id": account_id, "contact_key": key, "event_id": stored.event_id,
                    "contact_pii": pii, "actor_id": person.id, "actor": as_json,
                    "department": person.department,
                    "at_us": us, "partition": partition, "offset": offset,
                })  # fmt: skip
    return rows
