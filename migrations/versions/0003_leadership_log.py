"""LeadershipLog: executive touches for the weekly leadership report.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leadership_log_contacts",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("executive_id", sa.String(256), nullable=False),
        sa.Column("executive", sa.Text, nullable=False),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("at_us", sa.BigInteger, nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("summary", sa.Text, nullable=True),
        sa.Column("details", sa.Text, nullable=False),
    )
    op.create_index(
        "ix_leadership_log_contacts_at", "leadership_log_contacts", ["at_us", "executive_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_leadership_log_contacts_at", "leadership_log_contacts")
    op.drop_table("leadership_log_contacts")
