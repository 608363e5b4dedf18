"""Event contract v1: the envelope, the typed payloads and the type catalog.

Contract:
- Every event is an envelope whose ``type`` selects exactly one payload model.
- Unknown fields are rejected everywhere (envelope, actor, contacts, payloads).
- Every date-time (``occurred_at``, ``recorded_at``, ``payload.due_at``,
  ``payload.valid_until``, ``payload.prevention.due_at``, ``payload.renews_at``) is a
  ``UtcDatetime``: it must carry a timezone, is normalised to UTC, and must stay within years
  0001-9999 once in UTC.
- No text or key may contain U+0000, and no value may nest more than ``MAX_DEPTH`` objects and
  lists deep (``parse_event`` checks both before pydantic sees the data).
- For department-prefixed types (``sales.*`` ...) ``actor.department`` must equal the prefix.
- The server adds ``recorded_at``, ``recorded_by`` (the key's name) and ``position``; clients
  may not send ``position``, and what they send as the other two is replaced.

This module imports only the stdlib and pydantic.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Union
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    create_model,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

SCHEMA_VERSION = 1

ShortText = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Text = Annotated[str, StringConstraints(max_length=10_000)]
AccountId = Annotated[str, StringConstraints(min_length=1, max_length=128)]

# The contract's deepest legitimate value is three containers down (the envelope, the payload,
# then an offer or a list of text). 32 leaves room for the contract to grow while keeping every
# later walk of a stored event (pydantic's, json's, the projections') far from Python's
# recursion limit, which a body nested a few hundred levels deep would otherwise reach.
MAX_DEPTH = 32
MAX_PARTICIPANTS = 20
MAX_AMOUNT = 1e15
"""The largest order or contract amount (in any currency): sums of many stay exact enough and
far from overflow."""


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # e.g. 9999-12-31T23:59:59-14:00 is year 10000 in UTC: Python cannot hold it, so the
        # views could not render or shift it; refuse it here rather than fail every read later.
        raise PydanticCustomError(
            "datetime_out_of_range", "must lie within years 0001-9999 once converted to UTC"
        ) from None


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_in_utc)]
"""An RFC 3339 date-time with a timezone, normalised to UTC.

Refused (``datetime_out_of_range``) when the UTC instant falls outside years 0001-9999, so every
accepted value can be stored, compared, shifted into UTC and rendered by every reader. The one
date-time type of the contract, and of the query parameters the read API echoes back (the
reports' ``from``/``to``, the feed's ``since``).
"""


TYPE_DEPARTMENTS: tuple[str, ...] = ("sales", "marketing", "support", "success", "leadership")
"""The departments that own a namespace of event types: ``sales.*`` may only be sent by sales."""
DEFAULT_DEPARTMENTS: tuple[str, ...] = (
    *TYPE_DEPARTMENTS, "product", "engineering", "research", "finance", "hr", "partner",
)  # fmt: skip
"""The departments a fresh install accepts (``ONEVOICE_DEPARTMENTS`` replaces the list)."""
DEPARTMENT_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
EXECUTIVE_DEPARTMENT = "leadership"


def _configured_department(value: str, info: ValidationInfo) -> str:
    """Ingest passes the configured departments as validation context; readers of the log do
    not, so an event stays readable after its department left the configuration."""
    allowed = (info.context or {}).get("departments")
    if allowed is not None and value not in allowed:
        raise PydanticCustomError(
            "unknown_department", "must be one of the configured departments: {allowed}",
            {"allowed": ", ".join(allowed)},
        )  # fmt: skip
    return value


Department = Annotated[
    str, StringConstraints(pattern=DEPARTMENT_PATTERN), AfterValidator(_configured_department)
]
"""A department of our company: lower-case letters, digits and ``_``, at most 32 characters,
and (at ingest) one of the configured departments."""


class Strict(BaseModel):
    # allow_inf_nan=False: "Infinity", "NaN" or 1e400 would make a record no reader can decode.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Actor(Strict):
    """Who at our company made the touch (or, in ``participants``, took part in it).

    ``executive``: whether this person is an executive. When absent, ingest sets it to true if
    the title matches the executive title rule (``ONEVOICE_EXECUTIVE_TITLES``); left absent, a
    person counts as an executive when their department is ``leadership``."""

    id: ShortText
    name: ShortText | None = None
    department: Department
    title: ShortText | None = None
    executive: bool | None = None


def is_executive(person: Actor) -> bool:
    """The executive rule of the views: the explicit flag, else the leadership department."""
    if person.executive is not None:
        return person.executive
    return person.department == EXECUTIVE_DEPARTMENT


Email = Annotated[str, StringConstraints(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]
SEAL_PATTERN = r"^ov1\.[0-9a-f]{32}\.[net]{1,3}\.[A-Za-z0-9_-]{40,8000}$"
"""A sealed contact's personal data: ``ov1.<subject>.<fields>.<sealed bytes>`` (``privacy``)."""
PERSONAL_FIELDS = ("name", "email", "title")
"""A contact's personal data: sealed in the log, shown only to ``read_sensitive`` keys."""


