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


def _every_generation(bind: sa.engine.Connection) -> list[tuple[str, str, str, bool]]:
    """(table, index name, column, whether it exists) of each new index, on every
    generation's table."""
    found = []
    inspector = sa.inspect(bind)
    tables = inspector.get_table_names()
    for prefix, suffix, name, column in _NEW_INDEXES:
        for table in tables:
            match = re.fullmatch(rf"({prefix}(?:__g\d+)?)_{suffix}", table)
            if match:
                index = f"ix_{match.group(1)}_{suffix}_{name}"
                present = index in {i["name"] for i in inspector.get_indexes(table)}
                found.append((table, index, column, present))
    return found


def upgrade() -> None:
    # Only where missing: a generation that an older release created during a rolling upgrade
    # may lack them, one this release created has them.
    for table, index, column, present in _every_generation(op.get_bind()):
        if not present:
            op.create_index(index, table, [column])


def downgrade() -> None:
    for table, index, _, present in _every_generation(op.get_bind()):
        if present:
            op.drop_index(index, table)
