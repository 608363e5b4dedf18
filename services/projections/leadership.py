"""LeadershipLog: every touch an executive made or took part in, one row per event and executive
(insert-once: a row, once written, is never changed)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, MetaData, Table

from services.core.adapters.sql import insert_ignore
from services.core.codec import StoredEvent
from services.core.events import event_payload, is_executive
from services.core.readmodels import leadership
from services.core.readmodels.generations import shadow_prefix
from services.core.readmodels.timeline import to_micros
from services.projections.base import Projection, customer_events

_DETAIL_FIELDS = ("subject", *leadership.HEARD_FIELDS, "commitment_id", "text", "due_at")


def _details(stored: StoredEvent) -> dict[str, Any]:
    payload = event_payload(stored.event).model_dump(mode="json")
    return {k: payload[k] for k in _DETAIL_FIELDS if payload.get(k) not in (None, [])}


class LeadershipLog(Projection):
    name = leadership.NAME

    def __init__(self, tables: leadership.LeadershipTables = leadership.TABLES) -> None:
        self.t = tables

    def in_generation(self, generation: int) -> LeadershipLog:
        return type(self)(
            leadership.leadership_tables(MetaData(), shadow_prefix(leadership.PREFIX, generation))
        )

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        events = customer_events(events)
        rows = []
        for s in events:
            executives = [(role, p) for role, p in
                          [("actor", s.event.actor),
                           *(("participant", p) for p in s.event.participants or ())]
                          if is_executive(p)]  # fmt: skip
            if not executives:
                continue
            common = {
                "event_id": s.event_id, "account_id": s.event.account_id,
                "at_us": to_micros(s.event.occurred_at), "partition": s.partition,
                "offset": s.offset, "type": s.type, "summary": s.event.summary,
                "details": json.dumps(_details(s), ensure_ascii=False),
            }  # fmt: skip
            rows += [{**common, "executive_id": person.id, "role": role,
                      "executive": person.model_dump_json(exclude_none=True)}
                     for role, person in executives]  # fmt: skip
        insert_ignore(conn, self.t.contacts, rows)

    @property
    def tables(self) -> dict[str, Table]:
        return {"contacts": self.t.contacts}
