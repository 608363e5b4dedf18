"""The read-model schema's version: migrating it (in one place, serialised) and checking it.

Contract:
- ``migrate`` brings the database to the newest revision of ``migrations/`` in one transaction
  that first takes a lock every migrating process shares (PostgreSQL: the transaction-level
  advisory lock ``MIGRATE_LOCK``; SQLite: its write lock, ``BEGIN IMMEDIATE``). Two concurrent
  runs therefore serialise: the second waits, then finds the schema at head and does nothing.
- ``check`` changes nothing: it raises ``SchemaMismatch`` unless the database is exactly at the
  newest revision this code knows, naming both revisions and what to run.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from services.core.adapters.sql import Database

# pg_advisory_xact_lock's key: "OneVoice" in ASCII, one bigint no other lock of ours uses.
MIGRATE_LOCK = int.from_bytes(b"OneVoice", "big")


class SchemaMismatch(RuntimeError):
    """The database is not at the schema revision this code needs; the message says which
    revisions and what to do."""


def _config(alembic_ini: Path) -> Config:
    return Config(str(alembic_ini))


def head_revision(alembic_ini: Path) -> str:
    """The newest revision of the migrations ``alembic_ini`` points at."""
    head = ScriptDirectory.from_config(_config(alembic_ini)).get_current_head()
    assert head is not None, "migrations/ has no revision"
    return head


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at (None: never migrated)."""
    return MigrationContext.configure(conn).get_current_revision()


def migrate(db: Database, alembic_ini: Path) -> None:
    """``alembic upgrade head`` under the migration lock (see the module's contract)."""
    config = _config(alembic_ini)
    with db.engine.connect().execution_options(write=True) as conn, conn.begin():
        if db.dialect == "postgresql":
            # Released at COMMIT or ROLLBACK, so a killed migration never leaves it held.
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATE_LOCK})
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def check(db: Database, alembic_ini: Path) -> None:
    """Raise ``SchemaMismatch`` unless the database is at this code's newest revision."""
    head = head_revision(alembic_ini)
    with db.reading() as conn:
        current = current_revision(conn)
    if current == head:
        return
    if current is None:
        raise SchemaMismatch(
            f"the database has no OneVoice schema (no alembic revision; this version needs"
            f" {head}): run `onevoice migrate` (make migrate, the migrate job) first"
        )
    scripts = ScriptDirectory.from_config(_config(alembic_ini))
    if current not in {script.revision for script in scripts.walk_revisions()}:
        raise SchemaMismatch(
            f"the database schema is at revision {current}, which this version does not know"
            f" (its newest is {head}): a newer OneVoice migrated it; run that version"
        )
    raise SchemaMismatch(
        f"the database schema is at revision {current}, older than this version's {head}:"
        " run `onevoice migrate` (make migrate, the migrate job) before starting the services"
    )
