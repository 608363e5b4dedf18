"""The feed: what the rest of the company said to an employee's customers.

An employee's accounts are those they own (latest registration's owners) and those they have
touched (as an event's actor or participant); the feed leaves out the events they took part in.
Read from the AccountTimeline and AccountDirectory tables; nothing here is computed
per event at read time beyond the page itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, exists, select, tuple_, union

from services.core.readmodels import accounts, cursors, timeline


@dataclass(frozen=True)
class FeedQuery:
    employee_id: str
    since_us: int
    limit: int = 50
    after: timeline.SortKey | None = None


def read_feed(
    conn: Connection, query: FeedQuery
) -> tuple[list[str], list[dict[str, Any]], str | None]:
    """(the employee's accounts, a page of others' events on them newest first, next cursor)."""
    d = accounts.TABLES
    mine = union(
        select(d.owners.c.account_id).where(d.owners.c.employee_id == query.employee_id),
        select(d.employees.c.account_id).where(d.employees.c.employee_id == query.employee_id),
    ).subquery()
    account_ids = sorted(conn.execute(select(mine.c.account_id)).scalars())
    e, ev, pa = timeline.TABLES.entries, timeline.TABLES.events, timeline.TABLES.participants
    columns = (e.c.occurred_us, e.c.partition, e.c.offset)
    conditions = [
        e.c.account_id.in_(select(mine.c.account_id)),
        ev.c.actor_id != query.employee_id,
        ~exists().where(pa.c.event_id == e.c.event_id, pa.c.person_id == query.employee_id),
        e.c.occurred_us >= query.since_us,
    ]
    if query.after is not None:
        conditions.append(tuple_(*columns) < tuple_(*query.after))
    rows = conn.execute(
        select(ev.c.body, *columns)
        .distinct()
        .select_from(e.join(ev, ev.c.event_id == e.c.event_id))
        .where(and_(*conditions))
        .order_by(*(c.desc() for c in columns))
        .limit(query.limit + 1)
    ).all()
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    items = [json.loads(r.body) for r in rows]
    cursor = None
    if more:
        last = rows[-1]
        cursor = cursors.encode([int(last.occurred_us), int(last.partition), int(last.offset)])
    return account_ids, items, cursor


def owned(conn: Connection, employee_id: str) -> list[str]:
    """The accounts whose latest registration names this employee as an owner."""
    o = accounts.TABLES.owners
    rows = conn.execute(select(o.c.account_id).where(o.c.employee_id == employee_id).distinct())
    return sorted(rows.scalars())
