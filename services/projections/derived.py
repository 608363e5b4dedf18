"""What the live views' derived state must recompute when a batch changes the facts: the health
cache (``readmodels.health_cache``), the account states at past period ends
(``readmodels.state_history``), their sums per group (``readmodels.state_figures``) and the KPI
report's kept period figures (``readmodels.kpi_figures``). One
place for the projector, the re-driver, switches and replays, so none marks one and forgets the
other."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from services.core.codec import StoredEvent
from services.core.readmodels import health_cache, kpi_figures, state_figures, state_history
from services.projections.onevoice import replaced_since


@dataclass(frozen=True)
class Changes:
    """The accounts a batch changes, per account the earliest moment it changes from, whether
    the rows it replaces were looked up, and whether it registers accounts (their segments,
    owners and registration times group every period's figures)."""

    since: dict[str, int]
    looked_up: bool
    regrouped: bool = False


def read_changes(conn: Connection, events: Sequence[StoredEvent]) -> Changes:
    """Read before the events are applied, in their transaction (which from here on holds the
    lock no figures are computed under: ``state_figures.hold``): the lifecycle rows they will
    replace are looked up only while some past state is kept."""
    state_figures.hold(conn)
    since = state_history.changed_since(events)
    regrouped = any(s.type == "account.registered" for s in events)
    if since and state_history.latest_end(conn) is not None:
        return Changes(state_history.earliest(since, replaced_since(conn, events)), True,
                       regrouped)  # fmt: skip
    return Changes(since, False, regrouped)


def mark(conn: Connection, changes: Changes) -> None:
    """After applying, in the same transaction: the health rows first (the order
    ``state_history.store`` relies on), then the past states. When no state was kept as the
    batch began, the rows it replaced were not looked up; a refresher may have kept some since
    (PostgreSQL: it commits while the batch runs), from facts before the batch: every state of
    the batch's accounts goes then."""
    health_cache.touch(conn, changes.since)
    since = changes.since
    if changes.regrouped or (since and not changes.looked_up):
        state_figures.forget(conn, state_figures.EVER)
        kpi_figures.forget(conn, kpi_figures.EVER)
    elif since:
        state_figures.forget(conn, min(since.values()))
        kpi_figures.forget(conn, min(since.values()))
    if not since:
        return
    last = state_history.latest_end(conn)
    if not changes.looked_up and last is not None:
        since = dict.fromkeys(since, state_history.EVER)
    state_history.forget(conn, since, last)


def mark_all(conn: Connection) -> None:
    """The facts changed wholesale (a switch, rollback or replay)."""
    state_history.changed_wholesale(conn)
