"""Indexes by time on the AccountTimeline's entries and the OneVoiceView's contacts: the
handoff report (and the KPI report's handoffs) looks up every sales and success touch of a
window across accounts, which read each whole table without them.

Added to every generation (the live tables, a rebuild's shadow, a generation kept for rollback),
as 0013 did; the table definitions carry them for generations created later.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30
"""

import re

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# (read model prefix, table suffix, index name, column)
_NEW_INDEXES = (("account_timeline", "entries", "time", "occurred_us"),
                ("one_voice_view", "contacts", "time", "at_us"))  # fmt: skip


def _every_generation(bind: sa.engine.Connection) -> list[tuple[str, str, str]]:
    """(table, index name, column) of each new index, on every generation's table."""
    found = []
    tables = sa.inspect(bind).get_table_names()
    for prefix, suffix, name, column in _NEW_INDEXES:
        for table in tables:
            match = re.fullmatch(rf"({prefix}(?:__g\d+)?)_{suffix}", table)
            if match:
                found.append((table, f"ix_{match.group(1)}_{suffix}_{name}", column))
    return found


def upgrade() -> None:
    for table, index, column in _every_generation(op.get_bind()):
        op.create_index(index, table, [column])


def downgrade() -> None:
    for table, index, _ in _every_generation(op.get_bind()):
        op.drop_index(index, table)
