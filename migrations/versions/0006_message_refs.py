"""Index OneVoiceView messages by proposal id (whether a later proposal replaced one).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_one_voice_view_messages_ref", "one_voice_view_messages",
        ["account_id", "kind", "ref_id"],
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_one_voice_view_messages_ref", "one_voice_view_messages")
