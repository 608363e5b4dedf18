"""The ReportFacts read model's tables: what the leaders' reports need that no other read model
keeps in a shape a report can query by time.

- ``employees``: every ``employee.registered`` / ``employee.updated`` event (insert-once by event
  id, with its stored body: ``GET /v1/events/{id}`` finds it there); the roster folds them in
  (occurred_at, partition, offset) order when read, so the fold does not depend on the order
  the events arrived in.
- ``people``: per person of ours, their latest customer contact (any customer event they made or
  took part in, registrations excepted): newest by sort key wins.
- ``touches``: one row per customer event, account touched and person of ours in it, indexed by
  time: accounts touched and executive touches per period, by department, segment or owner.
- ``firsts``: per account and department (and ``*``: anyone), the first touch: the oldest wins.
  A department's accounts, in the KPIs, are those it owns or touched before the period's end.
- ``voice``: what customers said, one row per item (a complaint, a low CSAT comment, a success
  risk, a need, a churn reason, an executive's concern or complaint heard, a sales next step),
  indexed by time, with the theme it is grouped under.
- ``targets``: every ``kpi.target_set`` event; the newest per metric, group and period wins when
  read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    select,
)

from services.core.readmodels.schema import METADATA

NAME = "ReportFacts"
PREFIX = "report_facts"


@dataclass(frozen=True)
class ReportTables:
    employees: Table
    people: Table
    touches: Table
    firsts: Table
    voice: Table
    targets: Table


def _position() -> list[Column[int]]:
    return [
        Column("at_us", BigInteger, nullable=False),
        Column("partition", Integer, nullable=False),
        Column("offset", BigInteger, nullable=False),
    ]


def report_tables(metadata: MetaData, prefix: str) -> ReportTables:
    """The read model's tables under ``prefix`` (a rebuild can target a shadow prefix)."""
    employees = Table(
        f"{prefix}_employees",
        metadata,
        Column("event_id", String(36), primary_key=True),
        Column("employee_id", String(256), nullable=False),
        Column("type", String(64), nullable=False),
        Column("fields", Text, nullable=False),  # JSON: the payload fields given
        Column("body", Text, nullable=False),  # the stored event (GET /v1/events/{id})
        *_position(),
        Index(f"ix_{prefix}_employees_id", "employee_id"),
    )
    people = Table(
        f"{prefix}_people",
        metadata,
        Column("person_id", String(256), primary_key=True),
        Column("person", Text, nullable=False),  # actor JSON as last seen
        Column("department", String(32), nullable=False),
        Column("executive", Boolean, nullable=False),
        Column("event_id", String(36), nullable=False),
        Column("account_id", String(128), nullable=False),
        *_position(),
    )
    touches = Table(
        f"{prefix}_touches",
        metadata,
        Column("event_id", String(36), primary_key=True),
        Column("account_id", String(128), primary_key=True),
        Column("person_id", String(256), primary_key=True),
        Column("department", String(32), nullable=False),
        Column("executive", Boolean, nullable=False),
        Column("related", Boolean, nullable=False),  # a related account, not the event's own
        Column("type", String(64), nullable=False),
        Column("at_us", BigInteger, nullable=False),
        Index(f"ix_{prefix}_touches_at", "at_us"),
        Index(f"ix_{prefix}_touches_account", "account_id", "at_us"),
        Index(f"ix_{prefix}_touches_person", "person_id", "at_us"),
    )
    firsts = Table(
        f"{prefix}_firsts",
        metadata,
        Column("account_id", String(128), primary_key=True),
        Column("department", String(32), primary_key=True),  # or "*": anyone of ours
        Column("first_us", BigInteger, nullable=False),
        Column("partition", Integer, nullable=False),
        Column("offset", BigInteger, nullable=False),
    )
    voice = Table(
        f"{prefix}_voice",
        metadata,
        Column("event_id", String(36), primary_key=True),
        Column("item", Integer, primary_key=True),  # position of the item in the event
        Column("account_id", String(128), nullable=False),
        Column("kind", String(32), nullable=False),
        Column("theme", Text, nullable=False),  # category as sent, or the kind
        Column("theme_key", Text, nullable=False),  # case-folded: may outgrow theme
        Column("department", String(32), nullable=False),  # who heard it
        Column("actor_id", String(256), nullable=False),
        Column("text", Text, nullable=True),
        Column("score", Integer, nullable=True),  # CSAT
        *_position(),
        Index(f"ix_{prefix}_voice_at", "at_us"),
    )
    targets = Table(
        f"{prefix}_targets",
        metadata,
        Column("event_id", String(36), primary_key=True),
        Column("metric", String(64), nullable=False),
        Column("group_by", String(16), nullable=False),
        Column("group_name", String(256), nullable=False),
        Column("period", String(8), nullable=False),
        Column("target", Float, nullable=False),
        Column("set_by", Text, nullable=False),  # actor JSON
        Column("body", Text, nullable=False),  # the stored event (GET /v1/events/{id})
        *_position(),
    )
    return ReportTables(employees, people, touches, firsts, voice, targets)


TABLES = report_tables(METADATA, PREFIX)


def read_event(conn: Connection, event_id: str, tables: ReportTables = TABLES) -> Any:
    """An organisation event as stored (no timeline holds it), or None."""
    for table in (tables.employees, tables.targets):
        body = conn.execute(select(table.c.body).where(table.c.event_id == event_id)).scalar()
        if body is not None:
            return json.loads(body)
    return None
