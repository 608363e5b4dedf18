"""``GET /v1/reports/handoffs``: did sales and success follow up marketing's signals?

A signal (event attended, content engaged, campaign responded) opens a handoff per contact it
names, or one for the account; the first sales or success touch at or after it (by the actor or
a participant, naming the contact for a contact's handoff) follows it up — the view's rule
(``view_rules.Handoff``). A handoff is followed up *in time* when that touch came before the end
of the ``ONEVOICE_HANDOFF_DAYS`` window (business calendar days, the signal's day included), and
*stale* when it is still open after it. Read from the OneVoiceView's signals (indexed by time)
and the follow-up candidates of the accounts that have signals.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, select

from services.core.readmodels import accounts, onevoice, view_facts
from services.core.view_rules import (
    DAY_US,
    FOLLOW_UP_DEPARTMENTS,
    HOUR_US,
    AsOf,
    Handoff,
    _micros,
    _utc,
    iso,
)


@dataclass(frozen=True)
class HandoffQuery:
    from_us: int
    to_us: int
    campaign_id: str | None = None
    limit: int = 100  # handoffs left open, listed


def deadline(h: Handoff, as_of: AsOf) -> int:
    """The end of the handoff's follow-up window: local midnight ``handoff_days`` days after
    the signal's day (``view_rules.is_stale`` turns true from then on)."""
    day = _utc(h.at_us).astimezone(as_of.tz).date()
    return _micros(datetime.combine(day + timedelta(days=as_of.policy.handoff_days), time(0),
                                    tzinfo=as_of.tz))  # fmt: skip


def _owners(conn: Connection, from_us: int, as_of: AsOf) -> dict[str, list[str]]:
    """The sales and success owners of the accounts with a signal from ``from_us`` up to now."""
    o, s = accounts.TABLES.owners, onevoice.TABLES.signals
    signalled = select(s.c.account_id).where(s.c.at_us.between(from_us, as_of.now_us))
    found: dict[str, set[str]] = {}
    for r in conn.execute(select(o.c.account_id, o.c.employee_id).where(
            o.c.account_id.in_(signalled), o.c.department.in_(FOLLOW_UP_DEPARTMENTS))):  # fmt: skip
        found.setdefault(r.account_id, set()).add(r.employee_id)
    return {k: sorted(v) for k, v in found.items()}


class _Tally:
    def __init__(self) -> None:
        self.signals = self.followed = self.in_time = self.open = self.stale = 0
        self.hours: list[float] = []
        self.accounts_left: set[str] = set()

    def add(self, account_id: str, h: Handoff, due_us: int, as_of: AsOf) -> None:
        """Count ``h``, whose follow-up window ends at ``due_us`` (``deadline``)."""
        self.signals += 1
        if as_of.past(h.followed_us):
            self.followed += 1
            self.hours.append(((h.followed_us or 0) - h.at_us) / HOUR_US)
            self.in_time += (h.followed_us or 0) < due_us
        else:
            self.open += 1
            self.stale += as_of.now_us >= due_us
            self.accounts_left.add(account_id)

    def json(self) -> dict[str, Any]:
        return {"signals": self.signals, "followed_up": self.followed,
                "followed_up_in_time": self.in_time, "open": self.open, "stale": self.stale,
                "median_hours_to_follow_up":
                    round(statistics.median(self.hours), 2) if self.hours else None,
                "accounts_left": len(self.accounts_left)}  # fmt: skip


def read_handoffs(conn: Connection, query: HandoffQuery, as_of: AsOf) -> dict[str, Any]:
    """Totals, then per campaign (``null``: signals of no campaign) and per owner (the
    account's sales and success owners; ``null``: none), and the handoffs left open, oldest
    first (the first ``limit``), each naming its account, contact, signal event and age."""
    found = [(a, h) for a, h in view_facts.handoffs_since(conn, query.from_us, as_of)
             if h.at_us < query.to_us and as_of.past(h.at_us)
             and (query.campaign_id is None or h.campaign_id == query.campaign_id)]  # fmt: skip
    owners = _owners(conn, query.from_us, as_of)
    total = _Tally()
    campaigns: dict[str | None, _Tally] = {}
    by_owner: dict[str | None, _Tally] = {}
    left = []
    for account_id, h in sorted(found, key=lambda f: (f[1].at_us, f[0], f[1].event_id,
                                                      f[1].contact_key)):  # fmt: skip
        due_us = deadline(h, as_of)
        total.add(account_id, h, due_us, as_of)
        campaigns.setdefault(h.campaign_id, _Tally()).add(account_id, h, due_us, as_of)
        owned: list[str | None] = [*owners.get(account_id, [])] or [None]
        for owner in owned:
            by_owner.setdefault(owner, _Tally()).add(account_id, h, due_us, as_of)
        if not as_of.past(h.followed_us):
            left.append({"account_id": account_id, "contact": h.contact, "type": h.type,
                         "campaign_id": h.campaign_id, "detail": h.detail, "at": iso(h.at_us),
                         "event_id": h.event_id, "owners": owners.get(account_id, []),
                         "age_days": (as_of.now_us - h.at_us) // DAY_US,
                         "stale": as_of.now_us >= due_us})  # fmt: skip
    order = lambda kv: (kv[0] is None, kv[0] or "")  # noqa: E731
    return {
        "from": iso(query.from_us), "to": iso(query.to_us), "as_of": iso(as_of.now_us),
        "handoff_days": as_of.policy.handoff_days, "total": total.json(),
        "campaigns": [{"campaign_id": k, **t.json()} for k, t in sorted(campaigns.items(),
                                                                         key=order)],
        "owners": [{"owner": k, **t.json()} for k, t in sorted(by_owner.items(), key=order)],
        "left": {"count": len(left), "items": left[: query.limit]},
    }  # fmt: skip


FIGURES = ("signals", "followed_up", "followed_up_in_time", "open", "stale",
           "median_hours_to_follow_up", "accounts_left")  # fmt: skip


def handoff_rows(report: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """The CSV: the total, then one row per campaign and per owner."""
    rows = [["total", None, *(report["total"][f] for f in FIGURES)]]
    rows += [["campaign", c["campaign_id"], *(c[f] for f in FIGURES)] for c in report["campaigns"]]
    rows += [["owner", o["owner"], *(o[f] for f in FIGURES)] for o in report["owners"]]
    return ["by", "name", *FIGURES], rows
