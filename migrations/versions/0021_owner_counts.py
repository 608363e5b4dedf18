"""How many accounts each owner owns, kept by the AccountDirectory beside its owners
(``<prefix>_owner_counts``): the coverage report's silent owners and the employees list read an
owner's count instead of every account they own (41,000 rows each for the two owners of the
bench's 100,000 accounts).

Created and filled on every generation (the live tables, a rebuild's shadow, a generation kept
for rollback) from its owners, as 0014 added indexes; the table definitions carry it for
generations created later.

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


def _prefixes(bind: sa.engine.Connection) -> list[tuple[str, bool]]:
    """(prefix, whether its owner counts exist) of every generation of the AccountDirectory."""
    tables = set(sa.inspect(bind).get_table_names())
    found = []
    for table in sorted(tables):
        match = re.fullmatch(r"(account_directory(?:__g\d+)?)_owners", table)
        if match:
            found.append((match.group(1), f"{match.group(1)}_owner_counts" in tables))
    return found


def upgrade() -> None:
    for prefix, present in _prefixes(op.get_bind()):
        if present:  # created by this release's rebuild during a rolling upgrade
            continue
        op.create_table(
            f"{prefix}_owner_counts",
            sa.Column("employee_id", sa.String(256), primary_key=True),
            sa.Column("accounts", sa.BigInteger, nullable=False),
        )
        op.execute(f"INSERT INTO {prefix}_owner_counts (employee_id, accounts) "
                   f"SELECT employee_id, COUNT(DISTINCT account_id) FROM {prefix}_owners "
                   f"GROUP BY employee_id")  # fmt: skip


def downgrade() -> None:
    for prefix, present in _prefixes(op.get_bind()):
        if present:
            op.drop_table(f"{prefix}_owner_counts")
