"""Real servers for the test suite: a single-node KRaft Kafka broker and a throwaway PostgreSQL.

Started once per test session from ``deploy/local`` (jars from Maven Central, PostgreSQL from
Debian), on free loopback ports, and stopped at the end. With ``CI=true`` a backend that cannot
start is a failure; elsewhere the tests that need it are skipped with what to install.
Set ``ONEVOICE_TEST_KAFKA_BOOTSTRAP`` (and ``ONEVOICE_TEST_KAFKA_SASL_BOOTSTRAP`` for a
SASL_PLAINTEXT/PLAIN listener with the credentials below) / ``ONEVOICE_TEST_PG_URL`` to use servers
you run yourself.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / "deploy" / "local"
# The one user of the local broker's SASL_PLAINTEXT listener (deploy/local/server.properties.tmpl).
SASL_USERNAME = "onevoice"
SASL_PASSWORD = "onevoice-test"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    """Fail in CI, skip elsewhere."""
    if in_ci():
        pytest.fail(f"CI=true and a backend is missing: {reason}")
    pytest.skip(reason)


def _read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def _run(script: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(
        ["bash", str(LOCAL / script), str(workdir)], env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600, check=False,
    )  # fmt: skip


@contextmanager
def kafka_server(workdir: Path) -> Iterator[str]:
    """Yield the plaintext bootstrap address of a broker (ours or ONEVOICE_TEST_KAFKA_BOOTSTRAP)."""
    with kafka_listeners(workdir) as listeners:
        yield listeners["BOOTSTRAP"]


@contextmanager
def kafka_listeners(workdir: Path) -> Iterator[dict[str, str]]:
    """Yield a broker's addresses: ``BOOTSTRAP`` (plaintext), ``SASL_BOOTSTRAP`` ('' if unknown),
    and ``DIR``: the folder holding its data (its log segments), '' for a broker not ours."""
    given = os.environ.get("ONEVOICE_TEST_KAFKA_BOOTSTRAP")
    if given:
        yield {
            "BOOTSTRAP": given,
            "SASL_BOOTSTRAP": os.environ.get("ONEVOICE_TEST_KAFKA_SASL_BOOTSTRAP", ""),
            "DIR": "",
        }
        return
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    if missing:
        unavailable(f"Kafka tests need {' and '.join(missing)}: install Java 17 and Maven")
    started = _run("kafka-up.sh", workdir)
    try:
        if started.returncode != 0:
            unavailable(f"kafka-up.sh failed:\n{started.stdout[-3000:]}")
        env = _read_env(workdir / "kafka.env")
        yield {"BOOTSTRAP": env["BOOTSTRAP"], "SASL_BOOTSTRAP": env.get("SASL_BOOTSTRAP", ""),
               "DIR": str(workdir)}  # fmt: skip
    finally:
        _run("kafka-down.sh", workdir)


def kafka_configs(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``kafka-configs.sh ARGS`` (the same class, from deploy/local's cached jars)."""
    cache = os.environ.get("ONEVOICE_CACHE") or f"{os.environ.get('HOME', '/tmp')}/.cache/onevoice"
    libs = Path(cache) / "kafka-libs"  # where kafka-up.sh keeps them
    if shutil.which("java") is None or not list(libs.glob("*.jar")):
        unavailable(f"kafka-configs.sh needs java and the jars in {libs} (run kafka-up.sh once)")
    command = ["java", "-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp", f"{libs}/*",
               f"-Dlog4j2.configurationFile={LOCAL / 'log4j2.properties'}",
               "-Donevoice.kafka.log.level=WARN", "kafka.admin.ConfigCommand", *args]  # fmt: skip
    return subprocess.run(
        command, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120,
        check=False,
    )  # fmt: skip


def pg_dump(url: str) -> bytes:
    """``pg_dump`` of the database at a SQLAlchemy ``url`` (plain SQL, every table's rows)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_dump")) or \
        [p for p in [shutil.which("pg_dump")] if p]  # fmt: skip
    if not found:
        unavailable("pg_dump is missing: apt-get install -y postgresql-client")
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    done = subprocess.run([found[-1], "--no-owner", plain], capture_output=True, timeout=120,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done.stdout


def _have_postgres() -> bool:
    return bool(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or os.geteuid() == 0


@contextmanager
def postgres_server(workdir: Path) -> Iterator[str]:
    """Yield a SQLAlchemy URL (without database) of a PostgreSQL server."""
    given = os.environ.get("ONEVOICE_TEST_PG_URL")
    if given:
        yield given.rsplit("/", 1)[0]
        return
    if not _have_postgres():
        unavailable("PostgreSQL tests need the server: apt-get install -y postgresql")
    started = _run("pg-up.sh", workdir)
    try:
        if started.returncode != 0:
            unavailable(f"pg-up.sh failed:\n{started.stdout[-3000:]}")
        yield _read_env(workdir / "pg.env")["DATABASE_URL"].rsplit("/", 1)[0]
    finally:
        _run("pg-down.sh", workdir)


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new empty database on the server for one test; dropped afterwards."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    plain = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(f"{plain}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server_url}/{name}"
    finally:
        with psycopg.connect(f"{plain}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def workdir(kind: str) -> Iterator[Path]:
    """A private folder for a server's data, outside pytest's tmp tree.

    pytest prunes old ``pytest-N`` folders when another session starts, which would delete a
    running server's files from under it.
    """
    path = Path(tempfile.mkdtemp(prefix=f"onevoice-{kind}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
