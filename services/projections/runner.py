"""The projection runner: log -> projections, one transaction per batch.

Guarantees:
- Each batch's view changes and the projections' checkpoints commit in ONE transaction.
- A record below a projection's stored checkpoint is skipped (a replayed or re-delivered batch
  changes nothing); projections are also idempotent by event id.
- On (re)assignment the consumer resumes from the checkpoints in the database, not the log's.
- A record that cannot be decoded is logged with its position and skipped (one place:
  ``_decode``); it still advances the checkpoint so the projector does not stall.
- If a batch fails to commit, the consumer is dropped and rebuilt from the stored checkpoints.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from services.core import codec
from services.core.adapters.sql import Database
from services.core.ports import EventLog, LogConsumer, LogRecord
from services.core.readmodels import checkpoints
from services.projections.base import Projection

log = logging.getLogger(__name__)


class ProjectionRunner:
    """Feeds one topic to a set of projections; run it in one thread."""

    def __init__(
        self,
        event_log: EventLog,
        db: Database,
        topic: str,
        projections: Sequence[Projection],
        *,
        group: str = "onevoice-projector",
        batch_size: int = 1000,
        idle_s: float = 0.2,
        generation: int = checkpoints.LIVE_GENERATION,
    ) -> None:
        self._log = event_log
        self._db = db
        self.topic = topic
        self.projections = tuple(projections)
        self._group = group
        self._batch_size = batch_size
        self._idle_s = idle_s
        self.generation = generation
        self._consumer: LogConsumer | None = None
        self._applied: dict[int, int] = {}
        self._progress = threading.Condition()
        self.rejected = 0

    # -- assignment ------------------------------------------------------------------------

    def _resume_points(self, partitions: Sequence[int]) -> dict[int, int]:
        with self._db.transaction() as conn:
            stored = []
            for projection in self.projections:
                checkpoints.ensure_rows(
                    conn, projection.name, self.generation, self.topic, partitions
                )
                stored.append(checkpoints.load(conn, projection.name, self.generation, self.topic))
        start = {part: min(s.get(part, 0) for s in stored) for part in partitions}
        with self._progress:
            self._applied.update(start)
        return start

    def _consumer_or_new(self) -> LogConsumer:
        if self._consumer is None:
            self._consumer = self._log.consumer(self.topic, self._group, self._resume_points)
        return self._consumer

    # -- batches ---------------------------------------------------------------------------

    def _decode(self, records: Sequence[LogRecord]) -> list[codec.StoredEvent]:
        events = []
        for record in records:
            try:
                events.append(codec.decode(record))
            except ValueError as exc:
                self.rejected += 1
                log.error(
                    "skipping record %s/%d@%d: %s", record.topic, record.partition,
                    record.offset, exc,
                )  # fmt: skip
        return events

    def _commit(self, records: Sequence[LogRecord]) -> dict[int, int]:
        events = self._decode(records)
        next_offsets: dict[int, int] = {}
        for record in records:
            next_offsets[record.partition] = max(
                next_offsets.get(record.partition, 0), record.offset + 1
            )
        with self._db.transaction() as conn:
            for projection in self.projections:
                stored = checkpoints.load(
                    conn, projection.name, self.generation, self.topic, lock=True
                )
                fresh = [e for e in events if e.offset >= stored.get(e.partition, 0)]
                projection.apply(conn, fresh)
                forward = {p: o for p, o in next_offsets.items() if o > stored.get(p, 0)}
                checkpoints.advance(conn, projection.name, self.generation, self.topic, forward)
        return next_offsets

    def run_once(self) -> int:
        """Poll one batch and apply it; returns the number of records consumed."""
        consumer = self._consumer_or_new()
        records = consumer.poll(self._batch_size, self._idle_s)
        if not records:
            return 0
        try:
            next_offsets = self._commit(records)
        except Exception:
            # The consumer has moved past records that were not applied: start over from the
            # checkpoints the database holds.
            self._drop_consumer()
            raise
        consumer.commit(next_offsets)
        with self._progress:
            for partition, offset in next_offsets.items():
                self._applied[partition] = max(self._applied.get(partition, 0), offset)
            self._progress.notify_all()
        return len(records)

    def catch_up(self, timeout_s: float, progress: Callable[[int, int], None] | None = None) -> int:
        """Apply batches until every partition reaches the log's end as of the call.

        Returns the records consumed; ``progress(done, total)`` is called after each batch;
        raises ``TimeoutError`` when the end is not reached in time.
        """
        target = {p: o for p, o in self._log.end_offsets(self.topic).items() if o > 0}
        total = sum(target.values())
        deadline = time.monotonic() + timeout_s
        consumed = 0
        while not self._reached(target):
            if time.monotonic() > deadline:
                raise TimeoutError(f"projection did not reach {target} in {timeout_s}s")
            consumed += self.run_once()
            if progress is not None:
                applied = self.applied()
                progress(sum(min(applied.get(p, 0), o) for p, o in target.items()), total)
        return consumed

    def _reached(self, target: Mapping[int, int]) -> bool:
        with self._progress:
            return all(self._applied.get(p, 0) >= o for p, o in target.items())

    def run_forever(self, stop: threading.Event) -> None:
        """Apply batches until ``stop`` is set; errors are logged and retried with backoff."""
        backoff = 0.1
        while not stop.is_set():
            try:
                self.run_once()
                backoff = 0.1
            except Exception:
                log.exception("projection batch failed; retrying in %.1fs", backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
        self._drop_consumer()

    def close(self) -> None:
        """Leave the consumer group (the runner can be used again: it rejoins on demand)."""
        self._drop_consumer()

    def rewind(self) -> None:
        """Forget in-memory progress and rejoin, so reading resumes from the stored checkpoints.

        Used after the checkpoints were changed under the runner (replay resets them to 0).
        """
        self._drop_consumer()
        with self._progress:
            self._applied.clear()

    def _drop_consumer(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            try:
                consumer.close()
            except Exception:
                log.exception("closing consumer failed")

    # -- progress --------------------------------------------------------------------------

    def applied(self) -> dict[int, int]:
        """The next offset applied by this runner per partition it has seen."""
        with self._progress:
            return dict(self._applied)

    def wait_for(self, positions: Mapping[int, int], timeout_s: float) -> bool:
        """Block until every ``partition -> offset`` given has been applied (or time is up)."""
        deadline = time.monotonic() + timeout_s
        with self._progress:
            while True:
                if all(self._applied.get(p, 0) > o for p, o in positions.items()):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._progress.wait(remaining)
