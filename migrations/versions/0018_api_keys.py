"""API keys (``core.access.store``): each key's name, the SHA-256 of its secret, its grant.

Empty after the upgrade: the first start of a serving process creates the first key
(``data/admin.key``, or ``ONEVOICE_BOOTSTRAP_KEY``), unless ``ONEVOICE_AUTH=disabled``.

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

TABLE = "api_keys"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("write_departments", sa.Text, nullable=False),
        sa.Column("write_types", sa.Text, nullable=True),
        sa.Column("can_read", sa.Boolean, nullable=False),
        sa.Column("can_admin", sa.Boolean, nullable=False),
        sa.Column("can_read_sensitive", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("write_rate", sa.Float, nullable=True),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("revoked_us", sa.BigInteger, nullable=True),
    )


def downgrade() -> None:
    op.drop_table(TABLE)
