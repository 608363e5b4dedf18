"""``GET /v1/accounts/{id}/view``: one account's one-voice view, assembled from stored facts.

Everything read here was precomputed by projections; this module only picks the rows that
matter at ``as_of`` and applies the rules of ``services.core.view_rules`` and
``services.core.health``. Read it inside one snapshot so every section reflects the same
positions (``as_of.positions``).
"""

from __future__ import annotations

from collections.abc import Sequence
from math import fsum
from typing import Any

from sqlalchemy import Connection

from services.core.adapters import sql
from services.core.events import DEFAULT_DEPARTMENTS
from services.core.health import AT_RISK_BELOW, health
from services.core.readmodels import accounts, checkpoints, view_facts
from services.core.view_rules import (
    DAY_US,
    URGENT,
    AsOf,
    Facts,
    Handoff,
    Need,
    OrderTotal,
    addressed_needs,
    conflicts,
    executive_items,
    is_overdue,
    is_stale,
    iso,
    live_offers,
    next_renewal,
    offer_json,
    open_commitments,
    open_handoffs,
    open_needs,
    open_tickets,
    recurrences_after_fix,
    recurring_complaints,
    single_threaded,
)


def read_view(
    conn: Connection, account_id: str, as_of: AsOf, *, children: Sequence[str] | None = None,
    projections: Sequence[str] = (), topic: str = "", at_risk_below: int = AT_RISK_BELOW,
    departments: Sequence[str] = DEFAULT_DEPARTMENTS,
) -> dict[str, Any] | None:  # fmt: skip
    """The view, or None when the account is unknown (no event named it). ``children`` (the
    accounts registered below it) are rolled in and listed as ``included_accounts``."""
    group = [account_id, *(children or ())]
    # Every read at once (one round trip on PostgreSQL), an unknown account's included.
    reads = [*accounts.items_reads(group), *view_facts.group_reads(group, as_of)]
    if projections:
        reads.append(checkpoints.slowest_read(projections, checkpoints.LIVE_GENERATION, topic))
    read = sql.read_together(conn, reads)
    items = accounts.items_from(read[0], read[1], with_us=True)
    if account_id not in items:
        return None
    lasts = {a: (i["last_touch"]["at_us"], i["last_touch"]["event_id"]) if i["last_touch"]
             else (None, None) for a, i in items.items()}  # fmt: skip
    loaded = view_facts.group_from(conn, read[2 : len(reads) - bool(projections)], group, as_of,
                                   lasts)  # fmt: skip
    facts = loaded.facts
    top = single_threaded(facts.actors_90d)
    evidence = [] if top is None else view_facts.touches_by(loaded.touches, top.actor_id)
    positions = checkpoints.slowest_from(read[-1], projections) if projections else {}
    me = items[account_id]
    view: dict[str, Any] = {
        "account_id": account_id,
        "account": {k: me[k] for k in ("name", "registered", "segment", "tier",
                                       "parent_account_id", "owners")},
        "last_touch": _last_touch([items[a] for a in group if a in items]),
        "pressure": _pressure(view_facts.pressure(loaded.touches, as_of), departments),
        "commitments": _commitments(facts, as_of),
        "support": _support(facts, as_of),
        "messaging": _messaging(facts, as_of),
        "relationships": _relationships(loaded, as_of),
        "handoffs": _handoffs(facts, as_of),
        "needs": _needs(facts, as_of),
        "value": _value(facts, as_of),
        "leadership": _leadership(loaded, as_of),
        "health": health(facts, as_of, evidence, at_risk_below=at_risk_below),
        "as_of": {
            "at": iso(as_of.now_us), "time_zone": as_of.tz.key,
            "positions": {str(p): o for p, o in sorted(positions.items())},
        },
    }  # fmt: skip
    if children is not None:
        view["included_accounts"] = list(children)
    return view


