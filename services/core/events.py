"""Event contract v1: the envelope, the typed payloads and the type catalog.

Contract:
- Every event is an envelope whose ``type`` selects exactly one payload model.
- Unknown fields are rejected everywhere (envelope, actor, contacts, payloads).
- ``occurred_at`` must carry a timezone; it is normalised to UTC.
- For department-prefixed types (``sales.*`` ...) ``actor.department`` must equal the prefix.
- The server adds ``recorded_at`` and ``position``; clients may not send ``position``.

This module imports only the stdlib and pydantic.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Union
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

SCHEMA_VERSION = 1

ShortText = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Text = Annotated[str, StringConstraints(max_length=10_000)]
AccountId = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class Department(StrEnum):
    sales = "sales"
    marketing = "marketing"
    support = "support"
    success = "success"
    leadership = "leadership"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Actor(Strict):
    """Who at our company made the touch."""

    id: ShortText
    name: ShortText | None = None
    department: Department
    title: ShortText | None = None


class Contact(Strict):
    """A person on the customer's side. PII: name, email and title (see ROADMAP: erasure)."""

    id: ShortText | None = None
    name: ShortText | None = None
    email: (
        Annotated[str, StringConstraints(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")] | None
    ) = None
    title: ShortText | None = None


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
    valid_until: AwareDatetime | None = None


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


class SupportTicketResolved(Strict):
    ticket_id: ShortText
    resolution: Text | None = None


class SupportCsatRecorded(Strict):
    score: int = Field(ge=1, le=5)
    ticket_id: ShortText | None = None
    comment: Text | None = None


class SuccessReviewHeld(Strict):
    subject: ShortText
    notes: Text | None = None
    risks: list[Text] = Field(default_factory=list)


class LeadershipMeetingHeld(Strict):
    subject: ShortText
    heard: list[Text] = Field(default_factory=list)
    concerns: list[Text] = Field(default_factory=list)
    complaints: list[Text] = Field(default_factory=list)
    learnings: list[Text] = Field(default_factory=list)


class CommitmentMade(Strict):
    commitment_id: ShortText
    text: Text = Field(min_length=1)
    due_at: AwareDatetime | None = None


class CommitmentClosed(Strict):
    commitment_id: ShortText


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
    "support.ticket_opened": SupportTicketOpened,
    "support.ticket_resolved": SupportTicketResolved,
    "support.csat_recorded": SupportCsatRecorded,
    "success.review_held": SuccessReviewHeld,
    "leadership.meeting_held": LeadershipMeetingHeld,
    "commitment.made": CommitmentMade,
    "commitment.fulfilled": CommitmentClosed,
    "commitment.cancelled": CommitmentClosed,
}
EVENT_TYPES: tuple[str, ...] = tuple(PAYLOADS)
DEPARTMENTS: tuple[str, ...] = tuple(d.value for d in Department)


def department_of_type(event_type: str) -> str | None:
    """The department a type is reserved to, or None when any department may send it."""
    prefix = event_type.split(".", 1)[0]
    return prefix if prefix in DEPARTMENTS else None


# --- envelope -------------------------------------------------------------------------------


class EnvelopeBase(Strict):
    """Fields shared by every event type (``payload`` and ``type`` are added per type)."""

    event_id: UUID | None = Field(
        default=None, description="Idempotency key; assigned by the server when absent."
    )
    account_id: AccountId
    related_account_ids: list[AccountId] = Field(default_factory=list, max_length=100)
    occurred_at: AwareDatetime = Field(description="Business time, RFC 3339 with a timezone.")
    source: ShortText
    actor: Actor
    contacts: list[Contact] = Field(default_factory=list, max_length=100)
    summary: Annotated[str, StringConstraints(max_length=1000)] | None = None
    schema_version: int = Field(default=SCHEMA_VERSION, ge=1, le=SCHEMA_VERSION)
    recorded_at: AwareDatetime | None = Field(
        default=None, description="Set by the server when the event is accepted."
    )

    @field_validator("occurred_at", "recorded_at")
    @classmethod
    def _to_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValueError("is outside the representable range once converted to UTC") from None

    @model_validator(mode="after")
    def _department_matches_type(self) -> EnvelopeBase:
        event_type: str = getattr(self, "type")  # noqa: B009 - declared on subclasses
        required = department_of_type(event_type)
        if required is not None and self.actor.department.value != required:
            raise PydanticCustomError(
                "department_mismatch",
                "must be '{required}' for type '{event_type}' (got '{got}')",
                {
                    "required": required,
                    "event_type": event_type,
                    "got": self.actor.department.value,
                },
            )
        if self.account_id in self.related_account_ids:
            raise PydanticCustomError("related_repeats_account", "must not repeat account_id")
        return self


def _envelope_model(event_type: str, payload: type[Strict]) -> type[EnvelopeBase]:
    name = "".join(part.title() for part in event_type.replace(".", "_").split("_")) + "Event"
    tag: Any = Literal[event_type]
    return create_model(
        name, __base__=EnvelopeBase, __module__=__name__, type=(tag, ...), payload=(payload, ...)
    )


ENVELOPES: dict[str, type[EnvelopeBase]] = {t: _envelope_model(t, p) for t, p in PAYLOADS.items()}

Event: Any = Annotated[Union[tuple(ENVELOPES.values())], Field(discriminator="type")]  # noqa: UP007
EVENT_ADAPTER: TypeAdapter[EnvelopeBase] = TypeAdapter(Event)


def _nul_locations(value: Any, loc: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    if isinstance(value, str):
        return [loc] if "\x00" in value else []
    if isinstance(value, dict):
        found = [(*loc, k) for k in value if isinstance(k, str) and "\x00" in k]
        for key, item in value.items():
            found += _nul_locations(item, (*loc, key))
        return found
    if isinstance(value, list):
        return [hit for i, item in enumerate(value) for hit in _nul_locations(item, (*loc, i))]
    return []


def parse_event(data: Any) -> EnvelopeBase:
    """Validate a decoded JSON value as an event; raises ``pydantic.ValidationError``.

    Text must not contain U+0000: PostgreSQL cannot store it, so such an event could never be
    projected there; it is refused on every backend alike.
    """
    nul = _nul_locations(data)
    if nul:
        problem = PydanticCustomError("nul_character", "must not contain the NUL character U+0000")
        raise ValidationError.from_exception_data(
            "Event", [{"type": problem, "loc": loc, "input": None} for loc in nul]
        )
    return EVENT_ADAPTER.validate_python(data)


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
    return {t: model.model_json_schema() for t, model in ENVELOPES.items()}


_MODEL_ERROR_PATHS = {
    "department_mismatch": "actor.department",
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
        problem = error["msg"]
        if kind == "union_tag_invalid":
            problem = "unknown event type; allowed: " + ", ".join(EVENT_TYPES)
        elif kind == "union_tag_not_found":
            problem = "field required; allowed: " + ", ".join(EVENT_TYPES)
        elif kind in ("model_type", "model_attributes_type") and not loc:
            problem = "the event must be a JSON object"
        result.append({"path": path, "problem": problem, "kind": kind})
    return result
