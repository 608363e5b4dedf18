"""A projector process killed with SIGKILL in the middle of its batches, five times, while
events keep arriving: the views equal a pure fold of the log, and nothing was parked.

Each kill lands while the projector's database session has a transaction open (seen in
``pg_stat_activity`` just before the signal) and records are still pending, so the batch in
flight is rolled back with its checkpoint and must be applied again, once, by the next process.
"""

from __future__ import annotations

import random
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import text

from services.core.adapters.sql import Database
from tests import backends
from tests.faults.conftest import Spawn, kafka_and_postgres
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

KILLS = 5


def in_transaction(db: Database) -> bool:
    """True when another session on this database (the projector's) has a transaction open."""
    with db.reading() as conn:
        return bool(conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
        )).scalar_one())  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_projector_killed_mid_batch_five_times_equals_a_pure_fold(
    kafka_bootstrap: str, pg_url: str, tmp_path: Path, spawn: Spawn, closing: ExitStack
) -> None:
    settings, log, db = kafka_and_postgres(
        closing, tmp_path / "data", kafka_bootstrap, pg_url, "faults-kill"
    )
    rng = random.Random(7)
    appender = Appender(log, settings.topic, seed=7)
    appender.append(200)
    appender.start(chunk=20, pause_s=0.05)
    kills: list[tuple[int, int]] = []
    try:
        for round_ in range(KILLS):
            appender.append(600)  # a backlog, so the kill lands while records are pending
            before = sum(applied(db, settings.topic).values())
            # A group of its own per process: a SIGKILLed member keeps its partitions until
            # its 30 s session times out, and what is under test here is the database side
            # (view + checkpoint in one transaction), not Kafka's failure detection.
            group = backends.unique("killed")
            member = spawn(settings.model_copy(update={"projector_group": group}), f"p{round_}")
            wait_until(lambda before=before: sum(applied(db, settings.topic).values()) > before,
                       60, f"projector {round_} to commit a batch", member.tail)  # fmt: skip
            time.sleep(rng.uniform(0, 0.4))  # a random moment of the stream
            wait_until(lambda: in_transaction(db), 10,
                       f"projector {round_} to open a transaction", member.tail)  # fmt: skip
            member.kill()
            done = sum(applied(db, settings.topic).values())
            end = sum(log.end_offsets(settings.topic).values())
            kills.append((done, end))
            assert done < end, f"kill {round_} came after the projector caught up ({done}/{end})"
        appender.stop()
        final = spawn(settings, "final")
        # A liveness bound, not a speed figure: the whole test took 72-79 s alone on
        # 2026-11-30 and timed out at 120 s here in a full run on a machine at half speed.
        wait_until(lambda: at_log_end(db, log, settings.topic), 240,
                   "the last projector to reach the log's end", final.tail)  # fmt: skip
        assert final.terminate() == 0, final.log()[-3000:]
    finally:
        appender.stop()
    assert len(kills) == KILLS
    assert dead_letters(db) == []
    assert_checkpoints_at_log_end(db, log, settings.topic)
    fold = pure_fold(log, settings.topic, tmp_path)
    closing.callback(fold.dispose)
    assert_same_views(db, fold)
    records = read_log(log, settings.topic)
    assert len(records) == appender.appended
    assert appender.copies > 0, "no retried copies were appended: first-copy-wins went untested"
    assert_each_id_once_on_its_timelines(db, records)
