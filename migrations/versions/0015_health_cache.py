"""The health cache (``readmodels.health_cache``): each account's health, list keys and
coverage items, kept ahead of reads by the refresher, with the span of time each is valid for.

Every account of the directory gets a stale row; the refresher evaluates them after the upgrade
(reads evaluate stale rows themselves until then, as before this release).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

TABLE = "account_health_cache"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("stamp", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("valid_from_us", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("valid_until_us", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("policy", sa.String(32), nullable=False, server_default=""),
        sa.Column("score", sa.Integer, nullable=True),
        sa.Column("value_cents", sa.BigInteger, nullable=True),
        sa.Column("renews_us", sa.BigInteger, nullable=True),
        sa.Column("coverage", sa.Text, nullable=True),
        sa.Column("cov_neglected", sa.Text, nullable=True),
        sa.Column("cov_never", sa.Text, nullable=True),
        sa.Column("cov_single", sa.Float, nullable=True),
        sa.Column("cov_recurring", sa.Integer, nullable=True),
        sa.Column("cov_overdue", sa.Text, nullable=True),
        sa.Column("cov_overdue_n", sa.Integer, nullable=True),
        sa.Column("cov_stale", sa.Text, nullable=True),
        sa.Column("cov_after_fix", sa.Text, nullable=True),
        sa.Column("cov_after_fix_n", sa.Integer, nullable=True),
    )
    op.create_index("ix_account_health_cache_until", TABLE, ["valid_until_us"])
    op.create_index("ix_account_health_cache_from", TABLE, ["valid_from_us"])
    op.create_index("ix_account_health_cache_policy", TABLE, ["policy"])
    op.create_index("ix_account_health_cache_score", TABLE, ["score", "account_id"])
    op.create_index("ix_account_health_cache_value", TABLE, ["value_cents", "account_id"])
    op.execute(
        f"INSERT INTO {TABLE} (account_id) SELECT account_id FROM account_directory_accounts"
    )


def downgrade() -> None:
    op.drop_table(TABLE)
