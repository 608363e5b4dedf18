"""Initial schema: checkpoints, ingest receipts, the AccountTimeline tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "projection_checkpoints",
        sa.Column("projection", sa.String(64), primary_key=True),
        sa.Column("generation", sa.Integer, primary_key=True),
        sa.Column("topic", sa.String(255), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "ingest_receipts",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("partition", sa.Integer, nullable=True),
        sa.Column("offset", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "account_timeline_events",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("department", sa.String(32), nullable=False),
        sa.Column("occurred_us", sa.BigInteger, nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("search_text", sa.Text, nullable=False),
    )
    op.create_table(
        "account_timeline_entries",
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("occurred_us", sa.BigInteger, nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("department", sa.String(32), nullable=False),
    )
    op.create_index(
        "ix_account_timeline_entries_order",
        "account_timeline_entries",
        ["account_id", "occurred_us", "partition", "offset"],
    )


def downgrade() -> None:
    op.drop_index("ix_account_timeline_entries_order", "account_timeline_entries")
    for table in (
        "account_timeline_entries",
        "account_timeline_events",
        "ingest_receipts",
        "projection_checkpoints",
    ):
        op.drop_table(table)