class Contact(Strict):
    """A person on the customer's side. Personal data: name, email and title. Ingest seals
    them (``sealed``, which clients may not send) with a key per contact that erasure destroys
    (``services.core.privacy``); a contact in the log has either ``sealed`` or those fields."""

    id: ShortText | None = None
    name: ShortText | None = None
    email: Email | None = None
    title: ShortText | None = None
    sealed: Annotated[str, StringConstraints(pattern=SEAL_PATTERN)] | None = Field(
        default=None, json_schema_extra={"readOnly": True},
        description="Set by the server: name, email and title, sealed (never sent by a client).",
    )  # fmt: skip

    @model_validator(mode="after")
    def _sealed_alone(self) -> Contact:
        if self.sealed is not None and (self.name or self.email or self.title):
            raise PydanticCustomError(
                "sealed_with_personal_data", "a sealed contact holds no name, email or title"
            )
        return self

    @property
    def subject(self) -> str | None:
        """The key's subject of a sealed contact (``privacy``), else None."""
        return None if self.sealed is None else self.sealed.split(".", 2)[1]

    @property
    def sealed_fields(self) -> str:
        """The letters of the fields a sealed contact holds (``n``ame, ``e``mail, ``t``itle)."""
        return "" if self.sealed is None else self.sealed.split(".", 3)[2]

    @property
    def personal(self) -> bool:
        """Whether it carries personal data in the clear."""
        return bool(self.name or self.email or self.title)


class Position(Strict):
    """Where an event sits in the log."""

    partition: int = Field(ge=0)
    offset: int = Field(ge=0)


# --- payloads -------------------------------------------------------------------------------


class AccountRegistered(Strict):
    name: ShortText
    segment: ShortText | None = None
    tier: ShortText | None = None
    parent_account_id: AccountId | None = None
    owners: dict[Department, ShortText] = Field(default_factory=dict)


class SalesMeetingHeld(Strict):
    subject: ShortText
    notes: Text | None = None
    next_steps: Text | None = None


class SalesCallLogged(Strict):
    subject: ShortText | None = None
    notes: Text | None = None
    duration_s: int | None = Field(default=None, ge=0)


class SalesEmailSent(Strict):
    subject: ShortText


Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Percent = Annotated[float, Field(ge=0, le=100)]


class SalesProposalSent(Strict):
    proposal_id: ShortText
    product: ShortText
    amount: float = Field(ge=0)
    currency: Currency
    discount_pct: Percent | None = None
    valid_until: UtcDatetime | None = None


class SalesDealStageChanged(Strict):
    deal_id: ShortText
    stage: ShortText
    amount: float | None = Field(default=None, ge=0)
    currency: Currency | None = None


class Offer(Strict):
    product: ShortText | None = None
    discount_pct: Percent | None = None
    terms: Text | None = None


class MarketingCampaignSent(Strict):
    campaign_id: ShortText
    name: ShortText
    channel: ShortText
    offer: Offer | None = None


