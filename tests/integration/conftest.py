"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.bootstrap import build_log, migrate
from services.core.adapters.sql import Database
from services.core.ports import EventLog
from services.core.settings import Settings


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    """The backend's read-model database, migrated and empty."""
    database = Database(settings.resolved_database_url())
    migrate(database)
    yield database
    database.dispose()


@pytest.fixture
def log(settings: Settings) -> Iterator[EventLog]:
    """The backend's event log with the test's topic."""
    event_log = build_log(settings)
    yield event_log
    event_log.close()


@pytest.fixture
def topic(settings: Settings) -> str:
    return settings.topic


@pytest.fixture(autouse=True)
def _close_runners() -> Iterator[None]:
    """Close the runners a test made with ``test_runner.runner`` (their Kafka consumers would
    otherwise stay in their groups, heartbeating, until the session ends)."""
    from tests.integration.test_runner import OPEN_RUNNERS

    yield
    while OPEN_RUNNERS:
        OPEN_RUNNERS.pop().close()
