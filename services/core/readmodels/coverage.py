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

from typing import Any

from sqlalchemy import Connection

from services.core.readmodels import account_health, attention
from services.core.readmodels.reports import roster
from services.core.view_rules import NEGLECT_DAYS, AsOf, iso


def read_coverage(conn: Connection, as_of: AsOf, limit: int) -> dict[str, Any]:
    """Every section, from each account's items (``attention``; kept ahead by the health
    cache), in ``attention.ORDER`` (account id order within equal keys)."""
    sections = account_health.coverage_sections(conn, as_of, limit)
    return {
        "as_of": {"at": iso(as_of.now_us), "time_zone": as_of.tz.key},
        **{s: sections[s] for s in attention.SECTIONS},
        "silent_employees": _silent(conn, as_of, limit),
        "rules": {"neglected_days": NEGLECT_DAYS, "handoff_days": as_of.policy.handoff_days,
                  "recurring_days": as_of.policy.recurring_days,
                  "silent_employee_weeks": as_of.policy.silent_weeks},
    }  # fmt: skip


def _silent(conn: Connection, as_of: AsOf, limit: int) -> dict[str, Any]:
    count, items = roster.silent_people(conn, as_of, limit)
    return {"count": count, "items": items}
