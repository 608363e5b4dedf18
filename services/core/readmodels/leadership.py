"""The LeadershipLog read model: every executive touch, with what was heard and promised.

One row per event and executive who made it or took part in it (meetings, calls, commitments,
anything), keyed by (event id, executive id): inserting a row twice changes nothing, so the log is
a pure fold. An executive is a person whose ``executive`` flag is true, or who has no flag and is
in the leadership department (``events.is_executive``); ``role`` says whether they were the
event's actor or a participant.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    select,
)

from services.core.readmodels import accounts
from services.core.readmodels.reports import facts
from services.core.readmodels.schema import METADATA
from services.core.readmodels.timeline import from_micros

NAME = "LeadershipLog"
PREFIX = "leadership_log"

# Payload list fields of leadership.meeting_held that the weekly report gathers.
HEARD_FIELDS = ("heard", "concerns", "complaints", "learnings")


@dataclass(frozen=True)
class LeadershipTables:
    contacts: Table


def leadership_tables(metadata: MetaData, prefix: str) -> LeadershipTables:
    contacts = Table(
        f"{prefix}_contacts",
        metadata,
        Column("event_id", String(36), primary_key=True),
        Column("executive_id", String(256), primary_key=True),
        Column("role", String(16), nullable=False, server_default="actor"),  # or participant
        Column("executive", Text, nullable=False),
        Column("account_id", String(128), nullable=False),
        Column("at_us", BigInteger, nullable=False),
        Column("partition", Integer, nullable=False),
        Column("offset", BigInteger, nullable=False),
        Column("type", String(64), nullable=False),
        Column("summary", Text, nullable=True),
        Column("details", Text, nullable=False),
        Index(f"ix_{prefix}_contacts_at", "at_us", "executive_id"),
        Index(f"ix_{prefix}_contacts_account", "account_id", "at_us"),
    )
    return LeadershipTables(contacts)


TABLES = leadership_tables(METADATA, PREFIX)


def read_report(
    conn: Connection, from_us: int, to_us: int, roster: Mapping[str, Any] | None = None,
    tables: LeadershipTables = TABLES,
) -> list[dict[str, Any]]:  # fmt: skip
    """Per executive, for touches in ``[from_us, to_us)``: customers met, each touch, what was
    heard (and the concerns, complaints, learnings) with the events they came from, and the
    commitments made; ``counts`` of each, and ``previous``: the same counts in the window of
    the same length just before. Every active executive of ``roster`` (id -> ``roster.Employee``)
    is listed, with zeros where that is the truth; executives sorted by id, touches by time."""
    roster = roster or {}
    executives = sorted(k for k, p in roster.items() if p.executive)
    report = _entries(conn, from_us, to_us, tables, executives)
    before = _entries(conn, from_us - (to_us - from_us), from_us, tables, executives)
    for person in roster.values():
        if person.executive and person.active and person.employee_id not in report:
            report[person.employee_id] = _finished(_empty(person.identity()))
    for executive_id, entry in report.items():
        person = roster.get(executive_id)
        if person is not None and person.registered:
            entry["executive"] = person.identity()
        entry["active"] = True if person is None else person.active
        entry["registered"] = person is not None and person.registered
        entry["counts"] = _counts(entry)
        earlier = before.get(executive_id)
        entry["previous"] = _counts(earlier if earlier is not None else _finished(_empty({})))
    return [report[k] for k in sorted(report)]


def _counts(entry: dict[str, Any]) -> dict[str, int]:
    return {"customers_met": len(entry["customers"]), "touches": len(entry["touches"]),
            "commitments": len(entry["commitments"]),
            **{field: len(entry[field]) for field in HEARD_FIELDS}}  # fmt: skip


def _entries(
    conn: Connection, from_us: int, to_us: int, tables: LeadershipTables,
    executives: Sequence[str] = (),
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """The executives' touches in the window: the LeadershipLog's, and the touches of the
    roster's ``executives`` that the log did not record as executive touches (the events did
    not flag them: these carry no details)."""
    c = tables.contacts
    rows: list[Any] = list(conn.execute(
        select(c)
        .where(and_(c.c.at_us >= from_us, c.c.at_us < to_us))
        .order_by(c.c.executive_id, c.c.at_us, c.c.partition, c.c.offset)
    ))  # fmt: skip
    logged = {(r.executive_id, r.event_id) for r in rows}
    rows += [r for r in _roster_touches(conn, from_us, to_us, executives)
             if (r.executive_id, r.event_id) not in logged]  # fmt: skip
    rows.sort(key=lambda r: (r.executive_id, r.at_us, r.partition, r.offset, r.event_id))
    names = accounts.names_of(conn, {r.account_id for r in rows})
    report: dict[str, dict[str, Any]] = {}
    for r in rows:
        entry = report.setdefault(r.executive_id, _empty(json.loads(r.executive)))
        details = json.loads(r.details) if r.details else {}
        at = from_micros(r.at_us)
        customer = entry["_customers"].setdefault(
            r.account_id,
            {"account_id": r.account_id, "name": names.get(r.account_id), "touches": 0},
        )
        customer["touches"] += 1
        customer["last_at"] = at
        touch = {"event_id": r.event_id, "at": at, "account_id": r.account_id,
                 "type": r.type, "summary": r.summary, **details}  # fmt: skip
        if r.type == "commitment.made":
            entry["commitments"].append(touch)
        else:
            entry["touches"].append(touch)
        for field in HEARD_FIELDS:
            for text in details.get(field, []):
                entry[field].append(
                    {"text": text, "account_id": r.account_id, "event_id": r.event_id}
                )
    return {k: _finished(entry) for k, entry in report.items()}


@dataclass(frozen=True)
class _Touch:
    """A roster executive's touch the LeadershipLog did not record, shaped like its rows."""

    executive_id: str
    event_id: str
    account_id: str
    at_us: int
    type: str
    executive: str
    summary: None = None
    details: None = None
    partition: int = 2**31  # after the log's rows of the same moment
    offset: int = 0


def _roster_touches(conn: Connection, from_us: int, to_us: int,
                    executives: Sequence[str]) -> list[_Touch]:  # fmt: skip
    t = facts.TABLES.touches
    found: list[_Touch] = []
    for start in range(0, len(executives), 500):
        chunk = executives[start : start + 500]
        rows = conn.execute(
            select(t.c.person_id, t.c.event_id, t.c.account_id, t.c.at_us, t.c.type,
                   t.c.department)
            .where(t.c.person_id.in_(chunk), t.c.related.is_(False),
                   t.c.at_us >= from_us, t.c.at_us < to_us)
        )  # fmt: skip
        found += [_Touch(r.person_id, r.event_id, r.account_id, r.at_us, r.type,
                         json.dumps({"id": r.person_id, "department": r.department}))
                  for r in rows]  # fmt: skip
    return found


def _empty(executive: dict[str, Any]) -> dict[str, Any]:
    return {"executive": executive, "_customers": {}, "touches": [], "commitments": [],
            **{field: [] for field in HEARD_FIELDS}}  # fmt: skip


def _finished(entry: dict[str, Any]) -> dict[str, Any]:
    entry["customers"] = list(entry.pop("_customers").values())
    return entry
