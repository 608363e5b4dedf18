"""AccountDirectory: accounts, their owners and last touch per department.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account_directory_accounts",
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("registered", sa.Boolean, nullable=False),
        sa.Column("name", sa.Text, nullable=True),
        sa.Column("name_key", sa.Text, nullable=False),
        sa.Column("segment", sa.String(256), nullable=True),
        sa.Column("tier", sa.String(256), nullable=True),
        sa.Column("parent_account_id", sa.String(128), nullable=True),
        sa.Column("owners", sa.Text, nullable=False),
        sa.Column("reg_us", sa.BigInteger, nullable=True),
        sa.Column("reg_partition", sa.Integer, nullable=True),
        sa.Column("reg_offset", sa.BigInteger, nullable=True),
        sa.Column("last_touch_us", sa.BigInteger, nullable=True),
        sa.Column("last_touch_partition", sa.Integer, nullable=True),
        sa.Column("last_touch_offset", sa.BigInteger, nullable=True),
        sa.Column("last_touch_event_id", sa.String(36), nullable=True),
    )
    op.create_index(
        "ix_account_directory_accounts_last_touch",
        "account_directory_accounts",
        ["last_touch_us", "account_id"],
    )
    op.create_index(
        "ix_account_directory_accounts_parent", "account_directory_accounts", ["parent_account_id"]
    )
    op.create_table(
        "account_directory_touches",
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("department", sa.String(32), primary_key=True),
        sa.Column("at_us", sa.BigInteger, nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=True),
    )
    op.create_table(
        "account_directory_owners",
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("department", sa.String(32), primary_key=True),
        sa.Column("employee_id", sa.String(256), nullable=False),
    )
    op.create_index(
        "ix_account_directory_owners_employee", "account_directory_owners", ["employee_id"]
    )


def downgrade() -> None:
    op.drop_table("account_directory_owners")
    op.drop_table("account_directory_touches")
    op.drop_index("ix_account_directory_accounts_parent", "account_directory_accounts")
    op.drop_index("ix_account_directory_accounts_last_touch", "account_directory_accounts")
    op.drop_table("account_directory_accounts")
