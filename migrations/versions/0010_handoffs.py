"""Handoffs: marketing signals that wait for a sales or success follow-up (issue 10).

``one_voice_view_signals`` starts empty and the OneVoiceView has applied the log past the
signals already in it (``marketing.event_attended`` and ``marketing.content_engaged``): they
appear once the read model is rebuilt (``onevoice rebuild --projection OneVoiceView``, no
downtime). Until then the view shows no handoff for them, which is what it showed before.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "one_voice_view_signals",
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("contact_key", sa.Text(), primary_key=True),
        sa.Column("contact_pii", sa.Text(), nullable=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("campaign_id", sa.String(256), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
    )
    op.create_index(
        "ix_one_voice_view_signals_at", "one_voice_view_signals", ["account_id", "at_us"]
    )


def downgrade() -> None:
    op.drop_index("ix_one_voice_view_signals_at", "one_voice_view_signals")
    op.drop_table("one_voice_view_signals")
