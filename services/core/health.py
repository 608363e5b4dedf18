"""Account health: 100 minus documented penalties, each citing the events behind it.

Deterministic: the same facts and the same clock give the same score and factors, in the same
order. Each penalty is ``per_item`` times the number of items, capped at ``cap``; the score never
goes below 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.core.view_rules import (
    LOW_CSAT,
    NEGLECT_DAYS,
    URGENT,
    AsOf,
    Facts,
    conflicts,
    executive_items,
    is_overdue,
    is_stale,
    live_offers,
    open_commitments,
    open_handoffs,
    open_tickets,
    recurrences_after_fix,
    recurring_complaints,
    single_threaded,
    unattended_renewal,
)


@dataclass(frozen=True)
class Penalty:
    per_item: int
    cap: int
    rule: str


PENALTIES: dict[str, Penalty] = {
    "neglected": Penalty(25, 25, f"touched before, but not in the last {NEGLECT_DAYS} days"),
    "overdue_commitments": Penalty(15, 30, "per open commitment past its due time"),
    "open_complaints": Penalty(10, 20, "per open ticket opened as a complaint"),
    "recurring_complaints": Penalty(
        15, 30, "per complaint category recurring within {recurring_days} days"
    ),
    "unattended_renewal": Penalty(
        15,
        15,
        "the next renewal is within {renewal_days} days and nobody touched the account"
        " in {renewal_quiet_days} days",
    ),
    "recurrence_after_fix": Penalty(
        20, 40, "per complaint in a category a recorded prevention was meant to fix"
    ),
    "urgent_tickets": Penalty(5, 15, "per open ticket of severity high or urgent"),
    "executive_concerns": Penalty(5, 15, "per concern or complaint executives heard in 90 days"),
    "low_csat": Penalty(10, 20, "per CSAT score of 1 or 2 in 90 days"),
    "conflicting_offers": Penalty(10, 20, "per pair of live offers that contradict each other"),
    "single_threaded": Penalty(10, 10, "80% or more of 90 days' touches by one employee"),
    "stale_handoffs": Penalty(
        10, 20, "per marketing signal no sales or success touch followed up in {handoff_days} days"
    ),
}
AT_RISK_BELOW = 60


def _evidence(facts: Facts, as_of: AsOf) -> dict[str, list[list[str]]]:
    """Per factor, one list of event ids per counted item."""
    since_neglect = as_of.since(NEGLECT_DAYS)
    tickets = open_tickets(facts, as_of)
    heard = executive_items(facts, as_of, "concerns") + executive_items(facts, as_of, "complaints")
    return {
        "neglected": [[facts.last_touch_event_id]]
        if facts.last_touch_event_id is not None and facts.last_touch_us is not None
        and facts.last_touch_us < since_neglect else [],
        "overdue_commitments": [[c.made_event_id] for c in open_commitments(facts, as_of)
                                if is_overdue(c, as_of) and c.made_event_id],
        "open_complaints": [[t.opened_event_id] for t in tickets
                            if t.complaint and t.opened_event_id],
        "recurring_complaints": [r["event_ids"] for r in recurring_complaints(facts, as_of)],
        "recurrence_after_fix": [r["event_ids"] for r in recurrences_after_fix(facts, as_of)],
        "unattended_renewal": [] if (renewal := unattended_renewal(facts, as_of)) is None
        else [renewal],
        "urgent_tickets": [[t.opened_event_id] for t in tickets
                           if t.severity in URGENT and t.opened_event_id],
        "executive_concerns": [[h["event_id"]] for h in heard],
        "low_csat": [[e] for e, score, at in sorted(facts.csat, key=lambda c: (c[2], c[0]))
                     if score <= LOW_CSAT and as_of.within(at, 90)],
        "conflicting_offers": [c["event_ids"] for c in conflicts(live_offers(facts, as_of))],
        "stale_handoffs": [[h.event_id] for h in open_handoffs(facts, as_of)
                           if is_stale(h, as_of)],
    }  # fmt: skip


def health(
    facts: Facts, as_of: AsOf, single_threaded_evidence: list[str] | None = None, *,
    at_risk_below: int = AT_RISK_BELOW,
) -> dict[str, Any]:  # fmt: skip
    """``{score, at_risk, factors: [{name, effect, count, rule, evidence}]}``.

    ``single_threaded_evidence`` is the dominant employee's touches (the view loads them; the
    accounts list, which shows only the score, does not).
    """
    items = _evidence(facts, as_of)
    if single_threaded(facts.actors_90d) is not None:
        items["single_threaded"] = [single_threaded_evidence or []]
    factors: list[dict[str, Any]] = []
    for name, penalty in PENALTIES.items():
        counted = items.get(name, [])
        if not counted:
            continue
        evidence = list(dict.fromkeys(e for item in counted for e in item))
        factors.append({
            "name": name, "effect": -min(penalty.cap, penalty.per_item * len(counted)),
            "count": len(counted), "evidence": evidence,
            "rule": penalty.rule.format(**vars(as_of.policy)),
        })  # fmt: skip
    score = max(0, 100 + sum(f["effect"] for f in factors))
    return {"score": score, "at_risk": score < at_risk_below, "factors": factors}
