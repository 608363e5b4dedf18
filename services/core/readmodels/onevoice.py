"""The OneVoiceView read model's tables: the facts behind each account's one-voice view.

What is stored is clock-free: each row is a fact with its event time, and every write is either
"insert if the id is new" or "keep the value with the greatest sort key (occurred_us, partition,
offset)". Applying events in any order, or more than once, gives the same tables. Windows (7/30/90
days), overdue, live offers and health are evaluated when the view is read, against the clock and
the business time zone (``onevoice_rules``).

Facts belong to the event's primary account (commitments, tickets, messages, CSAT); customer
contacts belong to every account the event touches.

The view also reads the AccountDirectory (registration, last touch), the AccountTimeline (touches
for pressure and breadth) and the LeadershipLog (executive touches), in one snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from services.core.readmodels.schema import METADATA

NAME = "OneVoiceView"
PREFIX = "one_voice_view"


@dataclass(frozen=True)
class OneVoiceTables:
    commitments: Table
    tickets: Table
    messages: Table
    contacts: Table
    csat: Table
    signals: Table
    needs: Table
    orders: Table
    contracts: Table
    churns: Table
    follow_ups: Table


def _side(prefix: str) -> list[Column[int] | Column[str]]:
    """The columns of one side of a lifecycle (made/closed, opened/resolved) and its sort key."""
    return [
        Column(f"{prefix}_event_id", String(36), nullable=True),
        Column(f"{prefix}_us", BigInteger, nullable=True),
        Column(f"{prefix}_partition", Integer, nullable=True),
        Column(f"{prefix}_offset", BigInteger, nullable=True),
    ]


def onevoice_tables(metadata: MetaData, prefix: str) -> OneVoiceTables:
    """The read model's tables under ``prefix`` (a rebuild can target a shadow prefix)."""
    commitments = Table(
        f"{prefix}_commitments",
        metadata,
        Column("account_id", String(128), primary_key=True),
        Column("commitment_id", String(256), primary_key=True),
        *_side("made"),
        Column("text", Text, nullable=True),
        Column("made_by", Text, nullable=True),  # actor JSON
        Column("department", String(32), nullable=True),
        Column("due_us", BigInteger, nullable=True),
        Column("owner_id", String(256), nullable=True),  # a prevention's owner
        Column("ticket_id", String(256), nullable=True),  # set: a prevention of this ticket
        Column("cause_key", Text, nullable=True),  # the prevention's cause category, folded
        Column("cause_text", Text, nullable=True),
        *_side("closed"),
        Column("closed_state", String(16), nullable=True),  # fulfilled | cancelled
    )
    tickets = Table(
        f"{prefix}_tickets",
        metadata,
        Column("account_id", String(128), primary_key=True),
        Column("ticket_id", String(256), primary_key=True),
        *_side("opened"),
        Column("subject", Text, nullable=True),
        Column("category", String(256), nullable=True),
        Column("category_key", Text, nullable=True),  # case-folded: may outgrow category
        Column("severity", String(16), nullable=True),
        Column("complaint", Boolean, nullable=True),
        *_side("resolved"),
        Index(f"ix_{prefix}_tickets_opened", "opened_us"),
        Index(f"ix_{prefix}_tickets_resolved", "resolved_us"),
    )
    messages = Table(
        f"{prefix}_messages",
        metadata,
        Column("account_id", String(128), primary_key=True),
        Column("event_id", String(36), primary_key=True),
        Column("kind", String(16), nullable=False),  # proposal | campaign
        Column("ref_id", String(256), nullable=False),  # proposal_id | campaign_id
        Column("name", Text, nullable=True),
        Column("channel", String(256), nullable=True),
        Column("product", String(256), nullable=True),
        Column("product_key", Text, nullable=True),  # case-folded: may outgrow product
        Column("discount_pct", Float, nullable=True),
        Column("terms", Text, nullable=True),
        Column("amount", Float, nullable=True),
        Column("currency", String(3), nullable=True),
        Column("valid_until_us", BigInteger, nullable=True),
        Column("department", String(32), nullable=False),
        Column("actor", Text, nullable=False),
        Column("summary", Text, nullable=True),
        Column("at_us", BigInteger, nullable=False),
        Column("partition", Integer, nullable=False),
        Column("offset", BigInteger, nullable=False),
        Index(f"ix_{prefix}_messages_ref", "account_id", "kind", "ref_id"),
    )
    contacts = Table(
        f"{prefix}_contacts",
        metadata,
        Column("account_id", String(128), primary_key=True),
        Column("contact_key", Text, primary_key=True),  # case-folded: unbounded growth
        Column("event_id", String(36), primary_key=True),
        Column("contact_pii", Text, nullable=False),  # PII: the contact as sent (ROADMAP 6)
        Column("actor_id", String(256), primary_key=True),  # the actor or a participant
        Column("actor", Text, nullable=False),
        Column("department", String(32), nullable=False),
        Column("at_us", BigInteger, nullable=False),
        Column("partition", Integer, nullable=False),
        Column("offset", BigInteger, nullable=False),
        Index(f"ix_{prefix}_contacts_time", "at_us"),  # a window's contacts (handoffs)
    )
    csat = Table(
        f"{prefix}_csat",
        metadata,
        Column("account_id", String(128), primary_key=True),
        Column("event_id", String(36), primary_key=True),
        Column("score", Integer, nullable=False),
        Column("ticket_id", String(256), nullable=True),
        Column("at_us", BigInteger, nullable=False),
        Index(f"ix_{prefix}_csat_at", "at_us"),
    )
    # Marketing signals that open a handoff to sales (one row per contact named, or one with
    # contact_key "" when none is), each with its first follow-up in the whole log (the earliest
    # ``follow_ups`` row of its account and contact key at or after it, by sort key; kept by the
    # projection as touches and signals arrive in any order). A reader as of ``now`` takes it
    # when it is not after ``now``: no other follow-up can come earlier.
    signals = Table(
        f"{prefix}_signals",
        metadata,
        Column("account_id", String(128), primary_key=True),
        Column("event_id", String(36), primary_key=True),
        Column("contact_key", Text, primary_key=True),  # case-folded: unbounded growth
        Column("contact_pii", Text, nullable=True),  # PII: the contact as sent (ROADMAP 6)
        Column("type", String(64), nullable=False),
        Column("campaign_id", String(256), nullable=True),
        Column("detail", Text, nullable=True),  # event name, content + action, or response
        Column("actor", Text, nullable=False),
        Column("summary", Text, nullable=True),
        Column("at_us", BigInteger, nullable=False),
        Column("partition", Integer, nullable=False),
        Column("offset", BigInteger, nullable=False),
        Column("followed_us", BigInteger, nullable=True),
        Column("followed_event_id", String(36), nullable=True),
        Index(f"ix_{prefix}_signals_at", "account_id", "at_us"),
        Index(f"ix_{prefix}_signals_time", "at_us"),
    )
    # Customer needs: identified (by anyone) and addressed (how, on site or not), per need id.
    needs = Table(
        f"{prefix}_needs",
        metadata,
        Column("account_id", String(128), primary_key=True),
        Column("need_id", String(256), primary_key=True),
        *_side("identified"),
        Column("text", Text, nullable=True),
        Column("category", String(256), nullable=True),
        Column("category_key", Text, nullable=True),  # case-folded: may outgrow category
        Column("priority", String(16), nullable=True),
        Column("department", String(32), nullable=True),  # who identified it
        Column("identified_by", Text, nullable=True),  # actor JSON
        *_side("addressed"),
        Column("how", Text, nullable=True),
        Column("on_site", Boolean, nullable=True),
        Column("addressed_by", Text, nullable=True),  # actor JSON
        Index(f"ix_{prefix}_needs_identified", "identified_us"),
    )
    # Orders (the latest event per order id) and contracts with their renewal dates.
    orders = Table(
        f"{prefix}_orders",
        metadata,
        Column("account_id", String(128), primary_key=True),
        Column("order_id", String(256), primary_key=True),
        *_side("placed"),
        Column("amount", Float, nullable=True),
        Column("currency", String(3), nullable=True),
        Column("products", Text, nullable=True),  # JSON list
        Column("placed_by", Text, nullable=True),  # actor JSON
    )
    contracts = Table(
        f"{prefix}_contracts",
        metadata,
        Column("account_id", String(128), primary_key=True),
        Column("contract_id", String(256), primary_key=True),
        *_side("scheduled"),  # success.renewal_scheduled
        Column("renews_us", BigInteger, nullable=True),
        Column("amount", Float, nullable=True),
        Column("currency", String(3), nullable=True),
        *_side("renewed"),  # success.renewed
        Column("next_renews_us", BigInteger, nullable=True),
        Column("renewed_amount", Float, nullable=True),
        Column("renewed_currency", String(3), nullable=True),
    )
    churns = Table(
        f"{prefix}_churns",
        metadata,
        Column("account_id", String(128), primary_key=True),
        Column("event_id", String(36), primary_key=True),
        Column("contract_id", String(256), nullable=True),
        Column("reason", Text, nullable=False),
        Column("at_us", BigInteger, nullable=False),
        Column("partition", Integer, nullable=False),
        Column("offset", BigInteger, nullable=False),
    )
    # The touches that follow up a handoff: every sales or success touch (by the actor or a
    # participant; a registration is not a touch), one row per account it touches with
    # contact_key "" (an account's handoff) and one per contact key it names (a contact's).
    follow_ups = Table(
        f"{prefix}_follow_ups",
        metadata,
        Column("account_id", String(128), primary_key=True),
        Column("contact_key", Text, primary_key=True),  # "" for the account
        Column("event_id", String(36), primary_key=True),
        Column("at_us", BigInteger, nullable=False),
        Column("partition", Integer, nullable=False),
        Column("offset", BigInteger, nullable=False),
        # the first at or after a time, in log order on ties: one index-only probe
        Index(
            f"ix_{prefix}_follow_ups_at",
            "account_id",
            "contact_key",
            "at_us",
            "partition",
            "offset",
        ),
    )
    return OneVoiceTables(commitments, tickets, messages, contacts, csat, signals, needs, orders,
                          contracts, churns, follow_ups)  # fmt: skip


TABLES = onevoice_tables(METADATA, PREFIX)
