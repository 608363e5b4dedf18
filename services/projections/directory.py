"""AccountDirectory: each account's registration and last touch, overall and per department.

Every write is "keep the value with the greatest sort key (occurred_us, partition, offset)", so
applying events in any order, or more than once, gives the same directory.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, MetaData, Table, delete

from services.core.adapters.sql import insert_ignore, upsert_newer
from services.core.codec import StoredEvent
from services.core.events import AccountRegistered, Actor, event_payload
from services.core.readmodels import accounts
from services.core.readmodels.generations import shadow_prefix
from services.core.readmodels.timeline import to_micros
from services.projections.base import Projection, customer_events

Key = tuple[int, int, int]


def _key(stored: StoredEvent) -> Key:
    return (to_micros(stored.event.occurred_at), stored.partition, stored.offset)


class AccountDirectory(Projection):
    name = accounts.NAME

    def __init__(self, tables: accounts.DirectoryTables = accounts.TABLES) -> None:
        self.t = tables

    def in_generation(self, generation: int) -> AccountDirectory:
        return type(self)(
            accounts.directory_tables(MetaData(), shadow_prefix(accounts.PREFIX, generation))
        )

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        events = customer_events(events)
        if not events:
            return
        latest: dict[str, tuple[Key, StoredEvent]] = {}
        for e in events:
            seen = latest.get(e.event.account_id)
            if e.type == "account.registered" and (seen is None or seen[0] < _key(e)):
                latest[e.event.account_id] = (_key(e), e)
        # Registered and touched accounts get their rows from the upserts; accounts named only
        # as related to a registration get a bare row here.
        related = {a for _, e in latest.values() for a in e.event.related_account_ids}
        insert_ignore(conn, self.t.accounts, [
            {"account_id": a, "registered": False, "name_key": a.casefold(), "owners": "{}"}
            for a in sorted(related - set(latest))
        ])  # fmt: skip
        if latest:
            self._register(conn, [e for _, e in sorted(latest.values(), key=lambda x: x[0])])
        self._touch(conn, [e for e in events if e.type != "account.registered"])

    def _register(self, conn: Connection, registrations: Sequence[StoredEvent]) -> None:
        """Upsert each account's registration where it is newer than the stored one; replace
        the owners of the accounts it changed. One registration per account."""
        rows, owners = [], {}
        for stored in registrations:
            payload = event_payload(stored.event)
            assert isinstance(payload, AccountRegistered)
            us, partition, offset = _key(stored)
            owners[stored.event.account_id] = dict(payload.owners)
            rows.append({
                "account_id": stored.event.account_id, "registered": True, "name": payload.name,
                "name_key": payload.name.casefold(), "segment": payload.segment,
                "tier": payload.tier, "parent_account_id": payload.parent_account_id,
                "owners": json.dumps(owners[stored.event.account_id], ensure_ascii=False,
                                     sort_keys=True),
                "reg_us": us, "reg_partition": partition, "reg_offset": offset,
            })  # fmt: skip
        changed = sorted(set(upsert_newer(
            conn, self.t.accounts, rows, keys=["account_id"],
            sort=["reg_us", "reg_partition", "reg_offset"],
            update=[c for c in rows[0] if c != "account_id"], returning="account_id",
        )))  # fmt: skip
        if changed:
            o = self.t.owners
            conn.execute(delete(o).where(o.c.account_id.in_(changed)))
            insert_ignore(conn, o, [
                {"account_id": acc, "department": d, "employee_id": e}
                for acc in changed for d, e in owners[acc].items()
            ])  # fmt: skip

    def _touch(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        """The latest touch per account, and per account and department: a department touches
        an account when its actor or one of its participants took part (the actor first when
        both did)."""
        latest: dict[str, tuple[Key, StoredEvent]] = {}
        by_department: dict[tuple[str, str], tuple[Key, StoredEvent, Actor]] = {}
        pairs: set[tuple[str, str]] = set()
        for stored in events:
            key = _key(stored)
            people = stored.event.people()
            for account_id in (stored.event.account_id, *stored.event.related_account_ids):
                if account_id not in latest or latest[account_id][0] < key:
                    latest[account_id] = (key, stored)
                for person in people:
                    pairs.add((person.id, account_id))
                    seen = by_department.get((account_id, person.department))
                    if seen is None or seen[0] < key:
                        by_department[(account_id, person.department)] = (key, stored, person)
        if not latest:
            return
        insert_ignore(conn, self.t.employees, [
            {"employee_id": e, "account_id": acc} for e, acc in sorted(pairs)
        ])  # fmt: skip
        self._upsert_last_touch(conn, [
            {"account_id": acc, "registered": False, "name_key": acc.casefold(), "owners": "{}",
             "last_touch_us": k[0], "last_touch_partition": k[1], "last_touch_offset": k[2],
             "last_touch_event_id": s.event_id}
            for acc, (k, s) in latest.items()
        ])  # fmt: skip
        self._upsert_touches(conn, [
            {"account_id": acc, "department": dep, "at_us": k[0], "partition": k[1],
             "offset": k[2], "event_id": s.event_id, "type": s.type,
             "actor": person.model_dump_json(exclude_none=True),
             "summary": s.event.summary, "by_actor": person is s.event.actor}
            for (acc, dep), (k, s, person) in by_department.items()
        ])  # fmt: skip

    def _upsert_last_touch(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        sort = ["last_touch_us", "last_touch_partition", "last_touch_offset"]
        upsert_newer(conn, self.t.accounts, rows, keys=["account_id"], sort=sort,
                     update=[*sort, "last_touch_event_id"])  # fmt: skip

    def _upsert_touches(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        upsert_newer(conn, self.t.touches, rows, keys=["account_id", "department"],
                     sort=["at_us", "partition", "offset"],
                     update=["at_us", "partition", "offset", "event_id", "type", "actor",
                             "summary", "by_actor"])  # fmt: skip

    @property
    def tables(self) -> dict[str, Table]:
        return {"accounts": self.t.accounts, "touches": self.t.touches,
                "owners": self.t.owners, "employees": self.t.employees}  # fmt: skip
