"""``GET /v1/reports/handoffs``: did sales and success follow up marketing's signals?

A signal (event attended, content engaged, campaign responded) opens a handoff per contact it
names, or one for the account; the first sales or success touch at or after it (by the actor or
a participant, naming the contact for a contact's handoff) follows it up — the view's rule
(``view_rules.Handoff``, ``view_facts.handoffs``). A handoff is followed up *in time* when that
touch came before the end of the ``ONEVOICE_HANDOFF_DAYS`` window (business calendar days, the
signal's day included), and *stale* when it is still open after it.

Read from the OneVoiceView's signals (indexed by time), each with its first follow-up in the
whole log, which the projection keeps on the signal's row as touches and signals arrive
(``projections.onevoice``): up to now it is that follow-up when it is not after now, else none
— no touch is looked up per request.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from operator import attrgetter
from typing import Any, NamedTuple

from sqlalchemy import Connection, null, select

from services.core.readmodels import accounts, onevoice
from services.core.view_rules import (
    DAY_US,
    FOLLOW_UP_DEPARTMENTS,
    HOUR_US,
    AsOf,
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


class Signal(NamedTuple):
    """One handoff (``view_rules.Handoff``'s fields a report needs) with its first follow-up
    (a named tuple: a report builds thousands, and a frozen dataclass costs several times as
    much to build)."""

    account_id: str
    event_id: str
    type: str
    at_us: int
    contact_key: str  # "" for a signal that named no contact
    contact_pii: str | None  # JSON: the contact as sent
    campaign_id: str | None
    detail: str | None
    followed_us: int | None
    followed_event_id: str | None

    @property
    def contact(self) -> dict[str, Any] | None:
        return None if self.contact_pii is None else json.loads(self.contact_pii)


def signals_between(conn: Connection, from_us: int, to_us: int, as_of: AsOf,
                    campaign_id: str | None = None, *,
                    details: bool = True) -> list[Signal]:  # fmt: skip
    """The handoffs of signals in ``[from_us, to_us)`` up to now (of ``campaign_id`` when
    given), each with its first follow-up up to now; without ``details``, no contact as sent
    and no detail (``None``)."""
    s = onevoice.TABLES.signals.c
    shown = (s.contact_pii, s.detail) if details else (null(), null())
    stmt = select(
        s.account_id, s.event_id, s.type, s.at_us, s.contact_key, *shown, s.campaign_id,
        s.followed_us, s.followed_event_id,
    ).where(s.at_us >= from_us, s.at_us < min(to_us, as_of.now_us + 1))  # fmt: skip
    if campaign_id is not None:
        stmt = stmt.where(s.campaign_id == campaign_id)
    now_us = as_of.now_us
    return [Signal(r[0], r[1], r[2], r[3], r[4], r[5], r[7], r[6],
                   *((r[8], r[9]) if r[8] is not None and r[8] <= now_us else (None, None)))
            for r in conn.execute(stmt).all()]  # fmt: skip


def deadline(h: Signal, as_of: AsOf) -> int:
    """The end of the handoff's follow-up window: local midnight ``handoff_days`` days after
    the signal's day (``view_rules.is_stale`` turns true from then on)."""
    return window_end(h.at_us, as_of)


def window_end(at_us: int, as_of: AsOf) -> int:
    """``deadline`` of a signal at ``at_us``."""
    day = _utc(at_us).astimezone(as_of.tz).date()
    return _local_midnight(day + timedelta(days=as_of.policy.handoff_days), as_of)


def _local_midnight(day: date, as_of: AsOf) -> int:
    return _micros(datetime.combine(day, time(0), tzinfo=as_of.tz))


class Deadlines:
    """``deadline`` for signals read in time order: the signals of one local day share one."""

    def __init__(self, as_of: AsOf) -> None:
        self._as_of = as_of
        self._day = (1, 0, 0)  # [start, end) of the last signal's local day, its deadline

    def __call__(self, h: Signal) -> int:
        start, end, due = self._day
        if not start <= h.at_us < end:
            day = _utc(h.at_us).astimezone(self._as_of.tz).date()
            start = _local_midnight(day, self._as_of)
            end = _local_midnight(day + timedelta(days=1), self._as_of)
            due = deadline(h, self._as_of)
            self._day = (start, end, due)
        return due


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

    def add(self, account_id: str, hours: float | None, in_time: bool, stale: bool) -> None:
        """Count a signal of ``account_id``: followed up after ``hours`` (None: still open), in
        time or not; open past its window (``stale``) or not (``_Tally.judged``)."""
        self.signals += 1
        if hours is not None:
            self.followed += 1
            self.hours.append(hours)
            self.in_time += in_time
        else:
            self.open += 1
            self.stale += stale
            self.accounts_left.add(account_id)

    @staticmethod
    def judged(h: Signal, due_us: int, as_of: AsOf) -> tuple[float | None, bool, bool]:
        """``add``'s figures of ``h``, whose follow-up window ends at ``due_us``
        (``deadline``)."""
        if as_of.past(h.followed_us):
            followed = h.followed_us or 0
            return (followed - h.at_us) / HOUR_US, followed < due_us, False
        return None, False, as_of.now_us >= due_us

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
    found = signals_between(conn, query.from_us, query.to_us, as_of, query.campaign_id)
    owners = _owners(conn, query.from_us, as_of)
    total = _Tally()
    campaigns: dict[str | None, _Tally] = defaultdict(_Tally)
    by_owner: dict[str | None, _Tally] = defaultdict(_Tally)
    left: list[tuple[Signal, int]] = []
    deadline_of = Deadlines(as_of)
    nobody: list[str | None] = [None]
    for h in sorted(found, key=attrgetter("at_us", "account_id", "event_id", "contact_key")):
        account_id, due_us = h.account_id, deadline_of(h)
        judged = _Tally.judged(h, due_us, as_of)
        total.add(account_id, *judged)
        campaigns[h.campaign_id].add(account_id, *judged)
        for owner in owners.get(account_id) or nobody:
            by_owner[owner].add(account_id, *judged)
        if judged[0] is None:
            left.append((h, due_us))
    order = lambda kv: (kv[0] is None, kv[0] or "")  # noqa: E731
    return {
        "from": iso(query.from_us), "to": iso(query.to_us), "as_of": iso(as_of.now_us),
        "handoff_days": as_of.policy.handoff_days, "total": total.json(),
        "campaigns": [{"campaign_id": k, **t.json()} for k, t in sorted(campaigns.items(),
                                                                         key=order)],
        "owners": [{"owner": k, **t.json()} for k, t in sorted(by_owner.items(), key=order)],
        "left": {"count": len(left), "items": [  # only those shown are built
            {"account_id": h.account_id, "contact": h.contact, "type": h.type,
             "campaign_id": h.campaign_id, "detail": h.detail, "at": iso(h.at_us),
             "event_id": h.event_id, "owners": owners.get(h.account_id, []),
             "age_days": (as_of.now_us - h.at_us) // DAY_US, "stale": as_of.now_us >= due_us}
            for h, due_us in left[: query.limit]]},
    }  # fmt: skip


FIGURES = ("signals", "followed_up", "followed_up_in_time", "open", "stale",
           "median_hours_to_follow_up", "accounts_left")  # fmt: skip


def handoff_rows(report: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """The CSV: the total, then one row per campaign and per owner."""
    rows = [["total", None, *(report["total"][f] for f in FIGURES)]]
    rows += [["campaign", c["campaign_id"], *(c[f] for f in FIGURES)] for c in report["campaigns"]]
    rows += [["owner", o["owner"], *(o[f] for f in FIGURES)] for o in report["owners"]]
    return ["by", "name", *FIGURES], rows
