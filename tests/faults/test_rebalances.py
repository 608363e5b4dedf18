"""A second projector process joins the first one's group and leaves again, over and over
(SIGTERM, and once SIGKILL), while events keep arriving: every rebalance hands partitions over
through the database's checkpoints, so nothing is applied twice and nothing is skipped.

The test proves the second process took part: each time, it logged an assignment of some
partitions and those partitions' checkpoints moved past where it resumed them while it still
held them."""

from __future__ import annotations

import random
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from services.core.adapters.sql import Database
from tests.faults.conftest import Spawn, kafka_and_postgres
from tests.faults.processes import Projector
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

# How each visit of the second process ends. After the SIGKILL the group waits for the dead
# member's session (SESSION_S here, 30 s by default) to expire before the next rebalance ends.
EXITS = ["SIGTERM", "SIGKILL"]  # each visit costs a process start and two rebalances
SESSION_S = 10.0


def applied_while_owned(member: Projector, db: Database, topic: str) -> bool:
    """True when ``member`` holds partitions (its last rebalance event is an assignment) and
    one of them has been applied past the offset it resumed that partition at."""
    if not member.holds_partitions():
        return False
    partitions, resume = member.assignments()[-1]
    done = applied(db, topic)
    return any(done.get(p, 0) > resume[p] for p in partitions)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_second_projector_joining_and_leaving_repeatedly_neither_loses_nor_doubles(
    kafka_bootstrap: str, pg_url: str, tmp_path: Path, spawn: Spawn, closing: ExitStack
) -> None:
    settings, log, db = kafka_and_postgres(
        closing, tmp_path / "data", kafka_bootstrap, pg_url, "faults-group"
    )
    settings = settings.model_copy(update={"kafka_session_timeout_s": SESSION_S})
    rng = random.Random(5)
    appender = Appender(log, settings.topic, seed=5)
    appender.append(300)
    appender.start(chunk=20, pause_s=0.05)
    owned: list[list[int]] = []
    try:
        first = spawn(settings, "first")
        wait_until(lambda: sum(applied(db, settings.topic).values()) > 0, 60,
                   "the first projector's first commit", first.tail)  # fmt: skip
        for visit, how in enumerate(EXITS):
            appender.append(400)  # a backlog, so both members have work when it rebalances
            second = spawn(settings, f"second-{visit}")
            wait_until(lambda second=second: applied_while_owned(second, db, settings.topic),
                       75, f"visit {visit}: the second projector to apply a batch of its own",
                       second.tail)  # fmt: skip
            owned.append(second.assignments()[-1][0])
            time.sleep(rng.uniform(0, 0.5))  # leave at a random moment of the stream
            if how == "SIGKILL":
                second.kill()
            else:
                assert second.terminate() == 0, second.tail()
        appender.stop()
        wait_until(lambda: at_log_end(db, log, settings.topic), 120,
                   "the first projector to reach the log's end", first.tail)  # fmt: skip
        assert first.alive(), first.tail()
        assert first.terminate() == 0, first.tail()
    finally:
        appender.stop()
    assert len(owned) == len(EXITS) and all(owned), owned
    assert dead_letters(db) == []
    assert_checkpoints_at_log_end(db, log, settings.topic)
    records = read_log(log, settings.topic)
    assert len(records) == appender.appended
    assert_each_id_once_on_its_timelines(db, records)
    fold = pure_fold(log, settings.topic, tmp_path)
    closing.callback(fold.dispose)
    assert_same_views(db, fold)
