"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.bootstrap import migrate
from services.core.adapters.sql import Database
from services.core.settings import Settings


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    """The backend's read-model database, migrated and empty."""
    database = Database(settings.resolved_database_url())
    migrate(database)
    yield database
    database.dispose()
