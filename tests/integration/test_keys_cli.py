"""``onevoice keys``: the operator's way to make, list and revoke keys on the database itself
(SQLite here; the HTTP matrix runs on PostgreSQL too), and what a made key may then do."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.bootstrap import migrate, open_database
from services.cli import main
from services.core.access import SECRET_PREFIX, store
from services.core.settings import Settings


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("ONEVOICE_DATA_DIR", str(tmp_path / "data"))
    settings = Settings()
    db = open_database(settings)
    migrate(db)
    db.dispose()
    return settings


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_create_list_revoke(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "keys", "create", "--name", "zendesk",
                         "--write-departments", "support", "--read")  # fmt: skip
    assert code == 0, err
    secret = out.strip()
    assert secret.startswith(SECRET_PREFIX) and len(secret) >= 46  # 256 bits in base64url
    assert "shown this once" in err and secret not in err
    db = open_database(env)
    with db.reading() as conn:
        grant = store.find(conn, secret)
    assert grant is not None
    assert (grant.name, grant.write_departments, grant.read, grant.admin) == (
        "zendesk", frozenset({"support"}), True, False)  # fmt: skip
    assert grant.write_refusal("support", "support.ticket_opened") is None
    assert grant.write_refusal("sales", "sales.meeting_held") is not None

    code, out, _ = run(capsys, "keys", "list")
    assert code == 0 and out.startswith("zendesk") and secret not in out
    assert run(capsys, "keys", "revoke", "zendesk")[0] == 0
    with db.reading() as conn:
        assert store.find(conn, secret) is None  # revoked: no grant
    code, out, _ = run(capsys, "keys", "list", "--revoked", "--json")
    assert '"revoked_at": "' in out
    assert run(capsys, "keys", "revoke", "zendesk")[0] == 1  # already revoked
    code, _, err = run(capsys, "keys", "create", "--name", "zendesk", "--read")
    assert code == 2 and "never reused" in err
    db.dispose()


@pytest.mark.parametrize(("argv", "problem"), [
    (["--name", "x"], "needs a scope"),
    (["--name", "x", "--write-departments", "sorcery"], "not configured departments: sorcery"),
    (["--name", "x", "--write-departments", "sales", "--write-types", "support.ticket_opened"],
     "may not write: support.ticket_opened"),
    (["--name", "Upper", "--read"], "must be 1 to 64"),
])  # fmt: skip
def test_bad_keys_are_refused_with_the_reason(
    env: Settings, capsys: pytest.CaptureFixture[str], argv: list[str], problem: str
) -> None:
    code, out, err = run(capsys, "keys", "create", *argv)
    assert code == 2 and out == "" and problem in err, err


def test_secret_prints_a_fresh_key_each_time(capsys: pytest.CaptureFixture[str]) -> None:
    first = run(capsys, "keys", "secret")[1].strip()
    second = run(capsys, "keys", "secret")[1].strip()
    assert first != second and first.startswith(SECRET_PREFIX)
    assert Settings(bootstrap_key=first).bootstrap_key.get_secret_value() == first
    with pytest.raises(ValueError, match="keys secret"):
        Settings(bootstrap_key="hunter2")


def test_the_first_key_is_on_disk_before_it_is_registered(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from services.core.access.first import KeyFileUnwritable, ensure_first_key
    from services.core.readmodels.timeline import to_micros

    now_us = to_micros(datetime.now(UTC))
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    settings = Settings(data_dir=blocked / "data",
                        database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}")  # fmt: skip
    db = open_database(settings)
    migrate(db)
    with pytest.raises(KeyFileUnwritable, match="ONEVOICE_BOOTSTRAP_KEY"):
        ensure_first_key(db, settings, now_us)
    with db.reading() as conn:
        assert store.made(conn) == 0  # nothing registered that nobody holds
    # A writable folder: the file (0600, the key on its last line) matches the registered key.
    settings = settings.model_copy(update={"data_dir": tmp_path / "data"})
    path = ensure_first_key(db, settings, now_us)
    assert path is not None and path.stat().st_mode & 0o777 == 0o600
    secret = path.read_text().splitlines()[-1]
    with db.reading() as conn:
        grant = store.find(conn, secret)
    assert grant is not None and grant.admin and grant.read_sensitive
    assert grant.write_refusal("a_department_added_later", "x.y") is None
    assert [p.name for p in path.parent.iterdir()] == ["admin.key"]  # no temporary left
    assert ensure_first_key(db, settings, now_us) is None  # once
    db.dispose()


def test_a_bootstrap_key_from_a_secret_file_loses_its_newline(tmp_path: Path) -> None:
    from services.core.access import new_secret

    secret = new_secret()
    settings = Settings(data_dir=tmp_path, bootstrap_key=secret + "\n")
    assert settings.bootstrap_key.get_secret_value() == secret
