"""`onevoice replay --workers N`: several processes share the partitions (one consumer group)
and apply batches at the same time, on Kafka + PostgreSQL. What they build must equal what one
process builds from the same log, table by table, row by row — every read model — and a worker
killed half-way must change nothing.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from services.bootstrap import build_log, migrate, projections
from services.core import codec
from services.core.adapters.sql import Database
from services.core.settings import Settings
from services.projections.base import table_digests
from tests import backends
from tests.conftest import make_settings
from tests.integration.test_view_fold import NOW, history

ROOT = Path(__file__).resolve().parents[2]


def _load_topic(settings: Settings, seed: int, size: int) -> int:
    """The fold test's random stories (every event type, related accounts, joint visits, the
    roster, second copies of events), appended as ingest appends them: keyed by account."""
    events = [s.event for log in history(seed, size) for s in log]
    records = [codec.encode(e.model_copy(update={"recorded_at": NOW})) for e in events]
    event_log = build_log(settings)
    try:
        for start in range(0, len(records), 200):
            event_log.append(settings.topic, records[start : start + 200])
    finally:
        event_log.close()
    return len(records)


def _migrate(url: str) -> None:
    db = Database(url)
    try:
        migrate(db)
    finally:
        db.dispose()


def _replay(settings: Settings, workers: int, tmp: Path) -> subprocess.CompletedProcess[str]:
    """``onevoice replay --workers N``; with one worker in batches of 500 (a pure fold does not
    depend on where batches end, and the reference is built in a few seconds)."""
    if workers == 1:
        settings = settings.model_copy(update={"projector_batch": 500})
    _migrate(settings.database_url)
    env = {**settings.environment(), "ONEVOICE_LOG_LEVEL": "info"}
    return subprocess.run(
        [sys.executable, "-m", "services", "replay", "--timeout", "300", "--workers",
         str(workers)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=400,
        check=False,
    )  # fmt: skip


def _digests(url: str) -> dict[str, tuple[int, str]]:
    db = Database(url)
    try:
        with db.reading() as conn:
            return table_digests(conn, projections())
    finally:
        db.dispose()


def _settings(tmp_path: Path, kafka_bootstrap: str, url: str) -> Settings:
    """A topic of its own, 6 partitions, 5-event batches (many transactions of the members
    overlap); a killed member's partitions move after 10 s of silence (the default is 30)."""
    return make_settings(
        tmp_path / "data", log_backend="kafka", kafka_bootstrap=kafka_bootstrap,
        topic=backends.unique("workers"), partitions=6, projector_batch=5, database_url=url,
        projector_group=backends.unique("group"), kafka_session_timeout_s=10.0,
    )  # fmt: skip


def _consumed_by_children(stderr: str) -> list[int]:
    return [int(n) for n in re.findall(r"catch-up worker \d+ done: consumed (\d+) records", stderr)]


@pytest.mark.timeout(300)  # 28-40 s in make test, beside another worker
def test_two_workers_build_what_one_builds(
    kafka_bootstrap: str, pg_server: str, tmp_path: Path
) -> None:
    with backends.fresh_database(pg_server) as one_url, \
            backends.fresh_database(pg_server) as two_url:  # fmt: skip
        base = _settings(tmp_path, kafka_bootstrap, one_url)
        # Enough that the child (it starts and joins the group ~2 s after the parent began)
        # still finds partitions with work left: ~10 s of 5-event batches.
        total = _load_topic(base, seed=4, size=4000)
        one = _replay(base, 1, tmp_path)
        assert one.returncode == 0, one.stderr[-3000:]
        two_settings = base.model_copy(update={"database_url": two_url})
        two = _replay(two_settings, 2, tmp_path)
        assert two.returncode == 0, two.stderr[-3000:]
        # Both processes applied batches (the child said how many records it consumed).
        children = _consumed_by_children(two.stderr)
        assert len(children) == 1 and children[0] > 0, two.stderr[-3000:]
        assert f"{total:,}/{total:,} events" in two.stderr
        expected, got = _digests(one_url), _digests(two_url)
        assert expected["OneVoiceView.signals"][0] > 0  # the stories exercise the views
        assert expected["OneVoiceView.follow_ups"][0] > 0
        assert expected["ReportFacts.touches"][0] > 0
        different = {t: (expected[t], got.get(t)) for t in expected if got.get(t) != expected[t]}
        assert not different, different
        # The same summary line: events, parked, every table's row count.
        assert one.stdout.split(" in ")[0] == two.stdout.split(" in ")[0]
        assert one.stdout.split("parked; ")[1] == two.stdout.split("parked; ")[1]


@pytest.mark.timeout(300)  # 28-42 s in make test, beside another worker
def test_a_worker_killed_half_way_changes_nothing(
    kafka_bootstrap: str, pg_server: str, tmp_path: Path
) -> None:
    """SIGKILL to the child worker right after it applied its first batch: the group gives its
    partitions to the other member once it notices (the session timeout), which resumes from
    the stored checkpoints; the replay still finishes, says a worker failed, and builds what
    one process builds."""
    with backends.fresh_database(pg_server) as one_url, \
            backends.fresh_database(pg_server) as two_url:  # fmt: skip
        base = _settings(tmp_path, kafka_bootstrap, one_url)
        _load_topic(base, seed=5, size=4000)
        one = _replay(base, 1, tmp_path)
        assert one.returncode == 0, one.stderr[-3000:]
        settings = base.model_copy(update={"database_url": two_url})
        _migrate(two_url)
        env = {**settings.environment(), "ONEVOICE_LOG_LEVEL": "info"}
        lines: list[str] = []
        first = threading.Event()
        child: list[int] = []
        with subprocess.Popen(
            [sys.executable, "-m", "services", "replay", "--timeout", "300", "--workers", "2"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ) as replaying:  # fmt: skip

            def read() -> None:
                assert replaying.stderr is not None
                for line in replaying.stderr:
                    lines.append(line)
                    found = re.search(r"catch-up worker (\d+): first batch applied", line)
                    if found:
                        child.append(int(found.group(1)))
                        first.set()

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            try:
                assert first.wait(120), "".join(lines)[-3000:]
                os.kill(child[0], signal.SIGKILL)
                assert replaying.stdout is not None
                out = replaying.stdout.read()
                replaying.wait(300)
                reader.join(30)
            finally:
                if replaying.poll() is None:
                    replaying.kill()
        err = "".join(lines)
        assert replaying.returncode == 0, err[-3000:]
        assert "1 of 1 worker processes failed" in err, err[-3000:]
        assert not _consumed_by_children(err)  # it never finished
        assert _digests(one_url) == _digests(two_url)
        assert one.stdout.split(" in ")[0] == out.split(" in ")[0]
