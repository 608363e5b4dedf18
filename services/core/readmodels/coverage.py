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

from sqlalchemy import Connection

from services.core.readmodels import account_health, attention
from services.core.readmodels.reports import roster
from services.core.view_rules import NEGLECT_DAYS, AsOf, iso


def read_coverage(conn: Connection, as_of: AsOf, limit: int) -> dict[str, Any]:
    """Every section, from each account's items (``attention``; kept ahead by the health
    cache), in account id order within equal sort keys."""
    sections: dict[str, list[dict[str, Any]]] = {s: [] for s in attention.SECTIONS}
    found = account_health.coverage_items(conn, as_of)
    for account_id in sorted(found):
        for section, items in found[account_id].items():
            sections[section] += items
    return {
        "as_of": {"at": iso(as_of.now_us), "time_zone": as_of.tz.key},
        "neglected": _section(sections["neglected"], limit,
                              lambda i: (i["last_touch_at"], i["account_id"])),
        "never_contacted": _section(sections["never_contacted"], limit,
                                    lambda i: (i["name"] or "", i["account_id"])),
        "single_threaded": _section(sections["single_threaded"], limit,
                                    lambda i: (-i["share"], i["account_id"])),
        "recurring_complaints": _section(
            sections["recurring_complaints"], limit,
            lambda i: (-sum(c["count"] for c in i["categories"]), i["account_id"])),
        "overdue_commitments": _section(sections["overdue_commitments"], limit,
                                        lambda i: (i["due_at"], i["account_id"])),
        "stale_handoffs": _section(sections["stale_handoffs"], limit,
                                   lambda i: (i["oldest_at"], i["account_id"])),
        "recurrences_after_fix": _section(
            sections["recurrences_after_fix"], limit,
            lambda i: (i["opened_at"], i["account_id"], i["ticket_id"])),
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
