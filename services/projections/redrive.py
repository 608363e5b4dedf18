"""Re-drive dead letters: apply parked records to their projection, once they can be.

Applying a record late leaves every view as a pure fold of the log would: each projection's
writes are insert-once by event id or newest-by-(occurred_at, partition, offset) wins (see
``Projection``), and a record is applied only when it holds its event id's first copy. A record
that still cannot be applied stays parked with its new error and one more attempt counted.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from services.core import codec
from services.core.adapters.sql import Database, is_systemic, is_transient
from services.core.deadletters import RedriveReport
from services.core.deadletters import store as dead_letters
from services.core.readmodels import checkpoints, copies
from services.projections import derived
from services.projections.base import Projection


class Redriver:
    """Re-drives dead letters of the live generation, one record per transaction."""

    def __init__(self, db: Database, projections: Sequence[Projection]) -> None:
        self.db = db
        self._projections = {p.name: p for p in projections}
        self.generation = checkpoints.LIVE_GENERATION

    def redrive(
        self, ids: Sequence[int] | None = None, filters: dead_letters.Filters | None = None
    ) -> RedriveReport:
        """Re-drive the parked dead letters named by ``ids``, or else every one ``filters``
        match (default: all parked)."""
        if ids is None:
            with self.db.reading() as conn:
                ids = dead_letters.ids_matching(conn, filters or dead_letters.Filters())
        report = RedriveReport()
        for dead_letter_id in dict.fromkeys(ids):
            self._one(dead_letter_id, report)
        return report

    def _one(self, dead_letter_id: int, report: RedriveReport) -> None:
        now_us = time.time_ns() // 1000
        with self.db.transaction() as conn:
            row = dead_letters.get(conn, dead_letter_id, lock=True)
            if row is None or row["state"] != "parked" or row["generation"] != self.generation:
                report.failed[dead_letter_id] = "no parked dead letter with this id"
                return
            projection = self._projections.get(row["projection"])
            if projection is None:
                report.failed[dead_letter_id] = f"unknown projection {row['projection']!r}"
                return
            record = dead_letters.record_of(row)
            try:
                stored = codec.decode(record)
            except codec.RecordRejected as exc:
                dead_letters.mark_failed(conn, dead_letter_id, exc.reason, exc, now_us)  # type: ignore[arg-type]
                report.failed[dead_letter_id] = f"{exc.reason}: {dead_letters.clean(str(exc), 300)}"
                return
            position = (stored.partition, stored.offset)
            if position in copies.first_copies(conn, row["topic"], [(stored.event_id, *position)]):
                try:
                    with conn.begin_nested():
                        live = self.generation == checkpoints.LIVE_GENERATION
                        changes = derived.read_changes(conn, [stored]) if live else None
                        projection.apply(conn, [stored])
                        if changes is not None:
                            derived.mark(conn, changes)
                except Exception as exc:
                    if is_transient(exc) or is_systemic(exc):
                        raise
                    dead_letters.mark_failed(conn, dead_letter_id, "failed", exc, now_us)
                    report.failed[dead_letter_id] = f"failed: {type(exc).__name__}: " + \
                        dead_letters.clean(str(exc), 300)  # fmt: skip
                    return
            # Otherwise an earlier copy of this event id was applied: nothing left to do.
            dead_letters.mark_redriven(conn, dead_letter_id, now_us)
            report.redriven.append(dead_letter_id)
