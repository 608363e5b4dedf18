"""What the live views' derived state must recompute when a batch changes the facts: the health
cache (``readmodels.health_cache``) and the account states at past period ends
(``readmodels.state_history``). One place for the projector, the re-driver, switches and
replays, so none marks one and forgets the other."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from services.core.codec import StoredEvent
from services.core.readmodels import health_cache, state_history
from services.projections.onevoice import replaced_since


@dataclass(frozen=True)
class Changes:
    """The accounts a batch changes, and per account the earliest moment it changes from."""

    since: dict[str, int]


def read_changes(conn: Connection, events: Sequence[StoredEvent]) -> Changes:
    """Read before the events are applied, in their transaction: the lifecycle rows they will
    replace are looked up only while some past state is kept."""
    since = state_history.changed_since(events)
    if since and state_history.latest_end(conn) is not None:
        since = state_history.earliest(since, replaced_since(conn, events))
    return Changes(since)


def mark(conn: Connection, changes: Changes) -> None:
    """After applying, in the same transaction: the health rows first (the order
    ``state_history.store`` relies on), then the past states."""
    health_cache.touch(conn, changes.since)
    state_history.forget(conn, changes.since)


def mark_all(conn: Connection) -> None:
    """The facts changed wholesale (a switch, rollback or replay)."""
    health_cache.touch_all(conn)
    state_history.forget_all(conn)
