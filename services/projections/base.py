"""What a projection is: a named fold of stored events into its own tables."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from sqlalchemy import Connection

from services.core.codec import StoredEvent


class Projection(ABC):
    """Applies batches of events inside the runner's transaction.

    Contract: ``apply`` is deterministic and idempotent — applying an event whose id the view
    already holds changes nothing — and writes only through ``conn`` (the runner commits the
    view together with the checkpoint). ``name`` is the checkpoint key.
    """

    name: str

    @abstractmethod
    def apply(self, conn: Connection, events: Sequence[StoredEvent]) -> None:
        """Fold ``events`` (in log order per partition) into the view."""

    @abstractmethod
    def clear(self, conn: Connection) -> None:
        """Empty the view (replay rebuilds it from offset 0)."""

    @abstractmethod
    def count(self, conn: Connection) -> dict[str, int]:
        """Row counts of the view's tables, for reports and verification."""
