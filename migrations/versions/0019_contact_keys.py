"""Contact keys (``core.privacy.vault``): one AES key per customer contact, which erasure
destroys, and the digests an erasure finds a contact by.

Empty after the upgrade: events appended before it hold contacts in the clear, and stay so
(README, Erasure); every contact posted after it is sealed.

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contact_keys",
        sa.Column("subject", sa.String(32), primary_key=True),
        sa.Column("identity", sa.String(64), nullable=False, unique=True),
        sa.Column("key", sa.String(64), nullable=False),  # hex
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "contact_identities",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("subject", sa.String(32), primary_key=True),
    )
    op.create_index("ix_contact_identities_subject", "contact_identities", ["subject"])


def downgrade() -> None:
    op.drop_table("contact_identities")
    op.drop_table("contact_keys")
