"""The AccountDirectory's owners indexed by (employee, account), not by employee alone: the
coverage report and the employees list count an owner's accounts from the index alone
(distinct accounts in index order), instead of reading every owner row.

Replaced on every generation (the live tables, a rebuild's shadow, a generation kept for
rollback), as 0014 added indexes; the table definitions carry it for generations created later.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-01
"""

import re

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def _owners_tables(bind: sa.engine.Connection) -> list[tuple[str, str, list[str]]]:
    """(table, index name, the index's columns now) of every generation's owners table."""
    found = []
    inspector = sa.inspect(bind)
    for table in inspector.get_table_names():
        match = re.fullmatch(r"(account_directory(?:__g\d+)?)_owners", table)
        if match:
            index = f"ix_{match.group(1)}_owners_employee"
            columns = {i["name"]: i["column_names"] for i in inspector.get_indexes(table)}
            found.append((table, index, list(columns.get(index) or [])))
    return found


def _index(columns: list[str]) -> None:
    for table, index, now in _owners_tables(op.get_bind()):
        if now != columns:
            if now:
                op.drop_index(index, table)
            op.create_index(index, table, columns)


def upgrade() -> None:
    _index(["employee_id", "account_id"])


def downgrade() -> None:
    _index(["employee_id"])
