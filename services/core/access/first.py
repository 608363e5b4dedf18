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
from pathlib import Path

from services.core.access import Grant, KeyProblem
from services.core.access import store as keys
from services.core.adapters.sql import Database
from services.core.settings import Settings
from services.core.view_rules import iso

log = logging.getLogger(__name__)

KEY_FILE = "admin.key"
FIRST_NAME = "admin"


def ensure_first_key(db: Database, settings: Settings, now_us: int) -> Path | None:
    """Register the first key when there is none; returns the file written (else None)."""
    if settings.auth == "disabled":
        log.warning("ONEVOICE_AUTH=disabled: every request may read and write everything, with"
                    " no key; never run so where anyone else can reach the port")  # fmt: skip
        return None
    given = settings.bootstrap_key.get_secret_value() or None
    grant = Grant.everything(FIRST_NAME, settings.department_list)
    try:
        with db.transaction() as conn:
            if keys.made(conn):
                return None
            secret = keys.create(conn, grant, now_us, given)
    except KeyProblem:  # another process registered it meanwhile
        return None
    if given is not None:
        log.info("registered ONEVOICE_BOOTSTRAP_KEY as the first API key %r", FIRST_NAME)
        return None
    path = write_key_file(settings.data_dir / KEY_FILE, secret, now_us, settings)
    log.warning("created the first API key (every scope) in %s", path)
    return path


def write_key_file(path: Path, secret: str, now_us: int, settings: Settings) -> Path:
    """Write ``secret`` as the last line of ``path``, readable by this user only (replacing a
    file of an earlier install atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path = path.resolve()
    url = f"http://{settings.host}:{settings.port}"
    text = (
        f"# OneVoice API key {FIRST_NAME!r}: every scope. Made {iso(now_us)}. Keep it secret.\n"
        f'# curl -H "Authorization: Bearer $(tail -n 1 {path})" {url}/v1/accounts\n'
        f"{secret}\n"
    )
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(temporary, 0o600)  # whatever the umask
    os.replace(temporary, path)
    return path


def curl_line(path: Path, settings: Settings) -> str:
    """One command that uses the key file (printed at the first start)."""
    return (f'curl -H "Authorization: Bearer $(tail -n 1 {path})"'
            f" http://{settings.host}:{settings.port}/v1/accounts")  # fmt: skip
