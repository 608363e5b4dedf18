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
import re
from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, text

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
    title_rule: bool = False  # the title matches ONEVOICE_EXECUTIVE_TITLES (set by ``load``)

    @property
    def executive(self) -> bool:
        """The explicit flag, else the title rule, else the leadership department."""
        if self.executive_flag is not None:
            return self.executive_flag
        return self.title_rule or self.department == EXECUTIVE_DEPARTMENT

    def identity(self) -> dict[str, Any]:
        """Who they are, shaped like an event's actor (plus ``executive``)."""
        return {k: v for k, v in (
            ("id", self.employee_id), ("name", self.name), ("department", self.department),
            ("title", self.title), ("executive", self.executive),
        ) if v is not None}  # fmt: skip


@lru_cache(maxsize=8)
def _rule(pattern: str) -> re.Pattern[str] | None:
    return re.compile(pattern, re.IGNORECASE) if pattern else None


def load(conn: Connection, as_of: AsOf, employee_id: str | None = None,
         tables: facts.ReportTables = facts.TABLES) -> dict[str, Employee]:  # fmt: skip
    """Every person on the roster by id (or only ``employee_id``, when given), as of
    ``as_of``: their last customer contact is the latest up to now, and the title rule is
    the one of ``as_of.policy``."""
    e, p = tables.employees, tables.people
    events = select(e.c.employee_id, e.c.type, e.c.fields, e.c.event_id)
    people = select(p)
    if employee_id is not None:
        events = events.where(e.c.employee_id == employee_id)
        people = people.where(p.c.person_id == employee_id)
    seen = {r.person_id: r for r in conn.execute(people)}
    roster: dict[str, Employee] = {}
    for r in conn.execute(events.order_by(e.c.at_us, e.c.partition, e.c.offset)):
        person = roster.get(r.employee_id) or _seen(r.employee_id, seen.get(r.employee_id))
        roster[r.employee_id] = person
        _apply(person, r.type, json.loads(r.fields))
        person.registered_event_ids += (r.event_id,)
    for person_id, r in seen.items():
        person = roster.setdefault(person_id, _seen(person_id, r))
        person.last_contact = _contact(r.at_us, r.event_id, r.account_id)
        if r.at_us > as_of.now_us:  # dated after now: the latest contact up to now instead
            person.last_contact = _contact_until(conn, person_id, as_of.now_us, tables)
    rule = _rule(as_of.policy.executive_titles)
    for person in roster.values():
        person.title_rule = bool(rule and person.title and rule.search(person.title))
    return roster


def _seen(person_id: str, row: Any) -> Employee:
    """Someone as the latest customer event showed them (or only an id)."""
    if row is None:
        return Employee(person_id)
    shown = json.loads(row.person)
    return Employee(person_id, shown.get("name"), shown["department"], shown.get("title"),
                    shown.get("executive"))  # fmt: skip


def _apply(person: Employee, event_type: str, fields: dict[str, Any]) -> None:
    if event_type == "employee.registered":
        person.name, person.department = fields["name"], fields["department"]
        person.title, person.executive_flag = fields.get("title"), fields.get("executive")
        person.active, person.registered = fields.get("active", True), True
        return
    for field in ("name", "department", "title", "active"):
        if field in fields:
            setattr(person, field, fields[field])
    if "executive" in fields:
        person.executive_flag = fields["executive"]


def _contact(at_us: int, event_id: str, account_id: str) -> dict[str, Any]:
    return {"at": iso(at_us), "at_us": at_us, "event_id": event_id, "account_id": account_id}


def _contact_until(conn: Connection, person_id: str, now_us: int,
                   tables: facts.ReportTables) -> dict[str, Any] | None:  # fmt: skip
    t = tables.touches
    row = conn.execute(
        select(t.c.at_us, t.c.event_id, t.c.account_id)
        .where(t.c.person_id == person_id, t.c.at_us <= now_us, t.c.related.is_(False))
        .order_by(t.c.at_us.desc(), t.c.event_id).limit(1)
    ).first()  # fmt: skip
    return None if row is None else _contact(row.at_us, row.event_id, row.account_id)


