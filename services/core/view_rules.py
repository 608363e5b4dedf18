"""The one-voice view's rules: pure functions of stored facts, a clock and a business time zone.

Rules (the README repeats them for users):
- A window of N days is the N calendar days ending today in the business time zone: from local
  midnight N-1 days before today, up to now. Facts dated after now are not counted anywhere.
- A commitment is open until a ``commitment.fulfilled``/``cancelled`` with its id; an open
  commitment is overdue from its due time on (``now >= due_at``).
- A ticket is open until a ``support.ticket_resolved`` with its id. A complaint is a ticket opened
  with ``complaint: true``. A complaint category recurs when two or more complaints of that
  category (compared case-insensitively) were opened within the recurring window
  (``policy.recurring_days``, 90 by default).
- A resolution may record a cause and a prevention; the prevention is a commitment (and stays a
  fix however the ticket is resolved again). A complaint opened in the recurring window whose
  category (case-insensitive) had a prevention recorded for the account before it — at any
  time — is a recurrence after a fix (the fix's category: its cause's, else its ticket's).
- Live offers: a proposal, until its ``valid_until`` (without one, while it is within the
  90-day window), unless a later proposal with the same ``proposal_id`` replaced it; a campaign
  offer, while the campaign is within the 30-day window.
- Two live offers conflict when they name the same product (case- and space-insensitive), come
  from different departments, and differ in discount (none counts as 0) or, when both state
  terms, in terms. A department's repeated identical offers count once (the latest).
- Single-threaded: at least one touch in the 90-day window and at least 80% of them by one employee.
- Handoffs: a marketing signal (``HANDOFF_SIGNALS``) in the 90-day window opens one per contact
  it names (or one for the account when it names none); a touch at or after the signal by a
  sales or success person (actor or participant) of the account — naming the contact, for a
  contact's handoff — follows it up. Open ones are stale once the signal is older than the
  ``policy.handoff_days``-day window.
- Health: 100 minus the penalties in ``PENALTIES`` (each capped), never below 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000
LOW_CSAT = 2
"""A CSAT score (1-5) at or below this is low: a health penalty, and the customer's voice."""
SINGLE_THREADED_SHARE = 0.8
NEGLECT_DAYS = 30
URGENT = ("high", "urgent")


@dataclass(frozen=True)
class Policy:
    """The configurable parts of the rules (``ONEVOICE_*`` settings; see README)."""

    handoff_days: int = 7
    recurring_days: int = 90
    renewal_days: int = 60
    renewal_quiet_days: int = 30
    value_currency: str = "KRW"
    silent_weeks: int = 2
    week_start: int = 0  # the first day of a report week: 0 Monday ... 6 Sunday
    executive_titles: str = ""  # the title rule (a regular expression; "" = none)


@dataclass(frozen=True)
class AsOf:
    """The moment a view is computed for: ``now_us`` (UTC epoch µs) in business zone ``tz``,
    under the configurable rules ``policy``."""

    now_us: int
    tz: ZoneInfo
    policy: Policy = Policy()

    def since(self, days: int) -> int:
        """Start (µs) of the ``days``-day window: local midnight ``days - 1`` days before today."""
        return _window_start(self.now_us, self.tz, days)

    def within(self, at_us: int | None, days: int) -> bool:
        return at_us is not None and self.since(days) <= at_us <= self.now_us

    def past(self, at_us: int | None) -> bool:
        """True when ``at_us`` happened at or before now."""
        return at_us is not None and at_us <= self.now_us


_EPOCH = datetime.combine(date(1970, 1, 1), time(0), tzinfo=ZoneInfo("UTC"))


@lru_cache(maxsize=1024)
def _window_start(now_us: int, tz: ZoneInfo, days: int) -> int:
    # Cached: the accounts list sorted by health asks the same few windows for every account.
    local_today = _utc(now_us).astimezone(tz).date()
    return _micros(datetime.combine(local_today - timedelta(days=days - 1), time(0), tzinfo=tz))


