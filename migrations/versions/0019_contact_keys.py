"""Contact keys (``core.privacy.vault``): one AES key per customer contact, which erasure
destroys, the digests an erasure finds a contact by, shared mailboxes, and erasures not settled
yet.

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
        sa.Column(
            "subject",
            sa.String(32),
            sa.ForeignKey("contact_keys.subject", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
    )
    op.create_index("ix_contact_identities_subject", "contact_identities", ["subject"])
    op.create_table(
        "contact_shared_emails",
        sa.Column("digest", sa.String(64), primary_key=True),
    )
    op.create_table(
        "contact_erasures",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("subjects", sa.Text, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("contact_erasures")
    op.drop_table("contact_shared_emails")
    op.drop_table("contact_identities")
    op.drop_table("contact_keys")
