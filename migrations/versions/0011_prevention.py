"""Complaint prevention: a resolution's prevention is a commitment, which keeps the ticket, the
owner and the cause (issue 10). New nullable columns only: no earlier event carried a cause or
a prevention.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

COMMITMENT_COLUMNS = [
    sa.Column("owner_id", sa.String(256), nullable=True),
    sa.Column("ticket_id", sa.String(256), nullable=True),
    sa.Column("cause_key", sa.Text(), nullable=True),
    sa.Column("cause_text", sa.Text(), nullable=True),
]


def upgrade() -> None:
    with op.batch_alter_table("one_voice_view_commitments") as batch:
        for column in COMMITMENT_COLUMNS:
            batch.add_column(column)


def downgrade() -> None:
    with op.batch_alter_table("one_voice_view_commitments") as batch:
        for column in COMMITMENT_COLUMNS:
            batch.drop_column(column.name)
