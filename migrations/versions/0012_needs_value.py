"""Customer needs, orders, renewals and churn (issue 10): new OneVoiceView tables for new event
types (no earlier event fills them).

Revisions 0009-0012 change the live tables of AccountTimeline, AccountDirectory, LeadershipLog
and OneVoiceView. Their other generations — a rebuild's shadow, a generation kept for rollback —
keep the old shape, which the new code cannot use: this revision drops them, clears the kept
generation (nothing to roll back to) and fails the open rebuilds of those read models with a
message saying to start them again.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

import json
import time

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _side(prefix: str) -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column(f"{prefix}_event_id", sa.String(36), nullable=True),
        sa.Column(f"{prefix}_us", sa.BigInteger(), nullable=True),
        sa.Column(f"{prefix}_partition", sa.Integer(), nullable=True),
        sa.Column(f"{prefix}_offset", sa.BigInteger(), nullable=True),
    ]


CHANGED = {"AccountTimeline": "account_timeline", "AccountDirectory": "account_directory",
           "LeadershipLog": "leadership_log", "OneVoiceView": "one_voice_view"}  # fmt: skip


def _retire_other_generations() -> None:
    bind = op.get_bind()
    for table in sa.inspect(bind).get_table_names():
        if any(table.startswith(f"{prefix}__g") for prefix in CHANGED.values()):
            op.drop_table(table)
    names = sa.bindparam("names", expanding=True)
    bind.execute(sa.text("UPDATE projection_generations SET kept = NULL"
                         " WHERE projection IN :names").bindparams(names),
                 {"names": list(CHANGED)})  # fmt: skip
    now_us = time.time_ns() // 1000
    open_rebuilds = bind.execute(sa.text(
        "SELECT id, projections FROM rebuilds WHERE state IN ('running', 'verifying', 'diff')"
    )).all()  # fmt: skip
    for rebuild_id, projections in open_rebuilds:
        if not set(json.loads(projections)) & set(CHANGED):
            continue
        bind.execute(sa.text(
            "UPDATE rebuilds SET state = 'failed', finished_us = :now, updated_us = :now,"
            " worker = NULL, lease_until_us = NULL, error = :error WHERE id = :id"
        ), {"now": now_us, "id": rebuild_id, "error": (
            "migrations 0009-0012 changed the tables of this read model, and its shadow"
            " generation was dropped: start the rebuild again")})  # fmt: skip
        bind.execute(sa.text("DELETE FROM rebuild_claims WHERE rebuild_id = :id"),
                     {"id": rebuild_id})  # fmt: skip


def upgrade() -> None:
    _retire_other_generations()
    op.create_table(
        "one_voice_view_needs",
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("need_id", sa.String(256), primary_key=True),
        *_side("identified"),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("category", sa.String(256), nullable=True),
        sa.Column("category_key", sa.Text(), nullable=True),
        sa.Column("priority", sa.String(16), nullable=True),
        sa.Column("department", sa.String(32), nullable=True),
        sa.Column("identified_by", sa.Text(), nullable=True),
        *_side("addressed"),
        sa.Column("how", sa.Text(), nullable=True),
        sa.Column("on_site", sa.Boolean(), nullable=True),
        sa.Column("addressed_by", sa.Text(), nullable=True),
    )
    op.create_index("ix_one_voice_view_needs_identified", "one_voice_view_needs",
                    ["identified_us"])  # fmt: skip
    op.create_table(
        "one_voice_view_orders",
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("order_id", sa.String(256), primary_key=True),
        *_side("placed"),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("products", sa.Text(), nullable=True),
        sa.Column("placed_by", sa.Text(), nullable=True),
    )
    op.create_table(
        "one_voice_view_contracts",
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("contract_id", sa.String(256), primary_key=True),
        *_side("scheduled"),
        sa.Column("renews_us", sa.BigInteger(), nullable=True),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        *_side("renewed"),
        sa.Column("next_renews_us", sa.BigInteger(), nullable=True),
        sa.Column("renewed_amount", sa.Float(), nullable=True),
        sa.Column("renewed_currency", sa.String(3), nullable=True),
    )
    op.create_table(
        "one_voice_view_churns",
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("contract_id", sa.String(256), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("one_voice_view_churns")
    op.drop_table("one_voice_view_contracts")
    op.drop_table("one_voice_view_orders")
    op.drop_index("ix_one_voice_view_needs_identified", "one_voice_view_needs")
    op.drop_table("one_voice_view_needs")