class MarketingEventAttended(Strict):
    event_name: ShortText


class MarketingContentEngaged(Strict):
    content: ShortText
    action: ShortText


class MarketingCampaignResponded(Strict):
    """A contact answered a campaign (replied, asked for a demo, filled in a form)."""

    campaign_id: ShortText
    response: ShortText
    channel: ShortText | None = None


class Severity(StrEnum):
    low = "low"
    normal = "normal"
    high = "high"
    urgent = "urgent"


class SupportTicketOpened(Strict):
    ticket_id: ShortText
    subject: ShortText
    category: ShortText
    severity: Severity
    complaint: bool = False


class Cause(Strict):
    """Why the customer had the problem."""

    category: ShortText
    text: Text | None = None


class Prevention(Strict):
    """What will stop it from happening again: a commitment of ours (``commitment_id``, default
    ``prevent-<ticket_id>``), open until a ``commitment.fulfilled`` or ``cancelled`` names it."""

    action: Text = Field(min_length=1)
    owner: ShortText | None = None
    due_at: UtcDatetime | None = None
    commitment_id: ShortText | None = None


class SupportTicketResolved(Strict):
    ticket_id: ShortText
    resolution: Text | None = None
    cause: Cause | None = None
    prevention: Prevention | None = None


class SupportCsatRecorded(Strict):
    score: int = Field(ge=1, le=5)
    ticket_id: ShortText | None = None
    comment: Text | None = None


class SuccessReviewHeld(Strict):
    subject: ShortText
    notes: Text | None = None
    risks: list[Text] = Field(default_factory=list)


class Priority(StrEnum):
    low = "low"
    normal = "normal"
    high = "high"


class CustomerNeedIdentified(Strict):
    """Something the customer needs, heard by anyone (any department may send it)."""

    need_id: ShortText
    text: Text = Field(min_length=1)
    category: ShortText
    priority: Priority = Priority.normal


class CustomerNeedAddressed(Strict):
    need_id: ShortText
    how: Text = Field(min_length=1)
    on_site: bool = False


Money = Annotated[float, Field(ge=0, le=MAX_AMOUNT)]


class SalesOrderPlaced(Strict):
    order_id: ShortText
    amount: Money
    currency: Currency
    products: list[ShortText] = Field(default_factory=list, max_length=100)


class _Priced(Strict):
    """An optional amount, which needs its currency."""

    amount: Money | None = None
    currency: Currency | None = None

    @model_validator(mode="after")
    def _amount_has_currency(self) -> _Priced:
        if (self.amount is None) != (self.currency is None):
            raise PydanticCustomError(
                "amount_without_currency", "amount and currency go together: give both or neither"
            )
        return self


class SuccessRenewalScheduled(_Priced):
    contract_id: ShortText
    renews_at: UtcDatetime


class SuccessRenewed(_Priced):
    """The contract was renewed; ``renews_at`` is the next renewal, when known."""

    contract_id: ShortText
    renews_at: UtcDatetime | None = None


class SuccessChurned(Strict):
    reason: Text = Field(min_length=1)
    contract_id: ShortText | None = None


class LeadershipMeetingHeld(Strict):
    subject: ShortText
    heard: list[Text] = Field(default_factory=list)
    concerns: list[Text] = Field(default_factory=list)
    complaints: list[Text] = Field(default_factory=list)
    learnings: list[Text] = Field(default_factory=list)


class CommitmentMade(Strict):
    commitment_id: ShortText
    text: Text = Field(min_length=1)
    due_at: UtcDatetime | None = None


class CommitmentClosed(Strict):
    commitment_id: ShortText


class EmployeeRegistered(Strict):
    """One of our people: the roster the leaders' reports list (zeros included)."""

    employee_id: ShortText
    name: ShortText
    department: Department
    title: ShortText | None = None
    executive: bool | None = Field(
        default=None,
        description="Absent: ingest sets true when the title matches the executive title rule;"
        " readers then count the leadership department as executive.",
    )
    active: bool = True


