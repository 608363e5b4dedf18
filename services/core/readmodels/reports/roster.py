"""The roster: our people, from ``employee.registered`` / ``employee.updated`` and from the
people seen in customer events, with each one's latest customer contact.

An employee's record is the fold of their events in (occurred_at, partition, offset) order: a
registration sets every field, an update the fields it names. Someone who was never registered
but appeared in a customer event is on the roster too (``registered: false``), as the event last
showed them. An executive is a person whose ``executive`` flag is true, or who has no flag and is
in the leadership department (the rule of the views, ``events.is_executive``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from services.core.events import EXECUTIVE_DEPARTMENT
from services.core.readmodels import accounts
from services.core.readmodels.reports import facts
from services.core.view_rules import DAY_US, AsOf, iso


@dataclass
class Employee:
    employee_id: str
    name: str | None = None
    department: str | None = None
    title: str | None = None
    executive_flag: bool | None = None
    active: bool = True
    registered: bool = False
    registered_event_ids: tuple[str, ...] = ()
    last_contact: dict[str, Any] | None = None  # {at, at_us, event_id, account_id}

    @property
    def executive(self) -> bool:
        if self.executive_flag is not None:
            return self.executive_flag
        return self.department == EXECUTIVE_DEPARTMENT

    def identity(self) -> dict[str, Any]:
        """Who they are, shaped like an event's actor (plus ``executive``)."""
        return {k: v for k, v in (
            ("id", self.employee_id), ("name", self.name), ("department", self.department),
            ("title", self.title), ("executive", self.executive),
        ) if v is not None}  # fmt: skip


def load(conn: Connection, tables: facts.ReportTables = facts.TABLES) -> dict[str, Employee]:
    """Every person on the roster, by id."""
    e, p = tables.employees, tables.people
    roster: dict[str, Employee] = {}
    rows = conn.execute(select(e.c.employee_id, e.c.type, e.c.fields, e.c.event_id)
                        .order_by(e.c.at_us, e.c.partition, e.c.offset))  # fmt: skip
    for r in rows:
        fields = json.loads(r.fields)
        person = roster.setdefault(r.employee_id, Employee(r.employee_id))
        if r.type == "employee.registered":
            person.name, person.department = fields["name"], fields["department"]
            person.title, person.executive_flag = fields.get("title"), fields.get("executive")
            person.active, person.registered = fields.get("active", True), True
        else:
            for field in ("name", "department", "title", "active"):
                if field in fields:
                    setattr(person, field, fields[field])
            if "executive" in fields:
                person.executive_flag = fields["executive"]
        person.registered_event_ids += (r.event_id,)
    for r in conn.execute(select(p)):
        seen = json.loads(r.person)
        if r.person_id not in roster:
            roster[r.person_id] = Employee(
                r.person_id, seen.get("name"), seen["department"], seen.get("title"),
                seen.get("executive"),
            )  # fmt: skip
        roster[r.person_id].last_contact = {
            "at": iso(r.at_us), "at_us": r.at_us, "event_id": r.event_id,
            "account_id": r.account_id,
        }  # fmt: skip
    return roster


def owners(conn: Connection) -> dict[str, list[str]]:
    """``employee id -> the accounts they own`` (in any department), from the AccountDirectory."""
    o = accounts.TABLES.owners
    found: dict[str, list[str]] = {}
    for r in conn.execute(select(o.c.employee_id, o.c.account_id).order_by(o.c.account_id)):
        found.setdefault(r.employee_id, []).append(r.account_id)
    return found


def silent_since(as_of: AsOf) -> int:
    """Contacts before this moment do not count: ``silent_weeks`` weeks before now."""
    return as_of.now_us - as_of.policy.silent_weeks * 7 * DAY_US


def is_silent(person: Employee, as_of: AsOf) -> bool:
    """No customer contact in the last ``silent_weeks`` weeks (or ever)."""
    last = person.last_contact
    return last is None or last["at_us"] < silent_since(as_of)


def habit(person: Employee, owned: Sequence[str], as_of: AsOf) -> dict[str, Any] | None:
    """The habit keeper's flag for an active executive or account owner, else None."""
    if not person.active or not (person.executive or owned):
        return None
    last = person.last_contact
    return {
        "silent": is_silent(person, as_of), "silent_weeks": as_of.policy.silent_weeks,
        "last_customer_contact": None if last is None else {
            k: v for k, v in last.items() if k != "at_us"},
        "days_since_contact": None if last is None else max(
            0, (as_of.now_us - last["at_us"]) // DAY_US),
    }  # fmt: skip


def silent_people(conn: Connection, as_of: AsOf) -> list[dict[str, Any]]:
    """Active executives and account owners with no customer contact in ``silent_weeks``
    weeks: never contacted first, then the longest silent; each names their last contact."""
    roster, owned = load(conn), owners(conn)
    for employee_id in owned:
        roster.setdefault(employee_id, Employee(employee_id))
    found = []
    for person in roster.values():
        flag = habit(person, owned.get(person.employee_id, []), as_of)
        if flag is None or not flag["silent"]:
            continue
        roles = [r for r, yes in (("executive", person.executive),
                                  ("owner", person.employee_id in owned)) if yes]  # fmt: skip
        found.append({"employee": person.identity(), "roles": roles,
                      "accounts_owned": len(owned.get(person.employee_id, [])),
                      "registered": person.registered, **flag})  # fmt: skip
    found.sort(key=lambda f: (f["last_customer_contact"] is not None,
                              (f["last_customer_contact"] or {}).get("at", ""),
                              f["employee"]["id"]))  # fmt: skip
    return found


def employee_json(person: Employee, owned: Sequence[str], as_of: AsOf) -> dict[str, Any]:
    last = person.last_contact
    return {
        "employee_id": person.employee_id, "name": person.name,
        "department": person.department, "title": person.title,
        "executive": person.executive, "active": person.active,
        "registered": person.registered, "accounts_owned": len(owned),
        "last_customer_contact": None if last is None else {
            k: v for k, v in last.items() if k != "at_us"},
        "silent": is_silent(person, as_of),
        "event_ids": list(person.registered_event_ids),
    }  # fmt: skip
