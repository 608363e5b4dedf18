"""The projection runner: log -> projections, one transaction per batch.

Guarantees:
- A batch's view changes, its dead letters and the projections' checkpoints commit in ONE
  transaction; records below a projection's checkpoint are skipped (re-deliveries change
  nothing).
- No single record stalls the runner: a record that cannot be decoded, or whose application
  raises an error of its own, is parked for that projection (``services.core.deadletters``)
  and the batch goes on — a failing batch is bisected inside savepoints until the failing
  records are found. Transient errors (database or log unreachable) and systemic ones (the
  database does not fit the code) are retried with backoff and never park anything.
- No record is skipped: a batch whose first record of a partition lies past that partition's
  checkpoint is not applied unless the consumer read on from the checkpoint (then the offsets
  in between hold nothing a reader sees: transaction markers, aborted records); otherwise the
  consumer re-seeks in place, and a gap still there after re-seeking is accepted with a
  warning. Offsets the consumer passes without a record move the checkpoints (so they reach the
  log's end). A checkpoint past the log's end (the topic or
  embedded log was recreated while the database was kept) stops the runner (``CheckpointAhead``,
  ``failure``) until the checkpoints fit the log again.
- Fenced: a replay that reset the projections after this runner resumed makes its commit fail
  (``checkpoints.Fenced``); the runner forgets its progress and resumes from the checkpoints.
- Every projection sees only the first copy of each event id (``readmodels.copies``).
- A commit holds at most ``batch_size`` events, about ``batch_bytes`` bytes of record values and
  ``batch_rows`` estimated view rows (``chunks``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from services.core import codec
from services.core.adapters.sql import Database, is_systemic, is_transient
from services.core.deadletters import store as dead_letters
from services.core.metrics.definitions import (
    PROJECTION_BATCH_DURATION,
    PROJECTION_EVENTS,
    PROJECTION_RECORDS_PARKED,
)
from services.core.ports import EventLog, LogConsumer, LogRecord
from services.core.readmodels import checkpoints, copies, generations
from services.projections import derived
from services.projections.base import Projection
from services.projections.chunks import Bounds, Chunk, split
from services.projections.isolation import apply_isolated

log = logging.getLogger(__name__)


class CheckpointAhead(RuntimeError):
    """A stored checkpoint lies past the log's end: the log is not the one the views were
    built from. Fatal: the runner stops rather than skip or re-apply anything."""


class CheckpointGap(RuntimeError):
    """A batch starts past the stored checkpoint of a partition; the consumer must re-seek."""

    def __init__(self, partition: int, expected: int, found: int) -> None:
        super().__init__(f"partition {partition}: checkpoint {expected}, batch starts at {found}")
        self.partition, self.expected = partition, expected


def _now_us() -> int:
    return time.time_ns() // 1000


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
        batch_bytes: int = 16 * 1024 * 1024,
        batch_rows: int = 50_000,
        idle_s: float = 0.2,
        generation: int = checkpoints.LIVE_GENERATION,
    ) -> None:
        self._log = event_log
        self._db = db
        self.topic = topic
        self.projections = tuple(projections)
        self._group = group
        self._batch_size = batch_size
        self._bounds = Bounds(batch_size, batch_bytes, batch_rows)
        self._idle_s = idle_s
        self.generation = generation
        self._consumer: LogConsumer | None = None
        self._applied: dict[int, int] = {}
        self._progress = threading.Condition()
        self._epochs: dict[str, int] = {}
        self._suspect_gaps: dict[int, tuple[int, int]] = {}
        self._positioned: set[int] = set()
        """Partitions assigned or re-seeked since their last commit (see _check_continuity)."""
        self.parked = 0
        self.fenced = 0
        self._active = self.projections
        """The projections this runner applies: all but live ones still waiting for their
        backfill (``generations.NOT_BUILT``); set on every resume."""
        self.failure: str | None = None
        self.last_error: str | None = None
        """The latest error ``run_forever`` retried after (for diagnostics), until a batch works."""
        self._fence_checked = 0.0
        self._last_poll: tuple[float, dict[int, int], int] | None = None
        self.until: dict[int, int] | None = None
        """When set, apply nothing at or past these offsets (a rebuild stops its shadow exactly
        at the live generation's positions); partitions not named are not applied at all."""

    # -- assignment ------------------------------------------------------------------------

    def _resume_points(self, partitions: Sequence[int]) -> dict[int, int]:
        names = [p.name for p in self.projections]
        end = self._log.end_offsets(self.topic)
        with self._db.transaction() as conn:
            waiting: set[str] = set()
            if self.generation == checkpoints.LIVE_GENERATION:
                waiting = generations.not_built(conn, names)
            self._active = tuple(p for p in self.projections if p.name not in waiting)
            stored = {}
            for name in [p.name for p in self._active]:
                checkpoints.ensure_rows(conn, name, self.generation, self.topic, partitions)
                stored[name] = checkpoints.load(conn, name, self.generation, self.topic)
            epochs = checkpoints.epochs(conn, names, self.generation)
        for name, done in stored.items():
            for part in partitions:
                if done.get(part, 0) > end.get(part, 0):
                    raise CheckpointAhead(
                        f"{name} has applied topic {self.topic!r} partition {part} up to offset"
                        f" {done[part]}, but the log ends at {end.get(part, 0)}: the topic (or"
                        " the embedded log) was recreated while the database was kept. Point"
                        " OneVoice at the original log, or rebuild the views from this one"
                        " with `onevoice replay`."
                    )
        start = {part: min((s.get(part, 0) for s in stored.values()), default=end.get(part, 0))
                 for part in partitions}  # fmt: skip
        self._epochs = epochs  # of every projection: a backfill's switch fences this runner
        self._positioned.update(partitions)
        for part in partitions:
            # A hole is accepted only when it is seen twice by one assignment: after a new one
            # (a rebalance), the consumer is suspected of starting past the checkpoint again.
            self._suspect_gaps.pop(part, None)
        with self._progress:
            self._applied.update(start)
        return start

    def _consumer_or_new(self) -> LogConsumer:
        if self._consumer is None:
            self._consumer = self._log.consumer(self.topic, self._group, self._resume_points)
        return self._consumer

    # -- batches ---------------------------------------------------------------------------

    def _check_continuity(
        self, first: Mapping[int, int], stored: Mapping[int, int], read_from: Mapping[int, int]
    ) -> None:
        """Refuse a chunk that starts past a partition's checkpoint unless the consumer read on
        from at or below the checkpoint (``read_from``: its position before the poll): then the
        offsets in between hold nothing a reader can see (transaction markers, aborted
        records). A consumer that was positioned (assigned or re-seeked) since its last commit
        there must show the same gap twice (a client can still hand out records it fetched for
        the position before a seek), and a consumer that did not read on from the checkpoint is
        re-seeked every time: a gap is never accepted from a consumer positioned past it."""
        for partition, found in first.items():
            expected = stored.get(partition, 0)
            if found <= expected:
                continue
            read_on = read_from.get(partition, found) <= expected
            seen = self._suspect_gaps.get(partition) == (expected, found)
            if read_on and (partition not in self._positioned or seen):
                if seen:
                    log.info("topic %s partition %d has no readable records at offsets %d..%d;"
                             " continuing at %d", self.topic, partition, expected, found - 1,
                             found)  # fmt: skip
                continue
            self._suspect_gaps[partition] = (expected, found)
            raise CheckpointGap(partition, expected, found)

    def _commit(self, chunk: Chunk, read_from: Mapping[int, int]) -> dict[int, int]:
        """Apply ``chunk`` and advance the checkpoints in one transaction. Every projection
        applies the chunk at once, without savepoints; when a record's application raises an
        error of its own, the transaction is rolled back and the chunk applied again with the
        failing records isolated (``apply_isolated``): the savepoints are paid only then."""
        try:
            return self._apply(chunk, read_from, isolate=False)
        except (CheckpointGap, checkpoints.Fenced, checkpoints.Held):
            raise
        except Exception as exc:
            if is_transient(exc) or is_systemic(exc):
                raise
            log.info("a record of the batch failed (%s: %s); applying it again record by record",
                     type(exc).__name__, dead_letters.clean(str(exc), 200))  # fmt: skip
            return self._apply(chunk, read_from, isolate=True)

    def _apply(self, chunk: Chunk, read_from: Mapping[int, int], *,
               isolate: bool) -> dict[int, int]:  # fmt: skip
        next_offsets: dict[int, int] = {}
        first: dict[int, int] = {}
        for record in chunk.records:
            p = record.partition
            next_offsets[p] = max(next_offsets.get(p, 0), record.offset + 1)
            first[p] = min(first.get(p, record.offset), record.offset)
        if not self._active:
            return next_offsets  # every read model waits for its backfill: nothing to apply
        by_position = {(r.partition, r.offset): r for r in chunk.records}
        all_parked: list[dead_letters.Parked] = []
        applied: dict[str, int] = {}
        moves: dict[str, dict[int, int]] = {}
        started = time.perf_counter()
        with self._db.transaction() as conn:
            checkpoints.fence(conn, self._epochs, self.generation)
            names = [p.name for p in self._active]
            stored = checkpoints.load_many(conn, names, self.generation, self.topic, lock=True,
                                           partitions=next_offsets)  # fmt: skip
            for done in stored.values():
                self._check_continuity(first, done, read_from)
            lowest = {p: min(s.get(p, 0) for s in stored.values()) for p in next_offsets}
            winners = copies.first_copies(conn, self.topic, [
                (event_id, p, o) for p, o, event_id in sorted(chunk.identified())
                if o >= lowest[p]
            ])  # fmt: skip
            now_us = _now_us()
            live = self.generation == checkpoints.LIVE_GENERATION
            changes = derived.read_changes(conn, chunk.events) if live else None
            for projection in self._active:
                done = stored[projection.name]
                parked: list[dead_letters.Parked] = []

                def poison(event: codec.StoredEvent, exc: Exception, name: str = projection.name,
                           out: list[dead_letters.Parked] = parked) -> None:  # fmt: skip
                    record = by_position[(event.partition, event.offset)]
                    out.append(dead_letters.Parked(name, record, "failed", exc, event.event_id,
                                                   event.type))  # fmt: skip

                fresh = [e for e in chunk.events if e.offset >= done.get(e.partition, 0)
                         and (e.partition, e.offset) in winners]  # fmt: skip
                if isolate:
                    apply_isolated(conn, projection, fresh, poison)
                elif fresh:
                    projection.apply(conn, fresh)
                applied[projection.name] = len(fresh) - len(parked)
                parked += [
                    dead_letters.Parked(projection.name, record, exc.reason,  # type: ignore[arg-type]
                                        exc, exc.event_id, exc.event_type)
                    for record, exc in chunk.rejected
                    if record.offset >= done.get(record.partition, 0)
                ]  # fmt: skip
                dead_letters.park(conn, self.generation, parked, now_us)
                all_parked += parked
                moves[projection.name] = {p: o for p, o in next_offsets.items()
                                          if o > done.get(p, 0)}  # fmt: skip
            checkpoints.advance_many(conn, self.generation, self.topic, moves)
            if changes is not None:
                derived.mark(conn, changes)
        self._report(time.perf_counter() - started, applied, all_parked)  # once committed
        return next_offsets

    def _report(self, seconds: float, applied: Mapping[str, int],
                parked: Sequence[dead_letters.Parked]) -> None:  # fmt: skip
        # The metrics describe the live views; a rebuild's runner (another generation) reports
        # its progress through the rebuild.
        live = self.generation == checkpoints.LIVE_GENERATION
        if live:
            PROJECTION_BATCH_DURATION.observe(seconds)
            for name, count in applied.items():
                PROJECTION_EVENTS.labels(name).inc(count)
        for p in parked:
            self.parked += 1
            if live:
                PROJECTION_RECORDS_PARKED.labels(p.projection, p.reason).inc()
            log.error("parked %s/%d@%d for %s (%s): %s: %s", p.record.topic, p.record.partition,
                      p.record.offset, p.projection, p.reason, type(p.error).__name__,
                      dead_letters.clean(str(p.error), 300), extra={
                          "event_id": p.event_id, "partition": p.record.partition,
                          "offset": p.record.offset, "projection": p.projection,
                          "reason": p.reason,
                      })  # fmt: skip

    def run_once(self) -> int:
        """Poll one batch and apply it; returns the number of records consumed.

        A gap re-seeks the consumer to the checkpoints and a fence drops it (it resumes from the
        stored checkpoints); both return 0. ``CheckpointAhead`` and other errors propagate."""
        consumer = self._consumer_or_new()
        read_from = consumer.positions()  # partitions assigned inside poll start at checkpoints
        records = consumer.poll(self._batch_size, self._idle_s)
        self._last_poll = (time.monotonic(), dict(read_from), len(records))
        if self.until is not None:
            records = self._within(consumer, records, self.until)
        if not records and time.monotonic() - self._fence_checked > 1.0:
            self.check_fence()  # an idle runner notices a rollback or replay, too
        try:
            for chunk in split(records, self._bounds):
                next_offsets = self._commit(chunk, read_from)
                self._positioned.difference_update(next_offsets)
                read_from.update(next_offsets)  # the next chunk continues this one's reading
                consumer.commit(next_offsets)
                self._advanced(next_offsets)
            self._pass_over(consumer, read_from)
        except CheckpointGap as gap:
            log.info("re-seeking to the checkpoints: %s", gap)
            self._reseek(consumer)
            with self._progress:
                applied = dict(self._applied)
            consumer.seek(gap.partition, min(gap.expected, applied.get(gap.partition, 0)))
            self._positioned.add(gap.partition)
            return 0
        except checkpoints.Held as held:
            log.info("%s; retrying", held)
            self._reseek(consumer)
            time.sleep(self._idle_s)
            return 0
        except checkpoints.Fenced as fenced:
            self.fenced += 1
            log.warning("fenced: %s; resuming from the stored checkpoints", fenced)
            self.rewind()
            return 0
        except Exception:
            # The consumer has moved past records that were not applied: start over from the
            # checkpoints the database holds.
            self._drop_consumer()
            raise
        return len(records)

    def check_fence(self) -> bool:
        """Rewind (and return True) when a replay or rollback moved the projections to a new
        epoch since this runner resumed; commits find out by themselves, idle runners here."""
        self._fence_checked = time.monotonic()
        if not self._epochs:
            return False
        names = [p.name for p in self.projections]
        with self._db.reading() as conn:
            now = checkpoints.epochs(conn, names, self.generation)
        if now == self._epochs:
            return False
        log.warning("fenced while idle: resuming from the stored checkpoints")
        self.rewind()
        return True

    def _within(
        self, consumer: LogConsumer, records: Sequence[LogRecord], until: Mapping[int, int]
    ) -> list[LogRecord]:
        """The records before ``until``; the consumer is moved back to ``until`` where it read
        past it (every record before it was returned, so nothing is passed over)."""
        for partition, position in consumer.positions().items():
            if position > until.get(partition, 0):
                consumer.seek(partition, until.get(partition, 0))
                self._positioned.add(partition)
        return [r for r in records if r.offset < until.get(r.partition, 0)]

    def _reseek(self, consumer: LogConsumer) -> None:
        with self._progress:
            applied = dict(self._applied)
        for partition in consumer.positions():
            consumer.seek(partition, applied.get(partition, 0))
            self._positioned.add(partition)

    def _pass_over(self, consumer: LogConsumer, read_from: Mapping[int, int]) -> None:
        """Move checkpoints over offsets the consumer passed without a record to return
        (transaction markers, aborted records), so they reach the log's end; one small commit,
        only when a position is past what this runner applied. A position the consumer did not
        reach by reading on from the applied offset (``read_from``) is out of step: re-seek."""
        with self._progress:
            applied = dict(self._applied)
        behind: dict[int, tuple[int, int]] = {}
        for partition, position in consumer.positions().items():
            done = applied.get(partition, 0)
            if position <= done:
                continue
            if read_from.get(partition, position) <= done:
                behind[partition] = (done, position)
            else:
                log.info("re-seeking to the checkpoints: partition %d is at %d, applied %d",
                         partition, position, done)  # fmt: skip
                consumer.seek(partition, done)
                self._positioned.add(partition)
        if not behind:
            return
        with self._db.transaction() as conn:
            checkpoints.fence(conn, self._epochs, self.generation)
            stored = checkpoints.load_many(conn, [p.name for p in self._active], self.generation,
                                           self.topic, lock=True, partitions=behind)  # fmt: skip
            checkpoints.advance_many(conn, self.generation, self.topic, {
                name: {p: to for p, (start, to) in behind.items() if start <= done.get(p, 0) < to}
                for name, done in stored.items()
            })  # fmt: skip
        self._advanced({p: to for p, (_, to) in behind.items()})

    def _advanced(self, next_offsets: Mapping[int, int]) -> None:
        with self._progress:
            for partition, offset in next_offsets.items():
                self._applied[partition] = max(self._applied.get(partition, 0), offset)
            self._progress.notify_all()

    def catch_up(self, timeout_s: float, progress: Callable[[int, int], None] | None = None) -> int:
        """Apply batches until every partition reaches the log's end as of the call.

        Returns the records consumed; ``progress(done, total)`` is called after each batch;
        raises ``TimeoutError`` when the end is not reached in time.
        """
        target = self.log_end()
        total = sum(target.values())
        self.check_fence()
        deadline = time.monotonic() + timeout_s
        consumed = 0
        while not self._reached(target):
            if time.monotonic() > deadline:
                raise TimeoutError(f"projection did not reach {target} in {timeout_s}s;"
                                   f" runner: {self.diagnostics()}")  # fmt: skip
            consumed += self.run_once()
            if progress is not None:
                applied = self.applied()
                progress(sum(min(applied.get(p, 0), o) for p, o in target.items()), total)
        return consumed

    def log_end(self) -> dict[int, int]:
        """``partition -> end offset`` of the topic's partitions that hold anything, now."""
        return {p: o for p, o in self._log.end_offsets(self.topic).items() if o > 0}

    @property
    def group(self) -> str:
        return self._group

    def _reached(self, target: Mapping[int, int]) -> bool:
        with self._progress:
            return all(self._applied.get(p, 0) >= o for p, o in target.items())

    def run_forever(self, stop: threading.Event, *, recheck_s: float | None = None) -> None:
        """Apply batches until ``stop`` is set; errors are logged and retried with backoff.

        ``CheckpointAhead`` sets ``failure`` and applies nothing more: with ``recheck_s`` the
        runner looks again that often and carries on once an operator fixed it (``onevoice
        replay``); without, it returns."""
        backoff = 0.1
        while not stop.is_set():
            try:
                self.run_once()
                if self.failure is not None:
                    log.warning("projector resumed after: %s", self.failure)
                    self.failure = None
                self.last_error = None
                backoff = 0.1
            except CheckpointAhead as exc:
                if self.failure is None:
                    log.critical("projector stopped: %s", exc)
                self.failure = str(exc)
                if recheck_s is None:
                    break
                stop.wait(recheck_s)
            except Exception as exc:
                if is_systemic(exc):
                    # No record is to blame: say so where /readyz shows it, until it works.
                    self.failure = f"the database does not fit this version: {exc}"
                self.last_error = f"{type(exc).__name__}: {exc}"[:500]
                log.exception("projection batch failed; retrying in %.1fs", backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
        self._drop_consumer()

    def close(self) -> None:
        """Leave the consumer group (the runner can be used again: it rejoins on demand)."""
        self._drop_consumer()

    def diagnostics(self) -> dict[str, object]:
        """What this runner knows about itself, for an operator or a failing test: applied
        offsets, the consumer's assignment and positions, suspected gaps, the latest error."""
        with self._progress:
            applied = dict(self._applied)
        found: dict[str, object] = {
            "topic": self.topic, "generation": self.generation, "applied": applied,
            "failure": self.failure, "last_error": self.last_error, "parked": self.parked,
            "fenced": self.fenced, "suspect_gaps": dict(self._suspect_gaps),
            "positioned": sorted(self._positioned), "consumer": None,
        }  # fmt: skip
        consumer, polled = self._consumer, self._last_poll
        if consumer is not None:
            try:  # the set of partitions only: positions could do IO on the runner's consumer
                found["consumer"] = {"assignment": sorted(consumer.assignment())}
            except Exception as exc:  # a diagnostic must not raise
                found["consumer"] = f"unavailable: {type(exc).__name__}: {exc}"
        if polled is not None:
            at, positions, count = polled
            found["last_poll"] = {"seconds_ago": round(time.monotonic() - at, 3),
                                  "positions_before": positions, "records": count}  # fmt: skip
        return found

    def rewind(self) -> None:
        """Forget in-memory progress and rejoin, so reading resumes from the stored checkpoints.

        Used after the checkpoints were changed under the runner (replay resets them to 0).
        """
        self._drop_consumer()
        self._epochs = {}
        self._suspect_gaps.clear()
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
