"""The first key: what a serving process does at start so that a fresh install is usable with
no configuration and never open.

When the database holds no key at all (none made, none revoked), the start registers one named
``admin`` with every scope: ``ONEVOICE_BOOTSTRAP_KEY`` when set (a deployment's secret), else a
new one written to ``<data_dir>/admin.key`` (mode 0600, the key alone on its last line). Two
processes starting at once: one registers, the other finds it registered and writes nothing.
With ``ONEVOICE_AUTH=disabled`` nothing is registered and every start warns.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from services.core.access import Grant, KeyProblem, new_secret
from services.core.access import store as keys
from services.core.adapters.sql import Database
from services.core.settings import Settings
from services.core.view_rules import iso

log = logging.getLogger(__name__)

KEY_FILE = "admin.key"
FIRST_NAME = "admin"


def ensure_first_key(db: Database, settings: Settings, now_us: int) -> Path | None:
    """Register the first key when there is none; returns the file written (else None).

    Without ``ONEVOICE_BOOTSTRAP_KEY`` the key is on disk before it is registered (a file no
    key matches is harmless; a registered key nobody holds would lock everyone out): a hidden
    temporary file first, then the commit, then the rename. Raises ``KeyFileUnwritable`` when
    the data folder cannot hold it (a read-only file system: set the bootstrap key)."""
    if settings.auth == "disabled":
        warn_disabled()
        return None
    given = settings.bootstrap_key.get_secret_value() or None
    grant = Grant.everything(FIRST_NAME)
    with db.reading() as conn:
        if keys.made(conn):
            return None
    secret = given or new_secret()
    path = (settings.data_dir / KEY_FILE).resolve()
    temporary = None if given else _write_hidden(path, secret, now_us, settings)
    try:
        with db.transaction() as conn:
            if keys.made(conn):
                raise KeyProblem("made meanwhile")
            keys.create(conn, grant, now_us, secret)
    except KeyProblem:  # another process registered the first key meanwhile
        if temporary is not None:
            temporary.unlink(missing_ok=True)
        return None
    except BaseException:
        # The commit may have happened (a connection lost while committing): the hidden file
        # stays, 0600, so the key is never registered without anyone holding it.
        if temporary is not None:
            log.error("registering the first API key failed; its secret stays in %s",
                      temporary)  # fmt: skip
        raise
    if temporary is None:
        log.info("registered ONEVOICE_BOOTSTRAP_KEY as the first API key %r", FIRST_NAME)
        return None
    os.replace(temporary, path)
    _sync_folder(path.parent)
    log.warning("created the first API key (every scope) in %s", path)
    return path


def warn_disabled() -> None:
    log.warning("ONEVOICE_AUTH=disabled: every request may read and write everything, with"
                " no key; never run so where anyone else can reach the port")  # fmt: skip


class KeyFileUnwritable(RuntimeError):
    """The first key cannot be written to the data folder."""


def _write_hidden(path: Path, secret: str, now_us: int, settings: Settings) -> Path:
    """The key file's content in a new hidden file beside ``path``, readable by this user
    only (a random name, created exclusively: nothing planted there can receive it)."""
    url = f"http://{settings.host}:{settings.port}"
    text = (
        f"# OneVoice API key {FIRST_NAME!r}: every scope. Made {iso(now_us)}. Keep it secret.\n"
        f'# curl -H "Authorization: Bearer $(tail -n 1 {path})" {url}/v1/accounts\n'
        f"{secret}\n"
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
        try:
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise KeyFileUnwritable(
            f"cannot write the first API key to {path.parent} ({exc.strerror}): make"
            " ONEVOICE_DATA_DIR writable, or set ONEVOICE_BOOTSTRAP_KEY (`onevoice keys secret`)"
        ) from exc
    return Path(name)


def _sync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def curl_line(path: Path, settings: Settings) -> str:
    """One command that uses the key file (printed at the first start)."""
    return (f'curl -H "Authorization: Bearer $(tail -n 1 {path})"'
            f" http://{settings.host}:{settings.port}/v1/accounts")  # fmt: skip