class EmployeeUpdated(Strict):
    """Changes to a registered employee: only the fields given change."""

    employee_id: ShortText
    name: ShortText | None = None
    department: Department | None = None
    title: ShortText | None = None
    executive: bool | None = None
    active: bool | None = None


class KpiMetric(StrEnum):
    accounts_touched = "accounts_touched"
    accounts_neglected = "accounts_neglected"
    accounts_at_risk = "accounts_at_risk"
    accounts_never_contacted = "accounts_never_contacted"
    executive_touches = "executive_touches"
    complaints_opened = "complaints_opened"
    complaints_recurring = "complaints_recurring"
    commitments_kept_on_time = "commitments_kept_on_time"
    commitments_overdue = "commitments_overdue"
    handoffs_followed_up = "handoffs_followed_up"
    csat_average = "csat_average"
    conflicting_offers = "conflicting_offers"


class ContactErased(Strict):
    """A contact's personal data was erased: the keys of ``subjects`` were destroyed, so every
    sealed copy of it (log, views, replays) reads ``[erased]``. Names the contact only by its
    id when the request did (never by its email)."""

    subjects: list[Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]] = Field(
        min_length=1, max_length=1000
    )
    contact_id: ShortText | None = None
    requested_by: Literal["email", "contact_id"]


class KpiTargetSet(Strict):
    """A target for one KPI of one group (``group_by`` value ``group``) per ``period``; the
    newest target (by occurred_at) for the same metric, group and period wins."""

    metric: KpiMetric
    group_by: Literal["department", "segment", "owner"]
    group: ShortText
    period: Literal["week", "month"]
    target: float = Field(ge=0, le=MAX_AMOUNT)


PAYLOADS: dict[str, type[Strict]] = {
    "account.registered": AccountRegistered,
    "sales.meeting_held": SalesMeetingHeld,
    "sales.call_logged": SalesCallLogged,
    "sales.email_sent": SalesEmailSent,
    "sales.proposal_sent": SalesProposalSent,
    "sales.deal_stage_changed": SalesDealStageChanged,
    "marketing.campaign_sent": MarketingCampaignSent,
    "marketing.event_attended": MarketingEventAttended,
    "marketing.content_engaged": MarketingContentEngaged,
    "marketing.campaign_responded": MarketingCampaignResponded,
    "support.ticket_opened": SupportTicketOpened,
    "support.ticket_resolved": SupportTicketResolved,
    "support.csat_recorded": SupportCsatRecorded,
    "success.review_held": SuccessReviewHeld,
    "leadership.meeting_held": LeadershipMeetingHeld,
    "customer.need_identified": CustomerNeedIdentified,
    "customer.need_addressed": CustomerNeedAddressed,
    "sales.order_placed": SalesOrderPlaced,
    "success.renewal_scheduled": SuccessRenewalScheduled,
    "success.renewed": SuccessRenewed,
    "success.churned": SuccessChurned,
    "commitment.made": CommitmentMade,
    "commitment.fulfilled": CommitmentClosed,
    "commitment.cancelled": CommitmentClosed,
    "employee.registered": EmployeeRegistered,
    "employee.updated": EmployeeUpdated,
    "kpi.target_set": KpiTargetSet,
    "contact.erased": ContactErased,
}
ORGANISATION_TYPES: tuple[str, ...] = ("employee.registered", "employee.updated", "kpi.target_set")
"""Types about our own organisation, not a customer: they carry no ``account_id``, contacts,
related accounts or participants, and the customer read models never see them."""
RECORD_TYPES: tuple[str, ...] = ("contact.erased",)
"""Records of what the service did with a customer's data, not touches: only the server
appends them (clients are refused), they carry an ``account_id`` (so they keep the account's
order) and no contacts, related accounts or participants, and no customer read model folds
them (``about_customer``). Their ``actor`` is optional: ``recorded_by`` names who asked."""
SERVER_TYPES: frozenset[str] = frozenset(RECORD_TYPES)
"""Types a client may not post."""
EVENT_TYPES: tuple[str, ...] = tuple(t for t in PAYLOADS if t not in SERVER_TYPES)
"""The types a client may post."""
LOGGED_TYPES: tuple[str, ...] = tuple(PAYLOADS)
"""Every type the log may hold: ``EVENT_TYPES`` and the server's (``SERVER_TYPES``)."""