def _utc(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _micros(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


# -- facts -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Commitment:
    commitment_id: str
    made_event_id: str | None
    made_us: int | None
    text: str | None
    made_by: dict[str, Any] | None
    department: str | None
    due_us: int | None
    closed_state: str | None
    closed_event_id: str | None
    closed_us: int | None
    owner_id: str | None = None
    ticket_id: str | None = None  # set: the prevention recorded when this ticket was resolved
    cause_key: str | None = None  # the prevention's cause category (case-folded), if given
    cause_text: str | None = None
    account_id: str = ""  # whose: an account's roll-up merges its children's facts


@dataclass(frozen=True)
class Ticket:
    ticket_id: str
    opened_event_id: str | None
    opened_us: int | None
    subject: str | None
    category: str | None
    category_key: str | None
    severity: str | None
    complaint: bool
    resolved_us: int | None
    resolved_event_id: str | None = None
    account_id: str = ""  # whose: an account's roll-up merges its children's facts


@dataclass(frozen=True)
class Message:
    event_id: str
    kind: str  # proposal | campaign
    ref_id: str
    name: str | None
    channel: str | None
    product: str | None
    product_key: str | None
    discount_pct: float | None
    terms: str | None
    amount: float | None
    currency: str | None
    valid_until_us: int | None
    department: str
    actor: dict[str, Any]
    summary: str | None
    sort_key: tuple[int, int, int]  # (at_us, partition, offset)


@dataclass(frozen=True)
class ExecutiveTouch:
    event_id: str
    at_us: int
    executive: dict[str, Any]
    type: str
    summary: str | None
    details: dict[str, Any]
    executives: tuple[dict[str, Any], ...] = ()  # every executive in it (``executive`` first)


HANDOFF_SIGNALS = ("marketing.event_attended", "marketing.content_engaged",
                   "marketing.campaign_responded")  # fmt: skip
FOLLOW_UP_DEPARTMENTS = ("sales", "success")


@dataclass(frozen=True)
class Handoff:
    """A marketing signal in the 90-day window and the first sales or success touch after it
    (of the account, or of the contact when the signal named one)."""

    event_id: str
    type: str
    at_us: int
    contact_key: str  # "" for a signal that named no contact
    contact: dict[str, Any] | None
    campaign_id: str | None
    detail: str | None
    actor: dict[str, Any]
    summary: str | None
    followed_us: int | None
    followed_event_id: str | None


@dataclass(frozen=True)
class Need:
    need_id: str
    identified_event_id: str | None
    identified_us: int | None
    text: str | None
    category: str | None
    priority: str | None
    department: str | None
    identified_by: dict[str, Any] | None
    addressed_event_id: str | None
    addressed_us: int | None
    how: str | None
    on_site: bool | None
    addressed_by: dict[str, Any] | None
    account_id: str = ""  # whose: an account's roll-up merges its children's facts


@dataclass(frozen=True)
class Contract:
    contract_id: str
    scheduled_event_id: str | None
    scheduled_key: tuple[int, int, int] | None  # (us, partition, offset) of the schedule
    renews_us: int | None
    amount: float | None
    currency: str | None
    renewed_event_id: str | None
    renewed_key: tuple[int, int, int] | None
    next_renews_us: int | None
    renewed_amount: float | None
    renewed_currency: str | None


@dataclass(frozen=True)
class OrderTotal:
    """One account's orders in one currency: all of them up to now, and the 365-day window's."""

    currency: str
    count: int
    amount: float
    count_365d: int
    amount_365d: float


@dataclass(frozen=True)
class ActorTouches:
    """How often one employee touched the account in the 90-day window."""

    actor_id: str
    department: str
    touches: int


@dataclass
class Facts:
    """Everything the rules need about one account (or one account and its children)."""

    last_touch_us: int | None = None
    last_touch_event_id: str | None = None
    actors_90d: list[ActorTouches] = field(default_factory=list)
    commitments: list[Commitment] = field(default_factory=list)
    tickets: list[Ticket] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    executive_touches: list[ExecutiveTouch] = field(default_factory=list)  # the 90-day window
    csat: list[tuple[str, int, int]] = field(default_factory=list)  # (event_id, score, at_us)
    handoffs: list[Handoff] = field(default_factory=list)  # signals in the 90-day window
    needs: list[Need] = field(default_factory=list)  # open, or identified/addressed in 90 days
    contracts: list[Contract] = field(default_factory=list)
    churns: list[tuple[str, int, str | None, str]] = field(default_factory=list)
    """(event_id, at_us, contract_id, reason) of every churn up to now."""
    order_totals: list[OrderTotal] = field(default_factory=list)
    last_order: dict[str, Any] | None = None


# -- sections ----------------------------------------------------------------------------------


def open_commitments(facts: Facts, as_of: AsOf) -> list[Commitment]:
    return sorted(
        (c for c in facts.commitments
         if as_of.past(c.made_us) and not as_of.past(c.closed_us)),
        key=lambda c: (c.made_us or 0, c.commitment_id, c.account_id),
    )  # fmt: skip


def is_overdue(c: Commitment, as_of: AsOf) -> bool:
    return c.due_us is not None and as_of.now_us >= c.due_us


def open_tickets(facts: Facts, as_of: AsOf) -> list[Ticket]:
    return sorted(
        (t for t in facts.tickets if as_of.past(t.opened_us) and not as_of.past(t.resolved_us)),
        key=lambda t: (t.opened_us or 0, t.ticket_id, t.account_id),
    )


def recurring_complaints(facts: Facts, as_of: AsOf) -> list[dict[str, Any]]:
    """Categories with two or more complaints opened in the recurring window."""
    by_category: dict[str, list[Ticket]] = {}
    for t in facts.tickets:
        if t.complaint and t.category_key is not None and \
                as_of.within(t.opened_us, as_of.policy.recurring_days):  # fmt: skip
            by_category.setdefault(t.category_key, []).append(t)
    found = []
    for _, tickets in sorted(by_category.items()):
        if len(tickets) >= 2:
            tickets.sort(key=lambda t: (t.opened_us or 0, t.ticket_id, t.account_id))
            found.append({
                "category": tickets[-1].category, "count": len(tickets),
                "ticket_ids": [t.ticket_id for t in tickets],
                "event_ids": [t.opened_event_id for t in tickets],
            })  # fmt: skip
    return found


def open_handoffs(facts: Facts, as_of: AsOf) -> list[Handoff]:
    """Signals up to now that no sales or success touch has followed up yet, oldest first."""
    return sorted(
        (h for h in facts.handoffs if as_of.past(h.at_us) and not as_of.past(h.followed_us)),
        key=lambda h: (h.at_us, h.event_id, h.contact_key),
    )


def is_stale(h: Handoff, as_of: AsOf) -> bool:
    """Open past the follow-up window: the signal came before the window's first day."""
    return h.at_us < as_of.since(as_of.policy.handoff_days)


def fixes(facts: Facts, as_of: AsOf) -> list[tuple[str | None, Commitment]]:
    """(category key, prevention) of every prevention recorded up to now, oldest first. A
    prevention is the commitment a resolution made (it stays, however the ticket was resolved
    later); its category is its cause's, else its ticket's."""
    tickets = {t.ticket_id: t for t in facts.tickets}
    found = []
    for c in facts.commitments:
        if c.ticket_id is None or not as_of.past(c.made_us):
            continue
        ticket = tickets.get(c.ticket_id)
        found.append((c.cause_key or (None if ticket is None else ticket.category_key), c))
    return sorted(found, key=lambda f: (f[1].made_us or 0, f[1].commitment_id, f[1].account_id))


def recurrences_after_fix(facts: Facts, as_of: AsOf) -> list[dict[str, Any]]:
    """Complaints opened in the recurring window in a category that already had a prevention
    recorded for this account, at any time before the complaint was opened — each citing the
    earlier fix (the latest one before it)."""
    done = fixes(facts, as_of)
    found = []
    complaints = sorted(
        (t for t in facts.tickets if t.complaint and t.category_key is not None
         and as_of.within(t.opened_us, as_of.policy.recurring_days)),
        key=lambda t: (t.opened_us or 0, t.ticket_id, t.account_id),
    )  # fmt: skip
    for t in complaints:
        before = [c for key, c in done if key == t.category_key and c.ticket_id != t.ticket_id
                  and (c.made_us or 0) < (t.opened_us or 0)]  # fmt: skip
        if not before:
            continue
        fix = before[-1]
        found.append({
            "ticket_id": t.ticket_id, "category": t.category, "subject": t.subject,
            "opened_at": iso(t.opened_us or 0), "event_id": t.opened_event_id,
            "fix": {"ticket_id": fix.ticket_id, "resolved_at": iso(fix.made_us or 0),
                    "event_id": fix.made_event_id, "cause": fix.cause_text,
                    "prevention": fix.text, "commitment_id": fix.commitment_id},
            "event_ids": [e for e in (t.opened_event_id, fix.made_event_id) if e],
        })  # fmt: skip
    return found


def open_needs(facts: Facts, as_of: AsOf) -> list[Need]:
    """Needs identified up to now and not addressed by now, most urgent then oldest first."""
    rank = {"high": 0, "normal": 1, "low": 2}
    return sorted(
        (n for n in facts.needs if as_of.past(n.identified_us) and not as_of.past(n.addressed_us)),
        key=lambda n: (rank.get(n.priority or "normal", 1), n.identified_us or 0, n.need_id,
                       n.account_id),
    )  # fmt: skip


def addressed_needs(facts: Facts, as_of: AsOf) -> list[Need]:
    """Needs addressed in the 90-day window, latest first."""
    return sorted((n for n in facts.needs if as_of.within(n.addressed_us, 90)),
                  key=lambda n: (-(n.addressed_us or 0), n.need_id, n.account_id))  # fmt: skip


def contract_renewal(
    c: Contract, churns: Sequence[tuple[str, int, str | None, str]], as_of: AsOf
) -> tuple[int, float | None, str | None, str | None] | None:
    """(renews_us, amount, currency, event_id) of the contract's next renewal as known now, or
    None: its latest word — a schedule or a renewal (which may name the next date) — up to now,
    unless a churn of it (or of the whole account) came later."""
    sides = [(k, name) for k, name in ((c.scheduled_key, "scheduled"), (c.renewed_key, "renewed"))
             if k is not None and as_of.past(k[0])]  # fmt: skip
    if not sides:
        return None
    key, side = max(sides)
    if any(at > key[0] and (contract is None or contract == c.contract_id)
           for _, at, contract, _ in churns if as_of.past(at)):  # fmt: skip
        return None
    if side == "scheduled":
        return (c.renews_us or 0, c.amount, c.currency, c.scheduled_event_id)
    if c.next_renews_us is None:
        return None
    if c.renewed_amount is not None:
        return (c.next_renews_us, c.renewed_amount, c.renewed_currency, c.renewed_event_id)
    return (c.next_renews_us, c.amount, c.currency, c.renewed_event_id)


def next_renewal(facts: Facts, as_of: AsOf) -> dict[str, Any] | None:
    """The earliest renewal at or after now among the account's contracts."""
    upcoming = []
    for c in facts.contracts:
        found = contract_renewal(c, facts.churns, as_of)
        if found is not None and found[0] >= as_of.now_us:
            upcoming.append((found[0], c.contract_id, found))
    if not upcoming:
        return None
    renews_us, contract_id, (_, amount, currency, event_id) = min(upcoming)
    return {"contract_id": contract_id, "renews_at": iso(renews_us), "amount": amount,
            "currency": currency, "event_id": event_id, "renews_us": renews_us,
            "days_until": (renews_us - as_of.now_us) // DAY_US}  # fmt: skip


def unattended_renewal(facts: Facts, as_of: AsOf) -> list[str] | None:
    """Evidence (the renewal's event, the last touch) when the next renewal is due within
    ``policy.renewal_days`` and nobody touched the account in the ``renewal_quiet_days``-day
    window; else None."""
    upcoming = next_renewal(facts, as_of)
    if upcoming is None:
        return None
    if upcoming["renews_us"] > as_of.now_us + as_of.policy.renewal_days * DAY_US:
        return None
    quiet_since = as_of.since(as_of.policy.renewal_quiet_days)
    if facts.last_touch_us is not None and facts.last_touch_us >= quiet_since:
        return None
    return [e for e in (upcoming["event_id"], facts.last_touch_event_id) if e]


def lifetime_value(facts: Facts, currency: str) -> float:
    """The sum of every order up to now in ``currency`` (other currencies are not converted)."""
    return math.fsum(t.amount for t in facts.order_totals if t.currency == currency)


def live_offers(facts: Facts, as_of: AsOf) -> list[Message]:
    latest: dict[str, tuple[int, int, int]] = {}
    for m in facts.messages:
        if m.kind == "proposal" and as_of.past(m.sort_key[0]):
            latest[m.ref_id] = max(latest.get(m.ref_id, m.sort_key), m.sort_key)
    live = []
    for m in facts.messages:
        if m.product_key is None or not as_of.past(m.sort_key[0]):
            continue
        if m.kind == "proposal":
            current = latest[m.ref_id] == m.sort_key
            if m.valid_until_us is not None:
                alive = as_of.now_us < m.valid_until_us
            else:
                alive = as_of.within(m.sort_key[0], 90)
            if current and alive:
                live.append(m)
        elif as_of.within(m.sort_key[0], 30):
            live.append(m)
    return sorted(live, key=lambda m: m.sort_key)


def _discount(m: Message) -> float:
    return m.discount_pct or 0.0


def _terms(m: Message) -> str | None:
    return None if not m.terms else " ".join(m.terms.split())


def conflicts(offers: Sequence[Message]) -> list[dict[str, Any]]:
    """Pairs of live offers for one product from different departments that disagree.

    Offers a department repeats (same product, discount and terms) count once, as the latest,
    so a hundred identical proposals against one campaign make one conflict, not a hundred.
    """
    latest: dict[tuple[Any, ...], Message] = {}
    for m in offers:
        signature = (m.product_key, m.department, _discount(m), _terms(m))
        if signature not in latest or latest[signature].sort_key < m.sort_key:
            latest[signature] = m
    distinct = sorted(latest.values(), key=lambda m: m.sort_key)
    found = []
    for i, a in enumerate(distinct):
        for b in distinct[i + 1 :]:
            if a.product_key != b.product_key or a.department == b.department:
                continue
            differs = []
            if _discount(a) != _discount(b):
                differs.append("discount")
            if _terms(a) and _terms(b) and _terms(a) != _terms(b):
                differs.append("terms")
            if differs:
                found.append({"product": b.product, "differs_in": differs,
                              "event_ids": [a.event_id, b.event_id],
                              "offers": [offer_json(a), offer_json(b)]})  # fmt: skip
    return found


def offer_json(m: Message) -> dict[str, Any]:
    return {
        "event_id": m.event_id, "kind": m.kind, "ref_id": m.ref_id, "product": m.product,
        "discount_pct": m.discount_pct, "terms": m.terms, "amount": m.amount,
        "currency": m.currency, "department": m.department, "actor": m.actor,
        "at": iso(m.sort_key[0]),
        "valid_until": None if m.valid_until_us is None else iso(m.valid_until_us),
    }  # fmt: skip


def iso(us: int) -> str:
    return _utc(us).isoformat().replace("+00:00", "Z")


def single_threaded(touches: Iterable[ActorTouches]) -> ActorTouches | None:
    """The employee behind at least 80% of the window's touches, if there is one."""
    actors = list(touches)
    per_actor: dict[str, int] = {}
    for a in actors:
        per_actor[a.actor_id] = per_actor.get(a.actor_id, 0) + a.touches
    total = sum(per_actor.values())
    if total == 0:
        return None
    top, count = min(per_actor.items(), key=lambda kv: (-kv[1], kv[0]))
    if count < SINGLE_THREADED_SHARE * total:
        return None
    department = next(a.department for a in actors if a.actor_id == top)
    return ActorTouches(top, department, count)


def executive_items(facts: Facts, as_of: AsOf, field_name: str) -> list[dict[str, Any]]:
    """What executives heard under ``field_name`` (concerns, complaints) in the 90-day window."""
    return [
        {"text": text, "event_id": t.event_id, "at": iso(t.at_us), "executive": t.executive}
        for t in sorted(facts.executive_touches, key=lambda t: (t.at_us, t.event_id))
        if as_of.within(t.at_us, 90)
        for text in t.details.get(field_name, [])
    ]