def owner_ids(conn: Connection) -> set[str]:
    """Everyone who owns an account (in any department), from the AccountDirectory: one probe
    of the owners' (employee, account) index per owner (a loose index scan), not a read of
    every owner row."""
    o = accounts.TABLES.owners.name
    found = conn.execute(text(f"""
        WITH RECURSIVE owner(id) AS (
            SELECT MIN(employee_id) FROM {o}
            UNION ALL
            SELECT (SELECT MIN(employee_id) FROM {o} WHERE employee_id > owner.id)
            FROM owner WHERE owner.id IS NOT NULL)
        SELECT id FROM owner WHERE id IS NOT NULL"""))  # fmt: skip
    return set(found.scalars())


def owned_counts(conn: Connection, employee_ids: Collection[str],
                 owners: set[str] | None = None) -> dict[str, int]:  # fmt: skip
    """``employee id -> how many accounts they own`` for these people (0: none). Only the
    owners among them (``owners``: ``owner_ids``, read here when not given) cost a query:
    their entries of the owners' (employee, account) index, distinct accounts in index order
    (an account owned in two departments counts once)."""
    o = accounts.TABLES.owners.c
    known = owner_ids(conn) if owners is None else owners
    mine = select(o.account_id).where(o.employee_id == bindparam("employee_id")).distinct()
    counted = select(func.count()).select_from(mine.subquery())
    return {e: int(conn.execute(counted, {"employee_id": e}).scalar_one()) if e in known else 0
            for e in sorted(set(employee_ids))}  # fmt: skip


def silent_since(as_of: AsOf) -> int:
    """Contacts before this moment do not count: ``silent_weeks`` weeks before now."""
    return as_of.now_us - as_of.policy.silent_weeks * 7 * DAY_US


def is_silent(person: Employee, as_of: AsOf) -> bool:
    """No customer contact in the last ``silent_weeks`` weeks (or ever)."""
    last = person.last_contact
    return last is None or last["at_us"] < silent_since(as_of)


def habit(person: Employee, owned: int, as_of: AsOf) -> dict[str, Any] | None:
    """The habit keeper's flag for an active executive or owner of ``owned`` accounts, else
    None."""
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


def silent_people(conn: Connection, as_of: AsOf, limit: int) -> tuple[int, list[dict[str, Any]]]:
    """Active executives and account owners with no customer contact in ``silent_weeks``
    weeks: how many, and the first ``limit`` — never contacted first, then the longest
    silent; each names their last contact and counts the accounts they own (a query per
    owner shown: counting them for every silent owner grew with the accounts, ~1 ms per owner
    at 100,000 accounts)."""
    roster, owners = load(conn, as_of), owner_ids(conn)
    for employee_id in owners:
        roster.setdefault(employee_id, Employee(employee_id))
    silent = []
    for person in roster.values():
        flag = habit(person, int(person.employee_id in owners), as_of)
        if flag is not None and flag["silent"]:
            silent.append((person, flag))
    silent.sort(key=lambda pf: (pf[1]["last_customer_contact"] is not None,
                                (pf[1]["last_customer_contact"] or {}).get("at", ""),
                                pf[0].employee_id))  # fmt: skip
    shown = silent[: max(limit, 0)]
    owned = owned_counts(conn, [person.employee_id for person, _ in shown], owners)
    found = []
    for person, flag in shown:
        roles = [r for r, yes in (("executive", person.executive),
                                  ("owner", person.employee_id in owners)) if yes]  # fmt: skip
        found.append({"employee": person.identity(), "roles": roles,
                      "accounts_owned": owned[person.employee_id],
                      "registered": person.registered, **flag})  # fmt: skip
    return len(silent), found


def employee_json(person: Employee, owned: int, as_of: AsOf) -> dict[str, Any]:
    last = person.last_contact
    return {
        "employee_id": person.employee_id, "name": person.name,
        "department": person.department, "title": person.title,
        "executive": person.executive, "active": person.active,
        "registered": person.registered, "accounts_owned": owned,
        "last_customer_contact": None if last is None else {
            k: v for k, v in last.items() if k != "at_us"},
        "silent": is_silent(person, as_of),
        "event_ids": list(person.registered_event_ids),
    }  # fmt: skip
