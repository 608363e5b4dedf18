"""OneVoiceView: commitments, tickets, offers and campaigns, CSAT and customer contacts.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23

The new tables fill from the log with `onevoice replay` (or from offset 0 on a fresh database).
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _side(prefix: str) -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column(f"{prefix}_event_id", sa.String(36), nullable=True),
        sa.Column(f"{prefix}_us", sa.BigInteger, nullable=True),
        sa.Column(f"{prefix}_partition", sa.Integer, nullable=True),
        sa.Column(f"{prefix}_offset", sa.BigInteger, nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "one_voice_view_commitments",
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("commitment_id", sa.String(256), primary_key=True),
        *_side("made"),
        sa.Column("text", sa.Text, nullable=True),
        sa.Column("made_by", sa.Text, nullable=True),
        sa.Column("department", sa.String(32), nullable=True),
        sa.Column("due_us", sa.BigInteger, nullable=True),
        *_side("closed"),
        sa.Column("closed_state", sa.String(16), nullable=True),
    )
    op.create_table(
        "one_voice_view_tickets",
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("ticket_id", sa.String(256), primary_key=True),
        *_side("opened"),
        sa.Column("subject", sa.Text, nullable=True),
        sa.Column("category", sa.String(256), nullable=True),
        sa.Column("category_key", sa.String(256), nullable=True),
        sa.Column("severity", sa.String(16), nullable=True),
        sa.Column("complaint", sa.Boolean, nullable=True),
        *_side("resolved"),
    )
    op.create_table(
        "one_voice_view_messages",
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ref_id", sa.String(256), nullable=False),
        sa.Column("name", sa.Text, nullable=True),
        sa.Column("channel", sa.String(256), nullable=True),
        sa.Column("product", sa.String(256), nullable=True),
        sa.Column("product_key", sa.String(256), nullable=True),
        sa.Column("discount_pct", sa.Float, nullable=True),
        sa.Column("terms", sa.Text, nullable=True),
        sa.Column("amount", sa.Float, nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("valid_until_us", sa.BigInteger, nullable=True),
        sa.Column("department", sa.String(32), nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=True),
        sa.Column("at_us", sa.BigInteger, nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "one_voice_view_contacts",
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("contact_key", sa.String(400), primary_key=True),
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("contact_pii", sa.Text, nullable=False),
        sa.Column("actor_id", sa.String(256), nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("department", sa.String(32), nullable=False),
        sa.Column("at_us", sa.BigInteger, nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "one_voice_view_csat",
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("score", sa.Integer, nullable=False),
        sa.Column("ticket_id", sa.String(256), nullable=True),
        sa.Column("at_us", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_one_voice_view_csat_at", "one_voice_view_csat", ["at_us"])
    op.create_index(
        "ix_leadership_log_contacts_account", "leadership_log_contacts", ["account_id", "at_us"]
    )


def downgrade() -> None:
    op.drop_index("ix_leadership_log_contacts_account", "leadership_log_contacts")
    op.drop_index("ix_one_voice_view_csat_at", "one_voice_view_csat")
    for table in ("csat", "contacts", "messages", "tickets", "commitments"):
        op.drop_table(f"one_voice_view_{table}")
