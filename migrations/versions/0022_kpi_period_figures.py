"""The KPI report's kept figures of whole periods (``readmodels.kpi_figures``).

Empty after the upgrade: the refresher fills it; the report counts what no row answers for,
as before this release.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

TABLE = "kpi_period_figures"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("start_us", sa.BigInteger, nullable=False),
        sa.Column("end_us", sa.BigInteger, nullable=False),
        sa.Column("group_by", sa.String(16), nullable=False),
        sa.Column("policy", sa.String(32), nullable=False),
        sa.Column("at_risk_below", sa.Integer, nullable=False),
        sa.Column("as_of_us", sa.BigInteger, nullable=False),
        sa.Column("until_us", sa.BigInteger, nullable=False),
        sa.Column("depends_until_us", sa.BigInteger, nullable=False),
        sa.Column("has_states", sa.Boolean, nullable=False),
        sa.Column("figures", sa.Text, nullable=False),
        sa.Column("computed_us", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("start_us", "end_us", "group_by", "policy", "at_risk_below"),
    )


def downgrade() -> None:
    op.drop_table(TABLE)