def department_of_type(event_type: str) -> str | None:
    """The department a type is reserved to, or None when any department may send it."""
    prefix = event_type.split(".", 1)[0]
    return prefix if prefix in TYPE_DEPARTMENTS else None


# --- envelope -------------------------------------------------------------------------------


class EnvelopeBase(Strict):
    """Fields shared by every event type (``payload`` and ``type`` are added per type)."""

    event_id: UUID | None = Field(
        default=None, description="Idempotency key; assigned by the server when absent."
    )
    # Absent (None) on ORGANISATION_TYPES, whose models override it; the customer projections
    # never receive those (``is_organisation``), so their code may treat it as a str.
    account_id: AccountId
    related_account_ids: list[AccountId] = Field(default_factory=list, max_length=100)
    occurred_at: UtcDatetime = Field(description="Business time, RFC 3339 with a timezone.")
    source: ShortText
    actor: Actor
    participants: list[Actor] | None = Field(
        default=None, max_length=MAX_PARTICIPANTS,
        description="Our other people who took part (a joint visit); each counts as a touch.",
    )  # fmt: skip
    contacts: list[Contact] = Field(default_factory=list, max_length=100)
    summary: Annotated[str, StringConstraints(max_length=1000)] | None = None
    schema_version: int = Field(default=SCHEMA_VERSION, ge=1, le=SCHEMA_VERSION)
    recorded_at: UtcDatetime | None = Field(
        default=None, description="Set by the server when the event is accepted."
    )
    recorded_by: ShortText | None = Field(
        default=None,
        description="Set by the server: the name of the API key the event was posted with.",
    )

    @model_validator(mode="after")
    def _department_matches_type(self) -> EnvelopeBase:
        event_type: str = getattr(self, "type")  # noqa: B009 - declared on subclasses
        required = department_of_type(event_type)
        if required is not None and self.actor.department != required:
            raise PydanticCustomError(
                "department_mismatch",
                "must be '{required}' for type '{event_type}' (got '{got}')",
                {
                    "required": required,
                    "event_type": event_type,
                    "got": self.actor.department,
                },
            )
        if event_type in ORGANISATION_TYPES or event_type in RECORD_TYPES:
            _check_organisation_event(self, event_type)
        if self.account_id in self.related_account_ids:
            raise PydanticCustomError("related_repeats_account", "must not repeat account_id")
        if self.actor is None:  # a record's (RECORD_TYPES): no one of ours took part
            return self
        ids = [self.actor.id, *(p.id for p in self.participants or ())]
        if len(set(ids)) != len(ids):
            raise PydanticCustomError(
                "participants_repeat", "must name each person once, and not the actor"
            )
        return self

    @property
    def is_organisation(self) -> bool:
        """True for an event about our organisation (no account): ``ORGANISATION_TYPES``."""
        return getattr(self, "type") in ORGANISATION_TYPES  # noqa: B009

    @property
    def about_customer(self) -> bool:
        """True for what the customer read models fold: neither an organisation event nor a
        record (``RECORD_TYPES``)."""
        kind = getattr(self, "type")  # noqa: B009
        return kind not in ORGANISATION_TYPES and kind not in RECORD_TYPES

    def partition_key(self) -> str:
        """The record key: the account, so one account's events keep their order; for an
        organisation event, what it is about (one employee, one KPI target)."""
        if not self.is_organisation:
            return self.account_id
        payload = getattr(self, "payload")  # noqa: B009
        if isinstance(payload, KpiTargetSet):
            return f"kpi-target:{payload.group_by}:{payload.group}"
        return f"employee:{payload.employee_id}"

    def people(self) -> list[Actor]:
        """The actor, then each participant: everyone of ours who made this touch (none for a
        record, ``RECORD_TYPES``, whose actor is optional)."""
        return [p for p in (self.actor, *(self.participants or ())) if p is not None]


