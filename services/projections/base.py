"""What a projection is: a named fold of stored events into its own tables."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table, delete, func, select, text

from services.core.codec import StoredEvent


class Projection(ABC):
    """Applies batches of events inside the runner's transaction.

    Contract: ``apply`` is deterministic and idempotent — applying an event whose id the view
    already holds changes nothing — and order-independent: every write is insert-once by event
    id or "newest by (occurred_at, partition, offset) wins", so applying an event late (a
    re-driven dead letter) gives the same rows as applying it in log order. It writes only
    through ``conn`` (the runner commits the view together with the checkpoint). ``name`` is
    the checkpoint key; ``tables`` are every table the view owns, by a short name.
    """

    name: str

    @property
    @abstractmethod
    def tables(self) -> Mapping[str, Table]:
        """Every table of the view, parents before children (``clear`` deletes in reverse)."""

    @abstractmethod
    def in_generation(self, generation: int) -> Projection:
        """The same read model writing to the shadow tables of ``generation`` (a rebuild
        builds it beside the live tables; ``readmodels.generations`` switches them)."""

    def create_tables(self, conn: Connection) -> None:
        """Create the view's tables where missing (a rebuild's shadow; migrations make the
        live ones)."""
        for table in self.tables.values():
            table.create(conn, checkfirst=True)

    @abstractmethod
    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        """Fold ``events`` (in log order per partition) into the view."""

    def clear(self, conn: Connection) -> None:
        """Empty the view (replay rebuilds it from offset 0). On PostgreSQL one ``TRUNCATE``
        (transactional there): a ``DELETE`` of every row leaves the tables and their indexes
        full of dead rows that the refill then writes beside until a vacuum (the 200,000-event
        bench holds ~1.5 M view rows)."""
        tables = list(self.tables.values())
        if conn.dialect.name == "postgresql":
            names = ", ".join(conn.dialect.identifier_preparer.format_table(t) for t in tables)
            conn.execute(text(f"TRUNCATE {names}"))
            return
        for table in reversed(tables):
            conn.execute(delete(table))

    def count(self, conn: Connection) -> dict[str, int]:
        """Row counts of the view's tables, for reports and verification."""
        return {
            name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for name, table in self.tables.items()
        }

    def digest(self, conn: Connection) -> dict[str, str]:
        """Per table, a SHA-256 of its rows that does not depend on row order: two views with
        equal digests hold the same rows."""
        return {name: table_digest(conn, table) for name, table in self.tables.items()}


def customer_events(events: Sequence[StoredEvent]) -> list[StoredEvent]:
    """The events about a customer account: a customer read model folds only these
    (organisation events, ``events.ORGANISATION_TYPES``, have no account; records,
    ``events.RECORD_TYPES``, are not touches)."""
    return [e for e in events if e.event.about_customer]


def table_digest(conn: Connection, table: Table) -> str:
    return digest_of(fingerprint(conn, table))


def fingerprint(
    conn: Connection, table: Table, tick: Callable[[], None] | None = None
) -> dict[tuple[Any, ...], str]:
    """``primary key -> SHA-256 of the row's content``: what verification compares. ``tick``
    is called every 10,000 rows (a long comparison renews its leases there)."""
    keys = [c.name for c in table.primary_key.columns]
    out: dict[tuple[Any, ...], str] = {}
    for n, row in enumerate(conn.execute(select(table)).mappings(), 1):
        out[tuple(row[k] for k in keys)] = hashlib.sha256(_canonical(row).encode()).hexdigest()
        if tick is not None and n % 10_000 == 0:
            tick()
    return out


def digest_of(rows: Mapping[tuple[Any, ...], str]) -> str:
    """An order-independent digest of a fingerprint: equal digests, equal rows."""
    return hashlib.sha256("\n".join(sorted(rows.values())).encode()).hexdigest()


def table_digests(
    conn: Connection, projections: Iterable[Projection]
) -> dict[str, tuple[int, str]]:
    """``"<read model>.<table>" -> (rows, digest)`` from each read model's ``count`` and
    ``digest``: two databases built from one log compare equal exactly when these do."""
    out: dict[str, tuple[int, str]] = {}
    for projection in projections:
        counts, digests = projection.count(conn), projection.digest(conn)
        out.update({f"{projection.name}.{t}": (counts[t], d) for t, d in digests.items()})
    return out


def _canonical(row: Mapping[Any, Any]) -> str:
    def plain(value: Any) -> Any:
        if isinstance(value, bytes | memoryview):
            return bytes(value).hex()
        if isinstance(value, bool):
            return int(value)  # SQLite hands booleans back as 0/1
        return value

    return json.dumps({k: plain(v) for k, v in row.items()}, sort_keys=True, ensure_ascii=False)
