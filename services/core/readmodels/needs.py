"""``GET /v1/needs``: customer needs across accounts, for product teams.

Read from the OneVoiceView's needs table. A need is open from its identification until a
``customer.need_addressed`` with its id (dated up to now); pages are keyset-paginated, newest
identification first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, and_, func, select, tuple_

from services.core.readmodels import cursors, onevoice
from services.core.readmodels.timeline import from_micros

Status = Literal["open", "addressed", "all"]


@dataclass(frozen=True)
class NeedQuery:
    status: Status = "open"
    category: str | None = None
    department: str | None = None
    account_id: str | None = None
    on_site: bool | None = None
    limit: int = 50
    after: tuple[int, str, str] | None = None


def decode_cursor(cursor: str) -> tuple[int, str, str]:
    key = cursors.decode(cursor)
    if not (len(key) == 3 and cursors.is_int64(key[0]) and isinstance(key[1], str)
            and isinstance(key[2], str)):  # fmt: skip
        raise cursors.BadCursor("cursor is not valid here; use next_cursor as given")
    return key[0], key[1], key[2]


def read_needs(
    conn: Connection, query: NeedQuery, now_us: int
) -> tuple[list[dict[str, Any]], str | None]:
    n = onevoice.TABLES.needs
    when = func.coalesce(n.c.identified_us, n.c.addressed_us)
    addressed = and_(n.c.addressed_us.is_not(None), n.c.addressed_us <= now_us)
    conditions = [when <= now_us]
    if query.status == "open":
        conditions += [n.c.identified_us.is_not(None), ~addressed]
    elif query.status == "addressed":
        conditions.append(addressed)
    if query.category is not None:
        conditions.append(n.c.category_key == query.category.casefold())
    if query.department is not None:
        conditions.append(n.c.department == query.department)
    if query.account_id is not None:
        conditions.append(n.c.account_id == query.account_id)
    if query.on_site is not None:
        conditions += [addressed, n.c.on_site.is_(query.on_site)]
    if query.after is not None:
        conditions.append(tuple_(when, n.c.account_id, n.c.need_id) < tuple_(*query.after))
    rows = conn.execute(
        select(n, when.label("sort_us")).where(and_(*conditions))
        .order_by(when.desc(), n.c.account_id.desc(), n.c.need_id.desc())
        .limit(query.limit + 1)
    ).all()  # fmt: skip
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    items = [_item(r, now_us) for r in rows]
    cursor = None
    if more:
        last = rows[-1]
        cursor = cursors.encode([int(last.sort_us), last.account_id, last.need_id])
    return items, cursor


def _item(r: Any, now_us: int) -> dict[str, Any]:
    done = r.addressed_us is not None and r.addressed_us <= now_us
    return {
        "account_id": r.account_id, "need_id": r.need_id, "text": r.text,
        "category": r.category, "priority": r.priority, "department": r.department,
        "identified_by": None if r.identified_by is None else json.loads(r.identified_by),
        "identified_at": None if r.identified_us is None else from_micros(r.identified_us),
        "event_id": r.identified_event_id, "status": "addressed" if done else "open",
        "addressed": None if not done else {
            "at": from_micros(r.addressed_us), "how": r.how, "on_site": bool(r.on_site),
            "by": None if r.addressed_by is None else json.loads(r.addressed_by),
            "event_id": r.addressed_event_id,
        },
    }  # fmt: skip