def _check_organisation_event(event: EnvelopeBase, event_type: str) -> None:
    record = event_type in RECORD_TYPES  # about an account's data: it names the account
    extra = [name for name, given in (
        ("account_id", not record and event.account_id is not None),
        ("related_account_ids", bool(event.related_account_ids)),
        ("contacts", bool(event.contacts)),
        ("participants", event.participants is not None),
    ) if given]  # fmt: skip
    if extra:
        what = "a record of the service, not a touch" if record else \
            "about our organisation, not a customer"  # fmt: skip
        raise PydanticCustomError(
            "organisation_event_fields",
            "'{event_type}' is {what}: leave out {fields}",
            {"event_type": event_type, "what": what, "fields": ", ".join(extra),
             "first": extra[0]},
        )  # fmt: skip


def _envelope_model(event_type: str, payload: type[Strict]) -> type[EnvelopeBase]:
    name = "".join(part.title() for part in event_type.replace(".", "_").split("_")) + "Event"
    tag: Any = Literal[event_type]
    fields: dict[str, Any] = {"type": (tag, ...), "payload": (payload, ...)}
    if event_type in ORGANISATION_TYPES:
        fields["account_id"] = (AccountId | None, Field(default=None, description="Never set."))
    if event_type in RECORD_TYPES:
        fields["actor"] = (Actor | None, Field(default=None, description="Who asked, if given."))
    return create_model(name, __base__=EnvelopeBase, __module__=__name__, **fields)


ENVELOPES: dict[str, type[EnvelopeBase]] = {t: _envelope_model(t, p) for t, p in PAYLOADS.items()}

Event: Any = Annotated[Union[tuple(ENVELOPES.values())], Field(discriminator="type")]  # noqa: UP007
EVENT_ADAPTER: TypeAdapter[EnvelopeBase] = TypeAdapter(Event)
PostedEvent: Any = Annotated[
    Union[tuple(ENVELOPES[t] for t in EVENT_TYPES)], Field(discriminator="type")  # noqa: UP007
]
POSTED_ADAPTER: TypeAdapter[EnvelopeBase] = TypeAdapter(PostedEvent)
"""What a client may post (``EVENT_TYPES``): the API's description of the body."""


Loc = tuple[str | int, ...]


def _locate_unstorable(value: Any) -> tuple[list[Loc], Loc | None]:
    """Where ``value`` holds U+0000 (in a string or an object key; in document order, an
    object's keys before its values), and the first object or list nested more than
    ``MAX_DEPTH`` deep (the walk stops there).

    One iterative walk: a hostile body may nest as deep as the JSON parser allows.
    """
    found: list[Loc] = []
    stack: list[tuple[Any, Loc]] = [(value, ())]
    while stack:
        item, loc = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                found.append(loc)
            continue
        if not isinstance(item, dict | list):
            continue
        if len(loc) >= MAX_DEPTH:  # the top-level value is at depth 1, this one at len(loc) + 1
            return found, loc
        if isinstance(item, dict):
            found += [(*loc, k) for k in item if isinstance(k, str) and "\x00" in k]
            stack += [(v, (*loc, k)) for k, v in reversed(item.items())]
        else:
            stack += [(item[i], (*loc, i)) for i in range(len(item) - 1, -1, -1)]
    return found, None


def _cannot_be_unstorable(source: bytes) -> bool:
    """True when JSON text ``source`` can hold no U+0000 and nest no ``MAX_DEPTH`` deep
    (brackets inside strings only make this say False more often). Any ``\\u`` escape sends
    the text to the walk: the C scanner reads U+0000 only from ``\\u0000``, but the pure-Python
    one also from ``\\u 000`` or ``\\u+000`` (``int(esc, 16)``), and ingest writes no
    ``\\u`` escape but for control characters."""
    return (b"\\u" not in source and b"\x00" not in source
            and source.count(b"{") + source.count(b"[") < MAX_DEPTH)  # fmt: skip


