"""Two projector processes share the partitions on Kafka + PostgreSQL; one dies mid-stream.

The surviving member takes over the dead one's partitions from the checkpoints in the database:
the view must equal a pure fold of the log (built separately in SQLite), nothing lost, nothing
doubled.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from services.bootstrap import build_log, migrate
from services.core import codec
from services.core.adapters.sql import Database
from services.core.events import parse_event
from services.core.readmodels import checkpoints
from services.core.settings import Settings
from services.projections.runner import ProjectionRunner
from services.projections.timeline import AccountTimeline
from tests import backends
from tests.conftest import make_settings
from tests.integration.test_runner import view
from tests.samples import make_event

ROOT = Path(__file__).resolve().parents[2]


def projector(settings: Settings, output: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ONEVOICE_LOG_BACKEND": "kafka",
        "ONEVOICE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "ONEVOICE_DATABASE_URL": settings.database_url,
        "ONEVOICE_TOPIC": settings.topic,
        "ONEVOICE_PARTITIONS": str(settings.partitions),
        "ONEVOICE_PROJECTOR_GROUP": settings.projector_group,
        "ONEVOICE_PROJECTOR_BATCH": "50",
        "ONEVOICE_PROJECTOR_PORT": "0",  # two projectors on one host: any free port each
        # The killed member's partitions move after 10 s of silence (30 s by default).
        "ONEVOICE_KAFKA_SESSION_TIMEOUT_S": str(settings.kafka_session_timeout_s),
    }
    with output.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "services.projections"], cwd=ROOT, env=env,
            stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip


def applied(db: Database, topic: str) -> int:
    with db.reading() as conn:
        return sum(checkpoints.load(conn, "AccountTimeline", 0, topic).values())


def wait_until(condition: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_two_projectors_one_killed_mid_stream_equal_a_pure_fold(
    kafka_bootstrap: str, pg_url: str, tmp_path: Path
) -> None:
    settings = make_settings(
        tmp_path / "data", log_backend="kafka", kafka_bootstrap=kafka_bootstrap,
        database_url=pg_url, topic=backends.unique("group"), partitions=6,
        projector_group=backends.unique("projectors"), kafka_session_timeout_s=10.0,
    )  # fmt: skip
    log = build_log(settings)
    db = Database(pg_url)
    migrate(db)
    members = [projector(settings, tmp_path / f"projector-{i}.log") for i in range(2)]
    try:
        total = 0
        for chunk in range(6):
            bodies = [
                make_event(account_id=f"acct-{(chunk * 300 + i) % 97}", summary=f"c{chunk} {i}")
                for i in range(300)
            ]
            records = [codec.encode(parse_event(b)) for b in bodies]
            records += records[:10]  # re-delivered copies must not double anything
            log.append(settings.topic, records)
            total += len(records)
            if chunk == 1:
                wait_until(lambda: applied(db, settings.topic) > 0, 60, "first progress")
                members[0].send_signal(signal.SIGKILL)
                members[0].wait(timeout=30)
        wait_until(lambda: applied(db, settings.topic) == total, 120, "all records applied")
        assert members[1].poll() is None, "the surviving projector exited"
    finally:
        for member in members:
            if member.poll() is None:
                member.send_signal(signal.SIGTERM)
                member.wait(timeout=60)
    assert members[1].returncode == 0, (tmp_path / "projector-1.log").read_text()
    survivor = (tmp_path / "projector-1.log").read_text()
    assert "assigned partitions [0, 1, 2, 3, 4, 5]" in survivor, survivor

    folded = Database(f"sqlite:///{tmp_path / 'fold.sqlite3'}")
    migrate(folded)
    fold = ProjectionRunner(log, folded, settings.topic, [AccountTimeline()],
                            group=backends.unique("fold"), batch_size=1000)  # fmt: skip
    assert fold.catch_up(60) == total
    fold.close()
    assert view(db) == view(folded)
    assert len(view(db)) == 1800
    for database in (db, folded):
        database.dispose()
    log.close()
