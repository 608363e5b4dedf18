"""Alembic environment: the URL comes from the same Settings the services read."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from services.core.deadletters import store  # noqa: F401 - tables
from services.core.readmodels import (  # noqa: F401 - tables
    accounts,
    copies,
    leadership,
    onevoice,
    timeline,
)
from services.core.readmodels.schema import METADATA
from services.core.settings import Settings

config = context.config
url = config.attributes.get("url") or Settings().resolved_database_url()


def run_offline() -> None:
    context.configure(url=url, target_metadata=METADATA, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=METADATA)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=METADATA)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
