"""Fixtures of the fault tests: servers of a test's own, projector processes that never outlive
their test, and an exit stack for everything else a test opens."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from services.bootstrap import build_log, migrate
from services.core.adapters.sql import Database
from services.core.ports import EventLog
from services.core.settings import Settings
from tests import backends
from tests.conftest import make_settings
from tests.faults.processes import Projector
from tests.faults.servers import Broker, Cluster, dedicated_broker, dedicated_postgres

Spawn = Callable[[Settings, str], Projector]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """``spawn(settings, name)`` starts a projector process (batch 20, output in
    ``tmp_path/<name>.log``); every one still running at teardown is killed, so a failing test
    leaves no process behind to load the machine."""
    started: list[Projector] = []

    def start(settings: Settings, name: str) -> Projector:
        member = Projector(settings, tmp_path / f"{name}.log", batch=20)
        started.append(member)
        return member

    yield start
    for member in started:
        if member.alive():
            member.kill()


@pytest.fixture
def closing() -> Iterator[ExitStack]:
    """Register what the test must close (``closing.callback(db.dispose)``), failing or not."""
    with ExitStack() as stack:
        yield stack


@pytest.fixture
def own_broker() -> Iterator[Broker]:
    """A Kafka broker for this test alone (the session's broker serves the other tests)."""
    with dedicated_broker() as broker:
        yield broker


@pytest.fixture
def own_postgres() -> Iterator[Cluster]:
    """A PostgreSQL cluster for this test alone."""
    with dedicated_postgres() as cluster:
        yield cluster


def kafka_and_postgres(
    closing: ExitStack, data_dir: Path, bootstrap: str, database_url: str, name: str
) -> tuple[Settings, EventLog, Database]:
    """Settings for a fresh topic (6 partitions) and projector group on these servers, the log
    and the migrated database, both closed with ``closing``."""
    settings = make_settings(
        data_dir, log_backend="kafka", kafka_bootstrap=bootstrap, database_url=database_url,
        topic=backends.unique(name), partitions=6, projector_group=backends.unique("projector"),
    )  # fmt: skip
    log = build_log(settings)
    closing.callback(log.close)
    db = Database(database_url)
    closing.callback(db.dispose)
    migrate(db)
    return settings, log, db
