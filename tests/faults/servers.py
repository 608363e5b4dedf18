"""A broker or a PostgreSQL cluster of one test's own, started with the ``deploy/local`` scripts
in a private workdir, so the test can kill it and start it again on the same data and port
without disturbing the session's servers that other tests use."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests import backends


def _script(name: str, workdir: Path, **env: str) -> str:
    """Run a deploy/local script on ``workdir``; its output; fail the test when it fails."""
    done = subprocess.run(
        ["bash", str(backends.LOCAL / name), str(workdir)],
        env={**os.environ, "PYTHON": sys.executable, **env}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{name} {workdir}: exit {done.returncode}\n{done.stdout[-3000:]}"
    return done.stdout


def _env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


class Broker:
    """A single-node KRaft broker started by ``kafka-up.sh`` in ``workdir``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.bootstrap = ""

    def up(self) -> str:
        """Start (or restart on the same data); the bootstrap address."""
        _script("kafka-up.sh", self.workdir)
        self.bootstrap = _env(self.workdir / "kafka.env")["BOOTSTRAP"]
        return self.bootstrap

    def kill(self) -> int:
        """SIGKILL the broker's JVM (no controlled shutdown); its pid."""
        pid = int((self.workdir / "kafka.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        return pid

    def down(self) -> None:
        _script("kafka-down.sh", self.workdir)


@contextmanager
def dedicated_broker() -> Iterator[Broker]:
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    if missing:
        backends.unavailable(f"a broker of its own needs {' and '.join(missing)}")
    with backends.workdir("kafka-fault") as workdir:
        broker = Broker(workdir)
        try:
            broker.up()
            yield broker
        finally:
            broker.down()


class Cluster:
    """A PostgreSQL cluster started by ``pg-up.sh`` in ``workdir``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.url = ""

    def up(self) -> str:
        """Start (or restart on the same data); the URL of its ``onevoice`` database."""
        _script("pg-up.sh", self.workdir)
        self.url = _env(self.workdir / "pg.env")["DATABASE_URL"]
        return self.url

    def stop_immediate(self) -> None:
        """``pg_ctl stop -m immediate``: every backend dies at once, no checkpoint; the next
        start runs crash recovery. As the data directory's owner (pg-up.sh runs the server as
        ``postgres`` when started by root)."""
        data = self.workdir / "data"
        version = (data / "PG_VERSION").read_text().strip()
        pg_ctl = Path(f"/usr/lib/postgresql/{version}/bin/pg_ctl")
        command = [str(pg_ctl), "-D", str(data), "-m", "immediate", "-w", "stop"]
        if os.geteuid() == 0:
            command = ["runuser", "-u", data.owner(), "--", *command]
        done = subprocess.run(command, cwd=self.workdir, capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip
        assert done.returncode == 0, f"pg_ctl stop -m immediate failed: {done.stdout}{done.stderr}"

    def down(self) -> None:
        _script("pg-down.sh", self.workdir)


@contextmanager
def dedicated_postgres() -> Iterator[Cluster]:
    if not glob.glob("/usr/lib/postgresql/*/bin/pg_ctl") and os.geteuid() != 0:
        backends.unavailable("a PostgreSQL of its own needs the server: apt-get install postgresql")
    with backends.workdir("pg-fault") as workdir:
        cluster = Cluster(workdir)
        try:
            cluster.up()
            yield cluster
        finally:
            cluster.down()
