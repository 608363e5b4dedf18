"""AccountTimeline: every event on its account's timeline and on each related account's."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, MetaData, Table

from services.core.adapters.sql import insert_ignore, insert_new
from services.core.codec import StoredEvent
from services.core.privacy import vault
from services.core.readmodels import timeline
from services.core.readmodels.generations import shadow_prefix
from services.projections.base import Projection, customer_events


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def search_text(body: dict[str, Any]) -> str:
    """What ``q`` searches: the summary and every text value of the payload (of ``body()``)."""
    parts = [body.get("summary") or "", *_strings(body["payload"])]
    return timeline.search_key("\n".join(parts))


class AccountTimeline(Projection):
    name = timeline.NAME

    def __init__(self, tables: timeline.TimelineTables = timeline.TABLES) -> None:
        self.t = tables

    def in_generation(self, generation: int) -> AccountTimeline:
        return type(self)(
            timeline.timeline_tables(MetaData(), shadow_prefix(timeline.PREFIX, generation))
        )

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        # An erasure's keys are destroyed by the request that recorded it; if that request did
        # not finish, its note in the database is settled here, with the checkpoint.
        erased = [s.event_id for s in events if s.type == "contact.erased"]
        if erased:
            vault.settle(conn, erased)
        events = customer_events(events)
        fresh: dict[str, StoredEvent] = {}
        for stored in events:
            fresh.setdefault(stored.event_id, stored)  # the first copy in the log wins
        if not fresh:
            return
        event_rows, entry_rows, participant_rows = [], [], []
        for stored in fresh.values():
            common = {
                "event_id": stored.event_id,
                "occurred_us": timeline.to_micros(stored.event.occurred_at),
                "partition": stored.partition,
                "offset": stored.offset,
                "type": stored.type,
                "department": stored.event.actor.department,
            }
            data = stored.body()
            body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
            event_rows.append(
                {**common, "account_id": stored.event.account_id, "body": body,
                 "search_text": search_text(data), "actor_id": stored.event.actor.id}
            )  # fmt: skip
            for account_id in (stored.event.account_id, *stored.event.related_account_ids):
                entry_rows.append({**common, "account_id": account_id})
            for person in stored.event.participants or ():
                participant_rows.append({
                    "event_id": stored.event_id, "person_id": person.id,
                    "department": person.department,
                    "person": person.model_dump_json(exclude_none=True),
                })  # fmt: skip
        # Entries only for events this batch really added: an id the view already holds keeps
        # its first copy (and that copy's accounts).
        added = insert_new(conn, self.t.events, event_rows, "event_id")
        insert_ignore(conn, self.t.entries, [r for r in entry_rows if r["event_id"] in added])
        insert_ignore(conn, self.t.participants,
                      [r for r in participant_rows if r["event_id"] in added])  # fmt: skip

    @property
    def tables(self) -> dict[str, Table]:
        return {"events": self.t.events, "entries": self.t.entries,
                "participants": self.t.participants}  # fmt: skip