def _unstorable(data: Any) -> list[InitErrorDetails]:
    nul, deep = _locate_unstorable(data)
    if deep is not None:
        # A body this deep is refused for its shape; one error naming where it goes too deep
        # says all a client needs (and a wide, deep body could otherwise yield thousands).
        problem = PydanticCustomError(
            "nested_too_deeply",
            "must not nest objects and lists more than {max_depth} levels deep",
            {"max_depth": MAX_DEPTH},
        )
        return [{"type": problem, "loc": deep, "input": None}]
    error = PydanticCustomError("nul_character", "must not contain the NUL character U+0000")
    return [{"type": error, "loc": loc, "input": None} for loc in nul]


def parse_event(data: Any, departments: Collection[str] | None = None, *,
                source: bytes | None = None) -> EnvelopeBase:  # fmt: skip
    """Validate a decoded JSON value as an event; raises ``pydantic.ValidationError``.

    Checked first, so that nothing downstream has to cope with them: no value may nest more
    than ``MAX_DEPTH`` objects and lists deep (``nested_too_deeply``, at the first such
    container), and no text or key may contain U+0000 (``nul_character``: PostgreSQL cannot
    store it, so such an event could never be projected there; it is refused on every backend
    alike). The check does not recurse, whatever the depth of ``data``.

    ``departments``: the configured departments (ingest); every department named (actor,
    participants, owners) must be one of them. Without it any well-formed department passes:
    an event in the log stays readable whatever the configuration became.

    ``source``: the JSON text ``data`` was parsed from (a log record). When it has no ``\\u``
    escape (the only way JSON text can spell U+0000) and fewer than ``MAX_DEPTH`` opening
    brackets (each object or list needs one), neither check can fail and the walk over every
    value is skipped: it was 7% of a projector's catch-up time.
    """
    if source is None or not _cannot_be_unstorable(source):
        problems = _unstorable(data)
        if problems:
            raise ValidationError.from_exception_data("Event", problems)
    context = None if departments is None else {"departments": tuple(departments)}
    return EVENT_ADAPTER.validate_python(data, context=context)


def event_type(event: EnvelopeBase) -> str:
    value: str = getattr(event, "type")  # noqa: B009
    return value


def event_payload(event: EnvelopeBase) -> Strict:
    value: Strict = getattr(event, "payload")  # noqa: B009
    return value


def dump_event(event: EnvelopeBase) -> dict[str, Any]:
    """The canonical JSON-ready form of an event (``None`` fields dropped)."""
    return event.model_dump(mode="json", exclude_none=True)


def event_json_schemas() -> dict[str, Any]:
    """JSON Schema of every event type, keyed by type."""
    return {t: ENVELOPES[t].model_json_schema() for t in EVENT_TYPES}


_MODEL_ERROR_PATHS = {
    "department_mismatch": "actor.department",
    "participants_repeat": "participants",
    "organisation_event_fields": "account_id",
    "related_repeats_account": "related_account_ids",
    "union_tag_invalid": "type",
    "union_tag_not_found": "type",
}


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Turn a validation failure into ``[{"path": "payload.amount", "problem": ...}]``.

    Paths are dotted, relative to the event (the union tag pydantic prepends is dropped);
    an unknown or missing ``type`` names the allowed types.
    """
    result = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = [str(part) for part in error["loc"]]
        if loc and loc[0] in ENVELOPES:
            loc = loc[1:]
        kind = error["type"]
        path = ".".join(loc) or _MODEL_ERROR_PATHS.get(kind, "")
        if kind == "organisation_event_fields":
            path = str((error.get("ctx") or {}).get("first", path))
        if kind == "amount_without_currency":
            path += ".currency"
        problem = error["msg"]
        if kind == "union_tag_invalid":
            problem = "unknown event type; allowed: " + ", ".join(EVENT_TYPES)
        elif kind == "union_tag_not_found":
            problem = "field required; allowed: " + ", ".join(EVENT_TYPES)
        elif kind in ("model_type", "model_attributes_type") and not loc:
            problem = "the event must be a JSON object"
        result.append({"path": path, "problem": problem, "kind": kind})
    return result
