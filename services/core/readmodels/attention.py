"""What one account contributes to the coverage report: its items per section, in the order the
report lists them within the account (``coverage`` sorts across accounts). A pure function of
the account's directory row, facts and clock, so the health cache can keep it ahead of reads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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

SECTIONS = ("neglected", "never_contacted", "single_threaded", "recurring_complaints",
            "overdue_commitments", "stale_handoffs", "recurrences_after_fix")  # fmt: skip

Item = dict[str, Any]

ORDER: dict[str, Callable[[Item], tuple[Any, ...]]] = {
    "neglected": lambda i: (i["last_touch_at"], i["account_id"]),
    "never_contacted": lambda i: (i["name"] or "", i["account_id"]),
    "single_threaded": lambda i: (-i["share"], i["account_id"]),
    "recurring_complaints": lambda i: (-sum(c["count"] for c in i["categories"]),
                                       i["account_id"]),
    "overdue_commitments": lambda i: (i["due_at"], i["account_id"]),
    "stale_handoffs": lambda i: (i["oldest_at"], i["account_id"]),
    "recurrences_after_fix": lambda i: (i["opened_at"], i["account_id"], i["ticket_id"]),
}  # fmt: skip
"""Each section's order in the report, most urgent first (a key of its items)."""


def first_key(section: str, items: list[Item]) -> Any:
    """The first component of ``ORDER`` over an account's items in ``section``: an account
    whose smallest is among the ``limit`` smallest holds every item the report shows first
    (for items of the same account compare equal up to it, then by account id)."""
    return min(ORDER[section](i)[0] for i in items)


def items(account_id: str, name: str | None, registered: bool, last_touch_us: int | None,
          f: Facts, as_of: AsOf) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    """Section -> this account's items (only sections with items)."""
    base = {"account_id": account_id, "name": name}
    out: dict[str, list[dict[str, Any]]] = {}
    if last_touch_us is None:
        if registered:
            out["never_contacted"] = [base]
    elif f.last_touch_us is not None and f.last_touch_us < as_of.since(NEGLECT_DAYS):
        # the last touch up to now
        out["neglected"] = [{**base, "last_touch_at": iso(f.last_touch_us),
                             "evidence": [f.last_touch_event_id]}]  # fmt: skip
    top = single_threaded(f.actors_90d)
    if top is not None:
        total = sum(x.touches for x in f.actors_90d)
        out["single_threaded"] = [{**base, "employee_id": top.actor_id,
                                   "department": top.department, "touches": top.touches,
                                   "share": round(top.touches / total, 4)}]  # fmt: skip
    categories = recurring_complaints(f, as_of)
    if categories:
        out["recurring_complaints"] = [{**base, "categories": categories}]
    after_fix = [{**base, **r} for r in recurrences_after_fix(f, as_of)]
    if after_fix:
        out["recurrences_after_fix"] = after_fix
    late = [h for h in open_handoffs(f, as_of) if is_stale(h, as_of)]
    if late:
        evidence = list(dict.fromkeys(h.event_id for h in late))
        out["stale_handoffs"] = [{**base, "handoffs": len(late), "oldest_at": iso(late[0].at_us),
                                  "evidence": evidence}]  # fmt: skip
    overdue = [{**base, "commitment_id": c.commitment_id, "text": c.text, "made_by": c.made_by,
                "due_at": iso(c.due_us or 0), "evidence": [c.made_event_id]}
               for c in open_commitments(f, as_of) if is_overdue(c, as_of)]  # fmt: skip
    if overdue:
        out["overdue_commitments"] = overdue
    return out
