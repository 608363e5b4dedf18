"""Account states at past period ends (``readmodels.state_history``), and the health cache's
columns for the current period's KPI states.

The refresher fills both after the upgrade (the health cache's rows of the previous release are
stale to this one: its rules version changed); reads evaluate what is missing themselves until
then, as before this release.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

CACHE = "account_health_cache"
TABLE = "account_state_history"


def upgrade() -> None:
    op.add_column(CACHE, sa.Column("last_touch_us", sa.BigInteger, nullable=True))
    op.add_column(CACHE, sa.Column("conflicts", sa.Integer, nullable=True))
    op.add_column(CACHE, sa.Column("overdue", sa.Integer, nullable=True))
    op.add_column(CACHE, sa.Column("overdue_by", sa.Text, nullable=True))
    op.create_table(
        TABLE,
        sa.Column("end_us", sa.BigInteger, nullable=False),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("policy", sa.String(32), nullable=False),
        sa.Column("last_touch_us", sa.BigInteger, nullable=True),
        sa.Column("score", sa.Integer, nullable=False),
        sa.Column("conflicts", sa.Integer, nullable=False),
        sa.Column("overdue", sa.Integer, nullable=False),
        sa.Column("overdue_by", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("end_us", "account_id"),
    )
    op.create_index("ix_account_state_history_account", TABLE, ["account_id", "end_us"])


def downgrade() -> None:
    op.drop_table(TABLE)
    with op.batch_alter_table(CACHE) as batch:
        batch.drop_column("overdue_by")
        batch.drop_column("overdue")
        batch.drop_column("conflicts")
        batch.drop_column("last_touch_us")
