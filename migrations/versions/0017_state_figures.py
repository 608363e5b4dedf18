"""The KPI report's state figures summed per group at past period ends
(``readmodels.state_figures``).

Empty after the upgrade: the refresher fills it once the state history is complete; the report
sums the states itself until then, as before this release.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

TABLE = "account_state_figures"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("end_us", sa.BigInteger, nullable=False),
        sa.Column("group_by", sa.String(16), nullable=False),
        sa.Column("policy", sa.String(32), nullable=False),
        sa.Column("at_risk_below", sa.Integer, nullable=False),
        sa.Column("figures", sa.Text, nullable=False),
        sa.Column("computed_us", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("end_us", "group_by", "policy", "at_risk_below"),
    )


def downgrade() -> None:
    op.drop_table(TABLE)
