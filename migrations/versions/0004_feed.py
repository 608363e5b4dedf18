"""For the feed: who made each timeline event, and which employees touched which accounts.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23

Rows projected before this revision have an empty actor_id until `onevoice replay`.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "account_timeline_events",
        sa.Column("actor_id", sa.String(256), nullable=False, server_default=""),
    )
    op.create_table(
        "account_directory_employees",
        sa.Column("employee_id", sa.String(256), primary_key=True),
        sa.Column("account_id", sa.String(128), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("account_directory_employees")
    with op.batch_alter_table("account_timeline_events") as batch:
        batch.drop_column("actor_id")
