"""ReportFacts: the facts the leaders' reports query by time (``readmodels.reports.facts``).

Every write is insert-once by event id, or newest-by-sort-key-wins (``people``), so applying an
event twice, late or out of order gives the same rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, MetaData, Table

from services.core.adapters.sql import insert_ignore, upsert_newer
from services.core.codec import StoredEvent
from services.core.events import (
    CustomerNeedIdentified,
    KpiTargetSet,
    LeadershipMeetingHeld,
    SalesMeetingHeld,
    SuccessChurned,
    SuccessReviewHeld,
    SupportCsatRecorded,
    SupportTicketOpened,
    event_payload,
    is_executive,
)
from services.core.readmodels.generations import shadow_prefix
from services.core.readmodels.reports import facts
from services.core.readmodels.timeline import to_micros
from services.core.view_rules import LOW_CSAT
from services.projections.base import Projection

Row = dict[str, Any]
# (kind, theme or None for "the kind is the theme", text, score) of one voice item.
VoiceItem = tuple[str, str | None, str | None, int | None]


def voice_items(stored: StoredEvent) -> Iterator[VoiceItem]:
    """What the customer said in this event, item by item (see ``facts``)."""
    p = event_payload(stored.event)
    if isinstance(p, SupportTicketOpened) and p.complaint:
        yield "complaint", p.category, p.subject, None
    elif isinstance(p, SupportCsatRecorded) and p.score <= LOW_CSAT:
        yield "low_csat", None, p.comment, p.score
    elif isinstance(p, SuccessReviewHeld):
        for risk in p.risks:
            yield "success_risk", None, risk, None
    elif isinstance(p, CustomerNeedIdentified):
        yield "need", p.category, p.text, None
    elif isinstance(p, SuccessChurned):
        yield "churn_reason", None, p.reason, None
    elif isinstance(p, LeadershipMeetingHeld):
        for text in p.concerns:
            yield "executive_concern", None, text, None
        for text in p.complaints:
            yield "executive_complaint", None, text, None
    elif isinstance(p, SalesMeetingHeld) and p.next_steps:
        yield "next_step", None, p.next_steps, None


class ReportFacts(Projection):
    name = facts.NAME

    def __init__(self, tables: facts.ReportTables = facts.TABLES) -> None:
        self.t = tables

    def in_generation(self, generation: int) -> ReportFacts:
        return type(self)(facts.report_tables(MetaData(), shadow_prefix(facts.PREFIX, generation)))

    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        employees: list[Row] = []
        targets: list[Row] = []
        touches: list[Row] = []
        voice: list[Row] = []
        people: dict[str, Row] = {}
        firsts: dict[tuple[str, str], Row] = {}
        for s in events:
            at = {"at_us": to_micros(s.event.occurred_at), "partition": s.partition,
                  "offset": s.offset}  # fmt: skip
            if s.type in ("employee.registered", "employee.updated"):
                employees.append(_employee_row(s, at))
            elif s.type == "kpi.target_set":
                targets.append(_target_row(s, at))
            elif s.type != "account.registered" and s.event.about_customer:
                touches += _touch_rows(s, at["at_us"])
                voice += _voice_rows(s, at)
                _newest_contacts(people, s, at)
                _oldest_touches(firsts, s, at)
        insert_ignore(conn, self.t.employees, employees)
        insert_ignore(conn, self.t.targets, targets)
        insert_ignore(conn, self.t.touches, touches)
        insert_ignore(conn, self.t.voice, voice)
        upsert_newer(conn, self.t.people, list(people.values()), keys=["person_id"],
                     sort=["at_us", "partition", "offset"],
                     update=["person", "department", "executive", "event_id", "account_id",
                             "at_us", "partition", "offset"])  # fmt: skip
        upsert_newer(conn, self.t.firsts, list(firsts.values()), keys=["account_id", "department"],
                     sort=["first_us", "partition", "offset"],
                     update=["first_us", "partition", "offset"], oldest=True)  # fmt: skip

    @property
    def tables(self) -> dict[str, Table]:
        t = self.t
        return {"employees": t.employees, "people": t.people, "touches": t.touches,
                "firsts": t.firsts, "voice": t.voice, "targets": t.targets}  # fmt: skip


def _employee_row(s: StoredEvent, at: Row) -> Row:
    fields = event_payload(s.event).model_dump(mode="json", exclude_none=True)
    return {"event_id": s.event_id, "employee_id": fields["employee_id"], "type": s.type,
            "fields": json.dumps(fields, ensure_ascii=False, sort_keys=True),
            "body": _body(s), **at}  # fmt: skip


def _body(s: StoredEvent) -> str:
    return json.dumps(s.body(), ensure_ascii=False, separators=(",", ":"))


def _target_row(s: StoredEvent, at: Row) -> Row:
    p = event_payload(s.event)
    assert isinstance(p, KpiTargetSet)
    return {"event_id": s.event_id, "metric": p.metric.value, "group_by": p.group_by,
            "group_name": p.group, "period": p.period, "target": p.target,
            "set_by": s.event.actor.model_dump_json(exclude_none=True), "body": _body(s),
            **at}  # fmt: skip


def _touch_rows(s: StoredEvent, at_us: int) -> list[Row]:
    accounts = dict.fromkeys((s.event.account_id, *s.event.related_account_ids))
    return [{"event_id": s.event_id, "account_id": account_id, "person_id": person.id,
             "department": person.department, "executive": is_executive(person),
             "related": account_id != s.event.account_id, "type": s.type, "at_us": at_us}
            for account_id in accounts for person in s.event.people()]  # fmt: skip


def _voice_rows(s: StoredEvent, at: Row) -> list[Row]:
    actor = s.event.actor
    return [{"event_id": s.event_id, "item": n, "account_id": s.event.account_id, "kind": kind,
             "theme": theme or kind, "theme_key": (theme or kind).casefold(),
             "department": actor.department, "actor_id": actor.id, "text": text,
             "score": score, **at}
            for n, (kind, theme, text, score) in enumerate(voice_items(s))]  # fmt: skip


def _newest_contacts(people: dict[str, Row], s: StoredEvent, at: Row) -> None:
    """Keep, per person, the newest of this batch's events they took part in (``upsert_newer``
    wants each key once)."""
    key = (at["at_us"], at["partition"], at["offset"])
    for person in s.event.people():
        seen = people.get(person.id)
        if seen is not None and (seen["at_us"], seen["partition"], seen["offset"]) >= key:
            continue
        people[person.id] = {
            "person_id": person.id,
            "person": person.model_dump_json(exclude_none=True),
            "department": person.department,
            "executive": is_executive(person),
            "event_id": s.event_id,
            "account_id": s.event.account_id,
            **at,
        }


def _oldest_touches(firsts: dict[tuple[str, str], Row], s: StoredEvent, at: Row) -> None:
    """Keep, per account and department (and ``*``), the oldest touch of this batch."""
    key = (at["at_us"], at["partition"], at["offset"])
    departments = {"*", *(p.department for p in s.event.people())}
    for account_id in dict.fromkeys((s.event.account_id, *s.event.related_account_ids)):
        for department in departments:
            seen = firsts.get((account_id, department))
            if seen is not None and (seen["first_us"], seen["partition"], seen["offset"]) <= key:
                continue
            firsts[(account_id, department)] = {
                "account_id": account_id, "department": department, "first_us": at["at_us"],
                "partition": at["partition"], "offset": at["offset"]}  # fmt: skip
