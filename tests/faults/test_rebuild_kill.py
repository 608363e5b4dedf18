"""`onevoice rebuild` killed with SIGKILL half-way resumes from its own checkpoints when started
again, and switches to views equal to a pure fold of the log (real Kafka + PostgreSQL)."""

from __future__ import annotations

import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import func, select

from services.bootstrap import build
from services.core.readmodels import checkpoints
from services.core.readmodels.schema import CHECKPOINTS
from services.core.rebuilds import store
from tests.faults.conftest import kafka_and_postgres
from tests.faults.processes import ROOT, projector_env
from tests.faults.views import assert_same_views, pure_fold, wait_until
from tests.faults.workload import Workload

EVENTS = 12_000


@pytest.mark.timeout(300)  # 28-46 s in make test
def test_a_killed_rebuild_resumes_and_switches_to_a_pure_fold(
    closing: ExitStack, tmp_path: Path, kafka_bootstrap: str, pg_url: str
) -> None:
    settings, log, db = kafka_and_postgres(closing, tmp_path / "data", kafka_bootstrap, pg_url,
                                           "rebuild-kill")  # fmt: skip
    services = build(settings)
    workload = Workload(seed=9)
    for _ in range(EVENTS // 500):
        assert {r.status for r in services.ingest.submit(workload.bodies(500))} == {"accepted"}
    services.runner.catch_up(300)
    services.close()
    env = projector_env(settings, batch=100)
    command = [sys.executable, "-m", "services", "rebuild", "--all"]
    first_out = tmp_path / "first.log"
    with first_out.open("wb") as sink:
        first = subprocess.Popen(command, cwd=ROOT, env=env, stdout=sink,
                                 stderr=subprocess.STDOUT)  # fmt: skip
    closing.callback(lambda: first.poll() is None and first.kill())

    def shadow_applied() -> int:
        total = func.coalesce(func.sum(CHECKPOINTS.c.next_offset), 0)
        with db.reading() as conn:
            query = select(total).where(CHECKPOINTS.c.generation == 2)
            return int(conn.execute(query).scalar_one())

    wait_until(lambda: shadow_applied() >= EVENTS // 4, 180, "the rebuild to get under way",
               first_out.read_text)  # fmt: skip
    first.kill()  # SIGKILL: no cleanup, the lease and the shadow stay behind
    first.wait(timeout=30)
    with db.reading() as conn:
        (rebuild,) = store.open_rebuilds(conn)
    assert rebuild.state == "running" and rebuild.worker is not None
    resumed_from = shadow_applied()
    with db.reading() as conn:
        slowest = checkpoints.load_slowest(conn, list(rebuild.projections), rebuild.generation,
                                           settings.topic)  # fmt: skip
    # Four read models' checkpoints, summed: under way, not done. The second run loads them.
    assert EVENTS // 4 <= resumed_from < EVENTS * 4
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=600, check=False)  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"resuming rebuild {rebuild.id}" in again.stderr
    with db.reading() as conn:
        done = store.get(conn, rebuild.id)
    assert done is not None and done.state == "switched", done
    assert done.report is not None and done.report["result"] == "equal"
    assert done.progress["events_applied"] == EVENTS
    # The second run started where the first was killed, not from offset 0.
    assert done.progress["resumed_from"] == sum(slowest.values()) > 0
    assert_same_views(db, pure_fold(log, settings.topic, tmp_path))
