"""ReportFacts: the facts the leaders' reports query by time (issue 11); indexes by time on the
OneVoiceView's tickets and signals (complaint trends, handoff follow-through).

On a database whose read models already applied events, the new read model is marked not built
(``projection_generations.active = 0``): the live projectors skip it and the projector's rebuild
worker backfills it in a shadow and switches it live, with no downtime and no operator step. On a
fresh database it is simply live from offset 0.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

import json
import re

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _position() -> list[sa.Column]:
    return [
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "report_facts_employees",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("employee_id", sa.String(256), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        *_position(),
    )
    op.create_index("ix_report_facts_employees_id", "report_facts_employees", ["employee_id"])
    op.create_table(
        "report_facts_people",
        sa.Column("person_id", sa.String(256), primary_key=True),
        sa.Column("person", sa.Text(), nullable=False),
        sa.Column("department", sa.String(32), nullable=False),
        sa.Column("executive", sa.Boolean(), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("account_id", sa.String(128), nullable=False),
        *_position(),
    )
    op.create_table(
        "report_facts_touches",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("person_id", sa.String(256), primary_key=True),
        sa.Column("department", sa.String(32), nullable=False),
        sa.Column("executive", sa.Boolean(), nullable=False),
        sa.Column("related", sa.Boolean(), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_report_facts_touches_at", "report_facts_touches", ["at_us"])
    op.create_index(
        "ix_report_facts_touches_account", "report_facts_touches", ["account_id", "at_us"]
    )
    op.create_index(
        "ix_report_facts_touches_person", "report_facts_touches", ["person_id", "at_us"]
    )
    op.create_table(
        "report_facts_firsts",
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("department", sa.String(32), primary_key=True),
        sa.Column("first_us", sa.BigInteger(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "report_facts_voice",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("item", sa.Integer(), primary_key=True),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("theme", sa.Text(), nullable=False),
        sa.Column("theme_key", sa.Text(), nullable=False),
        sa.Column("department", sa.String(32), nullable=False),
        sa.Column("actor_id", sa.String(256), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("score", sa.Integer(), nullable=True),
        *_position(),
    )
    op.create_index("ix_report_facts_voice_at", "report_facts_voice", ["at_us"])
    op.create_table(
        "report_facts_targets",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("group_by", sa.String(16), nullable=False),
        sa.Column("group_name", sa.String(256), nullable=False),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("target", sa.Float(), nullable=False),
        sa.Column("set_by", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        *_position(),
    )
    bind = op.get_bind()
    used = bind.execute(
        sa.text("SELECT COUNT(*) FROM projection_checkpoints WHERE next_offset > 0")
    ).scalar_one()
    if used:
        bind.execute(sa.text(
            "INSERT INTO projection_generations (projection, active) VALUES ('ReportFacts', 0)"
        ))  # fmt: skip
    _index_every_generation(bind)


# The new time indexes of the OneVoiceView, on the live tables and on any other generation (a
# rebuild's shadow, a generation kept for rollback) that may go live later.
_NEW_INDEXES = (("tickets", "opened", "opened_us"), ("tickets", "resolved", "resolved_us"),
                ("signals", "time", "at_us"))  # fmt: skip


def _index_every_generation(bind: sa.engine.Connection) -> None:
    tables = sa.inspect(bind).get_table_names()
    for suffix, name, column in _NEW_INDEXES:
        for table in tables:
            match = re.fullmatch(rf"(one_voice_view(?:__g\d+)?)_{suffix}", table)
            if match:
                op.create_index(f"ix_{match.group(1)}_{suffix}_{name}", table, [column])


def downgrade() -> None:
    """Forget ReportFacts everywhere the older release would trip over it: its generations,
    checkpoints, dead letters, open rebuilds (failed, their claims released) and tables."""
    bind = op.get_bind()
    for statement in (
        "DELETE FROM projection_generations WHERE projection = 'ReportFacts'",
        "DELETE FROM projection_checkpoints WHERE projection = 'ReportFacts'",
        "DELETE FROM dead_letters WHERE projection = 'ReportFacts'",
    ):
        op.execute(statement)
    for rebuild_id, projections in bind.execute(sa.text(
        "SELECT id, projections FROM rebuilds WHERE state IN ('running', 'verifying', 'diff')"
    )).all():  # fmt: skip
        if "ReportFacts" in json.loads(projections):
            bind.execute(
                sa.text(
                    "UPDATE rebuilds SET state = 'failed', worker = NULL, lease_until_us = NULL,"
                    " error = 'downgraded below revision 0013' WHERE id = :id"
                ),
                {"id": rebuild_id},
            )
            bind.execute(sa.text("DELETE FROM rebuild_claims WHERE rebuild_id = :id"),
                         {"id": rebuild_id})  # fmt: skip
    tables = sa.inspect(bind).get_table_names()
    for suffix, name, _ in _NEW_INDEXES:
        for table in tables:
            match = re.fullmatch(rf"(one_voice_view(?:__g\d+)?)_{suffix}", table)
            if match:
                op.drop_index(f"ix_{match.group(1)}_{suffix}_{name}", table)
    for table in tables:
        if table.startswith("report_facts_"):
            op.drop_table(table)
