"""PostgreSQL stopped (``pg_ctl stop -m immediate``) for 10 s under a running projector while
events keep arriving: the same projector process resumes by itself once the database is back,
parks nothing (an outage is transient, never the records' fault) and its views equal a pure
fold of the log."""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.faults.conftest import Spawn, kafka_and_postgres
from tests.faults.servers import Cluster
from tests.faults.views import (
    applied,
    assert_checkpoints_at_log_end,
    assert_each_id_once_on_its_timelines,
    assert_same_views,
    at_log_end,
    dead_letters,
    pure_fold,
    read_log,
    wait_until,
)
from tests.faults.workload import Appender

OUTAGE_S = 10


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_postgres_down_for_10_s_the_projector_resumes_by_itself_and_parks_nothing(
    kafka_bootstrap: str, own_postgres: Cluster, tmp_path: Path, spawn: Spawn, closing: ExitStack
) -> None:
    url = own_postgres.url
    settings, log, db = kafka_and_postgres(
        closing, tmp_path / "data", kafka_bootstrap, url, "faults-pg"
    )
    appender = Appender(log, settings.topic, seed=11)
    appender.append(300)
    appender.start(chunk=20, pause_s=0.05)
    try:
        member = spawn(settings, "projector")
        wait_until(lambda: sum(applied(db, settings.topic).values()) > 0, 60,
                   "the projector's first commit", member.tail)  # fmt: skip
        appender.append(600)  # a backlog, so the projector is busy when the database goes
        own_postgres.stop_immediate()
        sent = appender.appended
        time.sleep(OUTAGE_S)  # the outage itself
        assert member.alive(), f"the projector exited while PostgreSQL was down\n{member.tail()}"
        assert appender.appended > sent, "no events arrived during the outage"
        assert own_postgres.up() == url, "PostgreSQL came back on another port"
        appender.append(300)
    finally:
        appender.stop()
    wait_until(lambda: at_log_end(db, log, settings.topic), 120,
               "the projector to reach the log's end after PostgreSQL came back",
               member.tail)  # fmt: skip
    assert member.alive(), "the projector did not survive the outage"
    output = member.log()
    assert "projection batch failed; retrying" in output, (
        f"the projector never noticed the outage, so it tested nothing\n{member.tail()}"
    )
    assert member.terminate() == 0, member.tail()
    assert dead_letters(db) == []
    assert_checkpoints_at_log_end(db, log, settings.topic)
    fold = pure_fold(log, settings.topic, tmp_path)
    closing.callback(fold.dispose)
    assert_same_views(db, fold)
    assert_each_id_once_on_its_timelines(db, read_log(log, settings.topic))
