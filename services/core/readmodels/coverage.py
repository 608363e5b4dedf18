"""``GET /v1/reports/coverage``: the accounts that need someone's attention, and why.

Sections: neglected (touched before, not in the last 30 days), never contacted (registered, never
touched), single-threaded, recurring complaints, overdue commitments, stale handoffs (marketing
signals nobody in sales or success followed up within ``ONEVOICE_HANDOFF_DAYS``), silent employees
(active executives and account owners with no customer contact for
``ONEVOICE_SILENT_EMPLOYEE_WEEKS`` weeks: the habit keepers, ``reports.roster``). Each section
gives its full ``count`` and its first ``limit`` items, most urgent first; every item names its
evidence events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, select

from services.core.readmodels import accounts, view_facts
from services.core.readmodels.reports import roster
from services.core.view_rules import (
    NEGLECT_DAYS,
    AsOf,
    Facts,
    is_overdue,
    is_stale,
    iso,
    open_commitments,
    open_handoffs,
    recurrences_after_fix,
    recurring_complaints,
    single_threaded,
)


def read_coverage(conn: Connection, as_of: AsOf, limit: int) -> dict[str, Any]:
    a = accounts.TABLES.accounts
    directory = conn.execute(
        select(a.c.account_id, a.c.name, a.c.registered, a.c.last_touch_us).order_by(a.c.account_id)
    ).all()
    facts = view_facts.load_facts(conn, None, as_of, open_only=True, orders=False)
    since = as_of.since(NEGLECT_DAYS)
    neglected, never, single, recurring, overdue, stale = [], [], [], [], [], []
    after_fix: list[dict[str, Any]] = []
    for row in directory:
        base = {"account_id": row.account_id, "name": row.name}
        f = facts.get(row.account_id, Facts())
        if row.last_touch_us is None:
            if row.registered:
                never.append(base)
        elif f.last_touch_us is not None and f.last_touch_us < since:  # the last touch up to now
            neglected.append({**base, "last_touch_at": iso(f.last_touch_us),
                              "evidence": [f.last_touch_event_id]})  # fmt: skip
        top = single_threaded(f.actors_90d)
        if top is not None:
            total = sum(x.touches for x in f.actors_90d)
            share = round(top.touches / total, 4)
            single.append({**base, "employee_id": top.actor_id, "department": top.department,
                           "touches": top.touches, "share": share})  # fmt: skip
        categories = recurring_complaints(f, as_of)
        if categories:
            recurring.append({**base, "categories": categories})
        after_fix += [{**base, **r} for r in recurrences_after_fix(f, as_of)]
        late = [h for h in open_handoffs(f, as_of) if is_stale(h, as_of)]
        if late:
            stale.append({**base, "handoffs": len(late), "oldest_at": iso(late[0].at_us),
                          "evidence": list(dict.fromkeys(h.event_id for h in late))})  # fmt: skip
        for c in open_commitments(f, as_of):
            if is_overdue(c, as_of):
                overdue.append({**base, "commitment_id": c.commitment_id, "text": c.text,
                                "made_by": c.made_by, "due_at": iso(c.due_us or 0),
                                "evidence": [c.made_event_id]})  # fmt: skip
    return {
        "as_of": {"at": iso(as_of.now_us), "time_zone": as_of.tz.key},
        "neglected": _section(neglected, limit, lambda i: (i["last_touch_at"], i["account_id"])),
        "never_contacted": _section(never, limit, lambda i: (i["name"] or "", i["account_id"])),
        "single_threaded": _section(single, limit, lambda i: (-i["share"], i["account_id"])),
        "recurring_complaints": _section(
            recurring, limit,
            lambda i: (-sum(c["count"] for c in i["categories"]), i["account_id"])),
        "overdue_commitments": _section(overdue, limit, lambda i: (i["due_at"], i["account_id"])),
        "stale_handoffs": _section(stale, limit, lambda i: (i["oldest_at"], i["account_id"])),
        "recurrences_after_fix": _section(
            after_fix, limit, lambda i: (i["opened_at"], i["account_id"], i["ticket_id"])),
        "silent_employees": _section(roster.silent_people(conn, as_of), limit, lambda i: 0),
        "rules": {"neglected_days": NEGLECT_DAYS, "handoff_days": as_of.policy.handoff_days,
                  "recurring_days": as_of.policy.recurring_days,
                  "silent_employee_weeks": as_of.policy.silent_weeks},
    }  # fmt: skip


def _section(
    items: list[dict[str, Any]], limit: int, key: Callable[[dict[str, Any]], Any]
) -> dict[str, Any]:
    items.sort(key=key)
    return {"count": len(items), "items": items[:limit]}
