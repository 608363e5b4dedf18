"""Migrations run in one place: the services check the schema version and refuse a wrong one;
concurrent migrations on PostgreSQL serialise on one advisory lock."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text

from services import cli
from services.bootstrap import ROOT, build, migrate, open_database
from services.core.adapters.sql import Database
from services.core.adapters.sql_schema import (
    MIGRATE_LOCK,
    SchemaMismatch,
    current_revision,
    head_revision,
)
from services.core.settings import Settings
from tests.conftest import make_settings

ALEMBIC_INI = ROOT / "alembic.ini"


def head_and_previous() -> tuple[str, str]:
    head = ScriptDirectory.from_config(Config(str(ALEMBIC_INI))).get_revision("head")
    assert isinstance(head.down_revision, str)
    return head.revision, head.down_revision


def at_revision(settings: Settings, revision: str) -> None:
    """The settings' database migrated to ``revision`` exactly (alembic, as an old release did)."""
    db = open_database(settings)
    config = Config(str(ALEMBIC_INI))
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    db.dispose()


def revision_of(settings: Settings) -> str | None:
    db = open_database(settings)
    try:
        with db.reading() as conn:
            return current_revision(conn)
    finally:
        db.dispose()


def test_a_service_role_refuses_an_older_schema_and_names_both_revisions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    head, previous = head_and_previous()
    settings = make_settings(tmp_path / "data")
    at_revision(settings, previous)
    with pytest.raises(SchemaMismatch) as refused:
        build(settings, run_migrations=False, role="api")
    assert str(refused.value) == (
        f"the database schema is at revision {previous}, older than this version's {head}:"
        " run `onevoice migrate` (make migrate, the migrate job) before starting the services"
    )
    monkeypatch.setenv("ONEVOICE_DATA_DIR", str(settings.data_dir))
    for role in ("api", "ingest", "projector"):
        assert cli.main([role]) == 1, role
        err = capsys.readouterr().err
        assert f"onevoice {role}: the database schema is at revision {previous}" in err
        assert f"older than this version's {head}" in err and "onevoice migrate" in err
    assert revision_of(settings) == previous  # nothing migrated it
    assert cli.main(["migrate"]) == 0
    assert revision_of(settings) == head
    build(settings, run_migrations=False, role="api").close()  # now it starts


def test_an_empty_or_newer_schema_is_refused_too(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    with pytest.raises(SchemaMismatch, match=r"no OneVoice schema .*needs \w+\): run `onevoice"):
        build(settings, run_migrations=False, role="projector")
    assert revision_of(settings) is None
    build(settings).close()  # `onevoice run` (and the tests' default) migrates itself
    db = open_database(settings)
    with db.transaction() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    db.dispose()
    with pytest.raises(SchemaMismatch) as refused:
        build(settings, run_migrations=False, role="ingest")
    assert str(refused.value) == (
        "the database schema is at revision 9999, which this version does not know (its newest"
        f" is {head_revision(ALEMBIC_INI)}): a newer OneVoice migrated it; run that version"
    )


def advisory_waiters(url: str) -> int:
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_concurrent_migrations_on_postgresql_wait_for_one_lock_and_both_succeed(
    pg_url: str,
) -> None:
    plain = pg_url.replace("postgresql+psycopg://", "postgresql://")
    errors: list[BaseException] = []

    def run_migrate() -> None:
        db = Database(pg_url)
        try:
            migrate(db)
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.dispose()

    with psycopg.connect(plain, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATE_LOCK,))
        runs = [threading.Thread(target=run_migrate) for _ in range(2)]
        for run in runs:
            run.start()
        deadline = time.monotonic() + 30
        while advisory_waiters(pg_url) < 2:  # both queue behind the lock, neither migrates
            assert time.monotonic() < deadline, "the migrations did not wait for the lock"
            time.sleep(0.02)
        assert all(run.is_alive() for run in runs)
        holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK,))
        for run in runs:
            run.join(timeout=60)
    assert errors == []
    settings = make_settings(Path("unused"), database_url=pg_url)
    assert revision_of(settings) == head_revision(ALEMBIC_INI)
    build(settings, run_migrations=False, role="api").close()
