"""Fixtures of the fault tests: servers of a test's own, projector processes that never outlive
their test, and an exit stack for everything else a test opens."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from services.core.settings import Settings
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
