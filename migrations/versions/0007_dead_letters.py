"""Dead letters, projection fences, first copies of event ids; derived keys become Text.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29

Case folding can make a key longer than the text it came from ("ß" -> "ss"), so the derived
keys of OneVoiceView may not be bounded by their source columns' lengths.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_KEYS = (
    ("one_voice_view_tickets", "category_key", 256),
    ("one_voice_view_messages", "product_key", 256),
    ("one_voice_view_contacts", "contact_key", 400),
)


def upgrade() -> None:
    for table, column, length in _KEYS:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(column, type_=sa.Text(), existing_type=sa.String(length))
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("projection", sa.String(64), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("record_key", sa.LargeBinary(), nullable=True),
        sa.Column("record_value", sa.LargeBinary(), nullable=True),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=True),
        sa.Column("event_type", sa.Text(), nullable=True),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("error_class", sa.Text(), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=False),
        sa.Column("first_seen_us", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_us", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("redriven_us", sa.BigInteger(), nullable=True),
        sa.UniqueConstraint("projection", "generation", "topic", "partition", "offset",
                            name="uq_dead_letters_position"),
    )  # fmt: skip
    op.create_index(
        "ix_dead_letters_state", "dead_letters", ["state", "projection", "reason", "id"]
    )
    op.create_table(
        "projection_fences",
        sa.Column("projection", sa.String(64), primary_key=True),
        sa.Column("generation", sa.Integer(), primary_key=True),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "event_first_copies",
        sa.Column("topic", sa.String(255), primary_key=True),
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
    )
    # The timeline kept the first copy of every id it applied: register those, so a copy
    # re-delivered after the upgrade is not applied again. Only when the timeline was built from
    # ONE topic (it does not record which); otherwise registration starts empty (run
    # `onevoice replay` if the log holds copies). Read models other than the timeline, built
    # before this revision, may hold the last copy of an id that has several: a replay makes
    # them a pure fold again.
    op.execute(
        'INSERT INTO event_first_copies (topic, event_id, partition, "offset")'
        ' SELECT c.topic, e.event_id, e.partition, e."offset" FROM account_timeline_events e'
        " CROSS JOIN (SELECT MIN(topic) AS topic FROM projection_checkpoints"
        "  WHERE projection = 'AccountTimeline' AND generation = 0"
        "  HAVING COUNT(DISTINCT topic) = 1) c"
    )


def downgrade() -> None:
    op.drop_table("event_first_copies")
    op.drop_table("projection_fences")
    op.drop_index("ix_dead_letters_state", "dead_letters")
    op.drop_table("dead_letters")
    for table, column, length in _KEYS:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(column, type_=sa.String(length), existing_type=sa.Text())
