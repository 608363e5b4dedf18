"""Alembic environment: the URL comes from the same Settings the services read."""

from __future__ import annotations

import re
from typing import Any

from alembic import context
from sqlalchemy import create_engine

from services.core.deadletters import store  # noqa: F401 - tables
from services.core.readmodels import (  # noqa: F401 - tables
    accounts,
    copies,
    generations,
    leadership,
    onevoice,
    timeline,
)
from services.core.readmodels.reports import facts  # noqa: F401 - tables
from services.core.readmodels.schema import METADATA
from services.core.rebuilds import store as rebuilds  # noqa: F401 - tables
from services.core.settings import Settings

_GENERATION = re.compile(r".*__g\d+_.*")


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Shadow and kept generations of a read model (``<prefix>__g<n>_...``) are made by
    rebuilds, not by migrations: autogenerate leaves them alone."""
    return not (name and _GENERATION.fullmatch(name))


config = context.config
url = config.attributes.get("url") or Settings().resolved_database_url()


def run_offline() -> None:
    context.configure(url=url, target_metadata=METADATA, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection, target_metadata=METADATA, include_object=include_object
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=METADATA, include_object=include_object)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