def _last_touch(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    by_department: dict[str, dict[str, Any]] = {}
    for item in items:
        for department, touch in item["last_touch_by_department"].items():
            best = by_department.get(department)
            if best is None or (touch["at_us"], touch["event_id"]) > (
                best["at_us"],
                best["event_id"],
            ):
                by_department[department] = touch
    # The latest event's actor (its participants' departments share its time and id).
    # Ties at one instant go by event id, then the actor's row, then the department's name, so
    # the answer never depends on the order rows come back in.
    overall = max(by_department.items(), key=lambda dt: (dt[1]["at_us"], dt[1]["event_id"],
                                                         dt[1]["_by_actor"], dt[0]),
                  default=(None, None))[1]  # fmt: skip
    return {
        "overall": None if overall is None else _without_us(overall),
        "by_department": {d: _without_us(t) for d, t in sorted(by_department.items())},
    }


def _without_us(touch: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in touch.items() if k not in ("at_us", "_by_actor")}


def _pressure(counts: dict[Any, dict[str, int]], departments: Sequence[str]) -> dict[str, Any]:
    """Every configured department (zeros included) and any other one that touched it; the
    total counts each event once, however many departments took part."""
    zero = {"7d": 0, "30d": 0, "90d": 0}
    named = [*departments, *sorted(d for d in counts if d is not None and d not in departments)]
    by_department = {d: counts.get(d, dict(zero)) for d in named}
    return {"by_department": by_department, "total": counts.get(None, dict(zero))}


def _commitments(facts: Facts, as_of: AsOf) -> dict[str, Any]:
    opened = open_commitments(facts, as_of)
    closed = [c.closed_state for c in facts.commitments if as_of.past(c.closed_us)]
    return {
        "open": [
            {"commitment_id": c.commitment_id, "text": c.text, "made_by": c.made_by,
             "department": c.department, "made_at": iso(c.made_us or 0),
             "due_at": None if c.due_us is None else iso(c.due_us),
             "overdue": is_overdue(c, as_of), "event_id": c.made_event_id,
             **({"prevention": {"ticket_id": c.ticket_id, "owner": c.owner_id}}
                if c.ticket_id is not None else {})}
            for c in opened
        ],
        "counts": {"open": len(opened), "fulfilled": closed.count("fulfilled"),
                   "cancelled": closed.count("cancelled"),
                   "overdue": sum(is_overdue(c, as_of) for c in opened)},
    }  # fmt: skip


def _support(facts: Facts, as_of: AsOf) -> dict[str, Any]:
    tickets = open_tickets(facts, as_of)
    as_json = [
        {"ticket_id": t.ticket_id, "subject": t.subject, "category": t.category,
         "severity": t.severity, "complaint": t.complaint, "opened_at": iso(t.opened_us or 0),
         "event_id": t.opened_event_id}
        for t in tickets
    ]  # fmt: skip
    severities: dict[str, int] = {}
    for t in tickets:
        severities[t.severity or "unknown"] = severities.get(t.severity or "unknown", 0) + 1
    return {
        "open_tickets": {
            "count": len(tickets),
            "oldest_open_since": as_json[0]["opened_at"] if as_json else None,
            "by_severity": dict(sorted(severities.items())),
            "urgent": sum(t.severity in URGENT for t in tickets),
            "items": as_json,
        },
        "open_complaints": [t for t in as_json if t["complaint"]],
        "recurring_complaints": recurring_complaints(facts, as_of),
        "recurrences_after_fix": recurrences_after_fix(facts, as_of),
        "recurring_window_days": as_of.policy.recurring_days,
    }


def _messaging(facts: Facts, as_of: AsOf) -> dict[str, Any]:
    offers = live_offers(facts, as_of)
    campaigns = sorted(
        (m for m in facts.messages if m.kind == "campaign" and as_of.within(m.sort_key[0], 30)),
        key=lambda m: m.sort_key,
    )
    return {
        "campaigns_30d": [
            {"event_id": m.event_id, "campaign_id": m.ref_id, "name": m.name,
             "channel": m.channel, "at": iso(m.sort_key[0]), "actor": m.actor,
             "offer": None if m.product is None and m.discount_pct is None and m.terms is None
             else {"product": m.product, "discount_pct": m.discount_pct, "terms": m.terms}}
            for m in campaigns
        ],
        "live_offers": [offer_json(m) for m in offers],
        "conflicts": conflicts(offers),
    }  # fmt: skip


def handoff_json(h: Handoff, as_of: AsOf) -> dict[str, Any]:
    found: dict[str, Any] = {
        "event_id": h.event_id, "type": h.type, "at": iso(h.at_us), "contact": h.contact,
        "campaign_id": h.campaign_id, "detail": h.detail, "actor": h.actor,
        "summary": h.summary,
    }  # fmt: skip
    if as_of.past(h.followed_us):
        found["followed_up"] = {"at": iso(h.followed_us or 0), "event_id": h.followed_event_id}
    else:
        found["age_days"] = (as_of.now_us - h.at_us) // DAY_US
        found["stale"] = is_stale(h, as_of)
    return found


def _handoffs(facts: Facts, as_of: AsOf) -> dict[str, Any]:
    """Marketing signals of the 90-day window: the open ones (oldest first, with age and
    whether they are stale) and the ones followed up (latest first)."""
    opened = open_handoffs(facts, as_of)
    followed = sorted((h for h in facts.handoffs if as_of.past(h.at_us)
                       and as_of.past(h.followed_us)),
                      key=lambda h: (-h.at_us, h.event_id, h.contact_key))  # fmt: skip
    return {
        "open": [handoff_json(h, as_of) for h in opened],
        "followed_up": [handoff_json(h, as_of) for h in followed[:50]],
        "counts": {"open": len(opened), "stale": sum(is_stale(h, as_of) for h in opened),
                   "followed_up": len(followed)},
        "window_days": as_of.policy.handoff_days,
    }  # fmt: skip


def need_json(n: Need) -> dict[str, Any]:
    found: dict[str, Any] = {
        "need_id": n.need_id, "text": n.text, "category": n.category, "priority": n.priority,
        "department": n.department, "identified_by": n.identified_by,
        "identified_at": None if n.identified_us is None else iso(n.identified_us),
        "event_id": n.identified_event_id,
    }  # fmt: skip
    if n.addressed_us is not None:
        found["addressed"] = {"at": iso(n.addressed_us), "how": n.how, "on_site": n.on_site,
                              "by": n.addressed_by, "event_id": n.addressed_event_id}  # fmt: skip
    return found


def _needs(facts: Facts, as_of: AsOf) -> dict[str, Any]:
    """Open needs (most urgent, then oldest first) and those addressed in 90 days."""
    opened = open_needs(facts, as_of)
    addressed = addressed_needs(facts, as_of)
    on_site = [n for n in addressed if n.on_site]
    return {
        "open": [need_json(n) for n in opened],
        "addressed_90d": [need_json(n) for n in addressed[:50]],
        "solved_on_site_90d": [need_json(n) for n in on_site[:50]],
        "counts": {"open": len(opened), "addressed_90d": len(addressed),
                   "solved_on_site_90d": len(on_site)},
    }  # fmt: skip


def _value(facts: Facts, as_of: AsOf) -> dict[str, Any]:
    """Orders (the last, the 365-day window's, lifetime per currency), the next renewal and the
    latest churn."""
    # (an account and its children: each account's sums, added exactly)
    by_currency: dict[str, list[OrderTotal]] = {}
    for t in facts.order_totals:
        by_currency.setdefault(t.currency, []).append(t)
    totals = {cur: {"orders": sum(t.count for t in ts), "amount": fsum(t.amount for t in ts),
                    "orders_365d": sum(t.count_365d for t in ts),
                    "amount_365d": fsum(t.amount_365d for t in ts)}
              for cur, ts in by_currency.items()}  # fmt: skip
    last = None if facts.last_order is None else {
        k: v for k, v in facts.last_order.items() if k != "_key"}  # fmt: skip
    upcoming = next_renewal(facts, as_of)
    churned = max((c for c in facts.churns if as_of.past(c[1])), key=lambda c: (c[1], c[0]),
                  default=None)  # fmt: skip
    return {
        "last_order": last,
        "orders_365d": {cur: {"count": t["orders_365d"], "amount": t["amount_365d"]}
                        for cur, t in sorted(totals.items()) if t["orders_365d"]},
        "lifetime_value": {cur: t["amount"] for cur, t in sorted(totals.items())},
        "next_renewal": None if upcoming is None else {
            k: v for k, v in upcoming.items() if k != "renews_us"},
        "churned": None if churned is None else {
            "at": iso(churned[1]), "reason": churned[3], "contract_id": churned[2],
            "event_id": churned[0]},
    }  # fmt: skip


def _relationships(loaded: view_facts.Group, as_of: AsOf) -> dict[str, Any]:
    actors = loaded.facts.actors_90d
    top = single_threaded(actors)
    total = sum(a.touches for a in actors)
    contacts, total_contacts = view_facts.relationships(loaded.contacts)
    return {
        "contacts": contacts,
        "contacts_total": total_contacts,
        "breadth_90d": {
            "employees": len({a.actor_id for a in actors}),
            "departments": len({a.department for a in actors}),
            "touches": total,
        },
        "single_threaded": top is not None,
        "top_employee": None if top is None else {
            "employee_id": top.actor_id, "department": top.department,
            "touches": top.touches, "share": round(top.touches / total, 4),
        },
    }  # fmt: skip


def _leadership(loaded: view_facts.Group, as_of: AsOf) -> dict[str, Any]:
    t = loaded.executive_last
    last = None
    if t is not None:
        last = {"at": iso(t.at_us), "executive": t.executive, "type": t.type,
                "summary": t.summary, "event_id": t.event_id, **t.details,
                "executives": list(t.executives) or [t.executive]}  # fmt: skip
    return {
        "last_executive_touch": last,
        "concerns_90d": executive_items(loaded.facts, as_of, "concerns"),
        "complaints_90d": executive_items(loaded.facts, as_of, "complaints"),
    }
