"""The health cache in code-point order, with an index per coverage section and the accounts
list's default order (``touch_key``: the directory's last touch when evaluated).

The lists and the coverage report order accounts by id and the text sort keys by code point
(as Python does). On PostgreSQL the columns get collation "C" so their indexes serve that order
(before, every such query sorted all valid rows with ``COLLATE "C"``); SQLite compares text
by code point already. Each coverage section gets a partial index on (first key, account id)
over the rows that have items there: the report reads its first ``limit`` accounts per section
from it instead of every row. Every row is stale to this release (``RULES_VERSION`` 3): the
refresher evaluates them again after the upgrade, and reads evaluate stale rows themselves.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

TABLE = "account_health_cache"
TEXT_KEYS = ("cov_neglected", "cov_never", "cov_overdue", "cov_stale", "cov_after_fix")
SECTION_KEYS = (*TEXT_KEYS[:2], "cov_single", "cov_recurring", *TEXT_KEYS[2:])


def _collate(collation: str | None) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    clause = "" if collation is None else f' COLLATE "{collation}"'
    op.execute(f"ALTER TABLE {TABLE} ALTER COLUMN account_id TYPE varchar(128){clause}")
    for column in TEXT_KEYS:
        op.execute(f"ALTER TABLE {TABLE} ALTER COLUMN {column} TYPE text{clause}")


TOTALS = "account_health_totals"
# Coverage section -> (its first-key column, its item-count column or None: one item).
SECTIONS = {
    "neglected": ("cov_neglected", None),
    "never_contacted": ("cov_never", None),
    "single_threaded": ("cov_single", None),
    "recurring_complaints": ("cov_recurring", None),
    "overdue_commitments": ("cov_overdue", "cov_overdue_n"),
    "stale_handoffs": ("cov_stale", None),
    "recurrences_after_fix": ("cov_after_fix", "cov_after_fix_n"),
}
TRIGGERS = {"INSERT": "ins", "UPDATE": "upd", "DELETE": "del"}


def _items(row: str) -> list[str]:
    """Per section, how many items the cache row ``row`` (NEW, OLD or a table) holds."""
    return [f"(CASE WHEN {row}.{key} IS NULL THEN 0 ELSE "
            f"{1 if count is None else f'COALESCE({row}.{count}, 0)'} END)"
            for key, count in SECTIONS.values()]  # fmt: skip


def _held(row: str) -> str:
    """Whether the row holds any item (a row without any adds nothing anywhere)."""
    return "(" + " OR ".join(f"{row}.{key} IS NOT NULL" for key, _ in SECTIONS.values()) + ")"


def _add(row: str, sign: str, postgres: bool) -> str:
    """Add (``+``) or take away (``-``) the row's items from its policy's totals. On
    PostgreSQL only when it holds any: a row without items takes no lock on the totals (the
    projector's new rows; a refresher's first evaluation of an account changes one policy's)."""
    sets = ", ".join(f"{s} = {s} {sign} {n}" for s, n in zip(SECTIONS, _items(row), strict=True))
    values = f"INTO {TOTALS} (policy) VALUES ({row}.policy)"
    if postgres:
        return (f"IF {_held(row)} THEN INSERT {values} ON CONFLICT DO NOTHING; "
                f"UPDATE {TOTALS} SET {sets} WHERE policy = {row}.policy; END IF;")  # fmt: skip
    return f"INSERT OR IGNORE {values}; UPDATE {TOTALS} SET {sets} WHERE policy = {row}.policy;"


def _changed(postgres: bool) -> str:
    """A row's items or policy changed (SQLite's ``IS NOT`` compares NULLs as values, as
    PostgreSQL's ``IS DISTINCT FROM`` does; the latter needs SQLite 3.39)."""
    differ = "IS DISTINCT FROM" if postgres else "IS NOT"
    columns = ["policy", *(c for pair in SECTIONS.values() for c in pair if c is not None)]
    changed = " OR ".join(f"OLD.{c} {differ} NEW.{c}" for c in columns)
    return f"({changed}) AND ({_held('OLD')} OR {_held('NEW')})"


def _triggers() -> None:
    """Keep ``account_health_totals`` equal to the cache's items per policy, whoever writes.
    Two refreshers storing at once on PostgreSQL lock the totals' rows in policy order first
    (``health_cache.store``), so their triggers never wait on each other crosswise."""
    postgres = op.get_bind().dialect.name == "postgresql"
    steps = {"INSERT": _add("NEW", "+", postgres), "DELETE": _add("OLD", "-", postgres),
             "UPDATE": _add("OLD", "-", postgres) + " " + _add("NEW", "+", postgres)}  # fmt: skip
    when = {"INSERT": _held("NEW"), "DELETE": _held("OLD"), "UPDATE": _changed(postgres)}
    for event, short in TRIGGERS.items():
        name = f"{TOTALS}_{short}"
        head = f"CREATE TRIGGER {name} AFTER {event} ON {TABLE} FOR EACH ROW WHEN ({when[event]})"
        if postgres:
            op.execute(f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                       f"{steps[event]} RETURN NULL; END $$")  # fmt: skip
            op.execute(f"{head} EXECUTE FUNCTION {name}()")
        else:
            op.execute(f"{head} BEGIN {steps[event]} END")


def upgrade() -> None:
    _collate("C")
    op.add_column(TABLE, sa.Column("touch_key", sa.BigInteger, nullable=True))
    op.create_index("ix_account_health_cache_touch", TABLE, ["touch_key", "account_id"])
    op.create_table(
        TOTALS,
        sa.Column("policy", sa.String(32), primary_key=True),
        *(sa.Column(s, sa.BigInteger, nullable=False, server_default="0") for s in SECTIONS),
    )
    sums = ", ".join(f"SUM({n})" for n in _items(TABLE))
    held = f"SELECT policy, {sums} FROM {TABLE} WHERE {_held(TABLE)} GROUP BY policy"
    op.execute(f"INSERT INTO {TOTALS} (policy, {', '.join(SECTIONS)}) {held}")
    _triggers()
    for column in SECTION_KEYS:
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(f"ix_account_health_cache_{column}", TABLE, [column, "account_id"],
                        postgresql_where=where, sqlite_where=where)  # fmt: skip


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for short in TRIGGERS.values():
        op.execute(f"DROP TRIGGER {TOTALS}_{short}" + (f" ON {TABLE}" if postgres else ""))
        if postgres:
            op.execute(f"DROP FUNCTION {TOTALS}_{short}()")
    op.drop_table(TOTALS)
    for column in SECTION_KEYS:
        op.drop_index(f"ix_account_health_cache_{column}", TABLE)
    op.drop_index("ix_account_health_cache_touch", TABLE)
    op.drop_column(TABLE, "touch_key")
    _collate(None)
