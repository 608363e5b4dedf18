"""Rebuild read models into a shadow generation while the live one serves, verify, switch.

``Rebuilder.run`` takes a rebuild's lease and:

1. creates the shadow tables of its generation (``Projection.in_generation``) and folds the
   log into them with a runner of its own (own checkpoints: a killed rebuild resumes), never
   past the live generation's positions (``ProjectionRunner.until``), until it trails the live
   head by one short pass;
2. ``verifying``: pauses the live projector's commits (a lease, ``checkpoints.hold``), brings
   the shadow to exactly the live positions and compares both (``verify.compare``);
3. switches in one transaction (``generations.swap``) when equal or ``accept_diff``; otherwise
   releases the live projector and waits for the operator (state ``diff``). The old generation
   is dropped after the switch unless ``keep_old`` (then ``operations.rollback`` returns to it).

Reads never wait for a rebuild except for the swap's brief table locks; the live projector
pauses only while the two generations are compared.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.exc import DBAPIError

from services.core.adapters.sql import Database, is_lock_timeout
from services.core.deadletters import store as dead_letters
from services.core.ports import EventLog, LogUnavailable, StoreUnavailable
from services.core.readmodels import checkpoints, generations, state_figures
from services.core.rebuilds import RebuildConflict, RebuildStateError, operations, store
from services.core.rebuilds.store import Rebuild
from services.projections import derived
from services.projections.base import Projection
from services.projections.rebuild.verify import compare, compare_nothing
from services.projections.runner import ProjectionRunner

log = logging.getLogger(__name__)

LEASE_S = 15.0
HOLD_S = 60.0
CLOSE_S = 2.0
"""A catch-up pass shorter than this means the shadow trails the live head closely enough to
pause the live projector for the final, exact catch-up."""

Progress = Callable[[dict[str, Any]], None]


class UnknownProjection(ValueError):
    pass


class RebuildBusy(RuntimeError):
    """Another live worker holds the rebuild's lease."""


def _now_us() -> int:
    return time.time_ns() // 1000


class Rebuilder:
    """Starts and runs rebuilds of ``projections`` (the live read models) from ``topic``."""

    def __init__(
        self, event_log: EventLog, db: Database, topic: str, projections: Sequence[Projection],
        *, group: str = "onevoice-projector", batch_size: int = 1000,
        batch_bytes: int = 16 * 1024 * 1024, idle_s: float = 0.2,
    ) -> None:  # fmt: skip
        self._log, self.db, self.topic = event_log, db, topic
        self.projections = {p.name: p for p in projections}
        self._group, self._batch = group, (batch_size, batch_bytes, idle_s)
        self.worker = store.worker_id()
        # The lease is per process (``worker``: host and pid), and "ours" is free to take
        # again: two threads of one process (the rebuild worker and a caller of ``run``) would
        # otherwise both run one rebuild, and race creating its shadow tables.
        self._running: set[str] = set()
        self._running_lock = threading.Lock()

    def names(self, requested: Sequence[str] | None) -> list[str]:
        """The read models a request names (None or "all": every one), in apply order."""
        if requested is None:
            return list(self.projections)
        unknown = sorted(set(requested) - set(self.projections))
        if unknown:
            raise UnknownProjection(f"unknown read model(s) {', '.join(unknown)}; known:"
                                    f" {', '.join(self.projections)}")  # fmt: skip
        return [n for n in self.projections if n in requested]

    def start(self, requested: Sequence[str] | None, *, accept_diff: bool = False,
              keep_old: bool = False) -> Rebuild:  # fmt: skip
        with self.db.transaction() as conn:
            return store.create(conn, self.names(requested), accept_diff=accept_diff,
                                keep_old=keep_old, now_us=_now_us())  # fmt: skip

    def backfill_new(self) -> Rebuild | None:
        """Start the rebuild that builds the read models a release added (``NOT_BUILT``) and
        nobody builds yet; None when there are none (or another process just started it).
        The rebuild worker asks every few seconds: a read answers that, a write transaction
        (SQLite's write lock) is taken only when a read model waits."""
        with self.db.reading() as conn:
            if not generations.not_built(conn, list(self.projections)) - set(store.claims(conn)):
                return None
        with self.db.transaction() as conn:
            waiting = generations.not_built(conn, list(self.projections))
            waiting -= set(store.claims(conn))
            if not waiting:
                return None
            try:
                return store.create(conn, self.names(sorted(waiting)), accept_diff=True,
                                    keep_old=False, now_us=_now_us())  # fmt: skip
            except RebuildConflict:
                return None

    def run(self, rebuild_id: str, progress: Progress | None = None,
            stop: threading.Event | None = None) -> Rebuild:  # fmt: skip
        """Run (or resume) a rebuild to its end: switched, diff, failed, or cancelled by an
        operator meanwhile. Raises ``RebuildBusy`` when a live worker holds it (another thread
        of this process included), and ``UnknownProjection`` when it names read models this
        version does not have (a rolling upgrade: a newer process runs it)."""
        with self._running_lock:
            if rebuild_id in self._running:
                raise RebuildBusy(f"rebuild {rebuild_id} is run by {self.worker} (this process)")
            self._running.add(rebuild_id)
        try:
            return self._run(rebuild_id, progress, stop)
        finally:
            with self._running_lock:
                self._running.discard(rebuild_id)

    def _run(self, rebuild_id: str, progress: Progress | None,
             stop: threading.Event | None) -> Rebuild:  # fmt: skip
        with self.db.reading() as conn:
            named = store.get(conn, rebuild_id)
        if named is not None:
            self.names(list(named.projections))  # raises UnknownProjection before any lease
        with self.db.transaction() as conn:
            rebuild = store.take(conn, rebuild_id, self.worker, _now_us() + int(LEASE_S * 1e6),
                                 _now_us())  # fmt: skip
        if rebuild is None:
            with self.db.reading() as conn:
                current = store.get(conn, rebuild_id)
            if current is None:
                raise KeyError(rebuild_id)
            if current.state in ("running", "verifying"):
                raise RebuildBusy(f"rebuild {rebuild_id} is run by {current.worker}")
            return current
        self._drop_orphans()
        stop = stop or threading.Event()
        run = _Run(self, rebuild, progress or (lambda _: None), stop)
        try:
            backoff = 0.5
            while True:
                try:
                    run.execute()
                    break
                except (StoreUnavailable, LogUnavailable) as exc:
                    # An outage keeps the shadow: wait, then carry on from its checkpoints.
                    log.warning("rebuild %s: %s; resuming in %.1fs", rebuild_id, exc, backoff)
                    run.release_quietly()
                    if stop.wait(backoff):
                        raise _Interrupted() from exc
                    backoff = min(backoff * 2, 30.0)
        except RebuildStateError as exc:
            log.info("rebuild %s stopped: %s", rebuild_id, exc)
            run.cleanup_if_cancelled()
        except _Interrupted:
            log.info("rebuild %s interrupted; it resumes from its checkpoints", rebuild_id)
        except Exception as exc:
            log.exception("rebuild %s failed", rebuild_id)
            run.fail(exc)
        finally:
            run.close()
        with self.db.reading() as conn:
            final = store.get(conn, rebuild_id)
        assert final is not None
        return final

    def _drop_orphans(self) -> None:
        """Drop generation tables nothing refers to (a process died between a switch or a
        cancel and the drop that follows it)."""
        with self.db.transaction() as conn:
            store.lock_creates(conn)  # a rebuild created meanwhile is in use, not an orphan
            used = operations.generations_in_use(conn)
            for name, prefix in generations.PREFIXES.items():
                for generation in _table_generations(conn, prefix) - used:
                    log.info("dropping orphaned generation %d of %s", generation, name)
                    generations.drop(conn, prefix, generation)


def _table_generations(conn: Any, prefix: str) -> set[int]:
    found = set()
    for name in generations.table_names(conn):
        head = f"{prefix}__g"
        if name.startswith(head):
            digits = name[len(head) :].split("_", 1)[0]
            if digits.isdigit():
                found.add(int(digits))
    return found


class _Interrupted(Exception):
    pass


class _Run:
    """One worker's run of one rebuild (the state machine of the module docstring)."""

    def __init__(self, owner: Rebuilder, rebuild: Rebuild, progress: Progress,
                 stop: threading.Event) -> None:  # fmt: skip
        self.o, self.rebuild, self.report_progress, self.stop = owner, rebuild, progress, stop
        self.names = list(rebuild.projections)
        self.live = [owner.projections[n] for n in self.names]
        self.shadows = [p.in_generation(rebuild.generation) for p in self.live]
        size, size_bytes, idle_s = owner._batch
        self.runner = ProjectionRunner(
            owner._log, owner.db, owner.topic, self.shadows,
            group=f"{owner._group}-rebuild-{rebuild.generation}-{owner.worker}",
            batch_size=size, batch_bytes=size_bytes, idle_s=idle_s,
            generation=rebuild.generation,
        )  # fmt: skip
        self.held = False
        self.started = time.monotonic()
        self.applied_at_start: int | None = None
        self.last_tick = 0.0
        self.phase = "catching up"
        self.target: dict[int, int] = {}
        self.paused_s = 0.0
        self.paused_since: float | None = None
        self.resumed_from = 0
        """Events the shadow had applied when this run began (a resumed rebuild's head start)."""
        self.backfill: set[str] = set()
        """Read models of this rebuild that were never built (added by a later release): no
        live generation to compare with or to pause."""
        self.waiting: set[str] = set()

    # -- the state machine -----------------------------------------------------------------

    def execute(self) -> None:
        with self.o.db.transaction() as conn:
            for shadow in self.shadows:
                shadow.create_tables(conn)
            checkpoints.ensure_fences(conn, self.names)  # long before the hold: see hold()
            self.backfill = generations.not_built(conn, self.names)
            self.waiting = generations.not_built(conn, list(self.o.projections))
            done = checkpoints.load_slowest(conn, self.names, self.rebuild.generation,
                                            self.o.topic)  # fmt: skip
        self.applied_at_start = sum(done.values())  # the rate counts this run's work only
        self.resumed_from = self.applied_at_start
        if self.rebuild.state == "verifying":
            # Resumed after a worker died verifying: catch up first, with the live one running.
            self._release()
            self._tick(force=True, state="running")
        self.phase = "catching up"
        while True:
            began = time.monotonic()
            self.target = self._live_positions()
            self._catch_up()
            if time.monotonic() - began < CLOSE_S:
                break
        self._tick(force=True, state="verifying")
        self._verify_and_switch()

    def _verify_and_switch(self) -> None:
        """Verify at one set of positions with the live projector paused only while the shadow
        reaches them and a read snapshot is pinned; compare in that snapshot while the live one
        runs again; then pause it once more to bring the shadow to its new positions (a short
        catch-up of the same fold on both sides) and switch."""
        compared = [n for n in self.names if n not in self.backfill]
        pairs = [(live, shadow) for live, shadow in zip(self.live, self.shadows, strict=True)
                 if live.name in compared]  # fmt: skip
        if compared:
            self.phase = "verifying: the shadow reaches the live positions (live paused)"
            self.target = self._hold_at_one_position(compared)
            self._catch_up()
            with self.o.db.reading() as conn:
                # The first read pins this connection's snapshot at the held positions.
                live = checkpoints.LIVE_GENERATION
                pinned = _nonzero(checkpoints.load(conn, compared[0], live, self.o.topic))
                if pinned != self.target:
                    raise RuntimeError(f"live positions moved under a hold: {pinned}")
                self._release()
                self.phase = "verifying: comparing in a snapshot at those positions"
                report = compare(conn, pairs, self.target, tick=lambda: self._tick(force=True))
        else:
            report = compare_nothing(self.target)
        if self.backfill:
            report["backfilled"] = sorted(self.backfill)
            report["summary"] += f"; backfilled {', '.join(sorted(self.backfill))} (new)"
        if report["result"] != "equal" and not self.rebuild.accept_diff:
            self._release()
            self.phase = "waiting for the operator: verification differs"
            with self.o.db.transaction() as conn:
                store.finish(conn, self.rebuild.id, "diff", _now_us(), report=report,
                             progress=self._progress())  # fmt: skip
            log.warning("rebuild %s differs from the live generation: %s", self.rebuild.id,
                        report["summary"])  # fmt: skip
            return
        self.phase = "switching (live paused)"
        if compared:
            self.target = self._hold_at_one_position(compared)
        else:
            self.target = self._live_positions()
        self._catch_up()
        report["switched_at"] = {str(p): o for p, o in sorted(self.target.items())}
        self._switch(report)
        log.info("rebuild %s switched to generation %d (%s); live projector paused %.2fs",
                 self.rebuild.id, self.rebuild.generation, report["summary"],
                 self.paused_s)  # fmt: skip

    def _hold_at_one_position(self, names: Sequence[str]) -> dict[int, int]:
        """Pause the live commits of ``names`` once they stand at one position; that position."""
        while True:
            self._hold()
            with self.o.db.reading() as conn:
                each = {n: checkpoints.load(conn, n, checkpoints.LIVE_GENERATION, self.o.topic)
                        for n in names}  # fmt: skip
            if len({tuple(sorted(_nonzero(d).items())) for d in each.values()}) == 1:
                return _nonzero(next(iter(each.values())))
            self._release()  # the live read models are not at one position yet: let them run
            self.stop.wait(1.0)
            self._check_stop()

    def _switch(self, report: dict[str, Any]) -> None:
        generation, keep = self.rebuild.generation, self.rebuild.keep_old
        for attempt in range(40):
            try:
                with self.o.db.transaction() as conn:
                    retired = self._swap(conn, generation, keep)
                    report["switched_at_attempt"] = attempt + 1
                    self.phase = "switched"
                    store.finish(conn, self.rebuild.id, "switched", _now_us(), report=report,
                                 progress=self._progress())  # fmt: skip
                break
            except (DBAPIError, StoreUnavailable) as exc:
                if not is_lock_timeout(exc):
                    raise
                self._tick(force=True)  # readers held the tables: retry, keeping the leases
                time.sleep(0.05 * (attempt + 1))
        else:
            raise RuntimeError("could not take the tables' locks for the switch in 40 tries")
        self._resumed()  # the switch released the hold
        with self.o.db.transaction() as conn:
            for name, old in sorted(retired):
                operations.drop_generation(conn, [name], old)

    def _swap(self, conn: Any, generation: int, keep: bool) -> set[tuple[str, int]]:
        """The switch transaction; returns the (read model, generation) pairs whose tables may
        be dropped."""
        current = store.get(conn, self.rebuild.id, lock=True)
        if current is None or current.state != "verifying" or current.worker != self.o.worker:
            raise RebuildStateError(f"rebuild {self.rebuild.id} is {current and current.state}")
        retired: set[tuple[str, int]] = set()
        live = checkpoints.LIVE_GENERATION
        before = generations.active(conn, self.names)
        state_figures.hold(conn)  # before the tables: a refresher summing reads them
        generations.lock_tables(conn, {name: generation for name in self.names})
        for name in self.names:
            outgoing, kept = before[name]
            keep_this = keep and name not in self.backfill  # an unbuilt one is empty: drop it
            dead_letters.move(conn, name, live, outgoing if keep_this else None)
            generations.swap(conn, name, generation, keep_outgoing=keep_this, now_us=_now_us(),
                             locked=True)  # fmt: skip
            dead_letters.move(conn, name, generation, live)
            if not keep_this:
                retired.add((name, outgoing))
            if kept is not None:
                operations.forget_generation(conn, [name], kept)
                retired.add((name, kept))
        if self.backfill:
            # Live projectors skip these until they resume: fence them so they resume now.
            checkpoints.bump(conn, sorted(self.backfill), live)
        derived.mark_all(conn)  # every account's facts may differ in the new generation
        return retired

    # -- catching up -----------------------------------------------------------------------

    def _live_positions(self) -> dict[int, int]:
        """Where the shadow is to catch up to: the live positions of this rebuild's built read
        models; for a backfill alone, of every built read model; with none built, the log's
        end."""
        names = [n for n in self.names if n not in self.backfill]
        names = names or [n for n in self.o.projections if n not in self.waiting]
        if not names:
            return _nonzero(self.o._log.end_offsets(self.o.topic))
        with self.o.db.reading() as conn:
            done = checkpoints.load_slowest(conn, names, checkpoints.LIVE_GENERATION, self.o.topic)
        return _nonzero(done)

    def _catch_up(self) -> None:
        """Apply the shadow up to exactly ``self.target``."""
        self.runner.until = dict(self.target)
        backoff = 0.1
        while True:
            self._check_stop()
            fenced = self.runner.fenced
            try:
                self.runner.run_once()
                backoff = 0.1
            except (StoreUnavailable, LogUnavailable) as exc:
                log.warning("rebuild %s: %s; retrying in %.1fs", self.rebuild.id, exc, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            applied = self.runner.applied()
            if all(applied.get(p, 0) >= o for p, o in self.target.items()):
                self._tick(force=True)
                return
            self._tick(force=self.runner.fenced != fenced)  # cancelled? stop before resuming

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise _Interrupted()

    # -- leases and progress ---------------------------------------------------------------

    def _tick(self, *, force: bool = False, state: Any = None) -> None:
        now = time.monotonic()
        if not force and now - self.last_tick < 1.0:
            return
        self.last_tick = now
        progress = self._progress()
        with self.o.db.transaction() as conn:
            self.rebuild = store.renew(conn, self.rebuild, self.o.worker,
                                       _now_us() + int(LEASE_S * 1e6), _now_us(), progress,
                                       state)  # fmt: skip
            if self.held:
                checkpoints.hold(conn, self.names, _now_us() + int(HOLD_S * 1e6))
        self.report_progress(progress)

    def _progress(self) -> dict[str, Any]:
        applied = self.runner.applied()
        done = sum(min(applied.get(p, 0), o) for p, o in self.target.items())
        total = sum(self.target.values())
        if self.applied_at_start is None:
            self.applied_at_start = done
        paused = self.paused_s
        if self.paused_since is not None:
            paused += time.monotonic() - self.paused_since
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = (done - self.applied_at_start) / elapsed
        return {
            "phase": self.phase,
            "events_applied": done,
            "target": total,
            "events_per_s": round(rate, 1),
            "eta_s": round((total - done) / rate, 1) if rate > 0 else None,
            "live_paused_s": round(paused, 3),
            "resumed_from": self.resumed_from,
            "partitions": {str(p): {"applied": min(applied.get(p, 0), o), "target": o,
                                    "remaining": max(0, o - applied.get(p, 0))}
                           for p, o in sorted(self.target.items())},
        }  # fmt: skip

    def _ours(self, conn: Any) -> bool:
        current = store.get(conn, self.rebuild.id, lock=True)
        return (current is not None and current.state in ("running", "verifying")
                and current.worker == self.o.worker)  # fmt: skip

    def _hold(self) -> None:
        """Pause the live commits, only while the rebuild is still this worker's (a cancel or
        a takeover in between must not leave a hold behind)."""
        with self.o.db.transaction() as conn:
            if not self._ours(conn):
                raise RebuildStateError(f"rebuild {self.rebuild.id} is no longer this worker's")
            checkpoints.hold(conn, self.names, _now_us() + int(HOLD_S * 1e6))
        self.held = True
        if self.paused_since is None:
            self.paused_since = time.monotonic()

    def _resumed(self) -> None:
        """The live projector runs again (released, or the switch released it)."""
        self.held = False
        if self.paused_since is not None:
            self.paused_s += time.monotonic() - self.paused_since
            self.paused_since = None

    def _release(self) -> None:
        """Release the live commits if this worker's rebuild holds them (a stale hold of a dead
        worker of this rebuild too; never one of a worker that took the rebuild over)."""
        with self.o.db.transaction() as conn:
            if self._ours(conn):
                checkpoints.hold(conn, self.names, None)
        self._resumed()

    def release_quietly(self) -> None:
        try:
            self._release()
        except Exception:
            log.warning("rebuild %s: the hold could not be released now; it expires by itself",
                        self.rebuild.id)  # fmt: skip
            self._resumed()

    # -- endings ---------------------------------------------------------------------------

    def fail(self, exc: Exception) -> None:
        try:
            self.release_quietly()
            with self.o.db.transaction() as conn:
                if not self._ours(conn):
                    return  # cancelled, or another worker runs it now: not ours to fail
                operations.forget_generation(conn, self.names, self.rebuild.generation)
                error = f"{type(exc).__name__}: {exc}"
                store.finish(
                    conn, self.rebuild.id, "failed", _now_us(), error=error,
                    progress=self._progress(),
                )  # fmt: skip
            with self.o.db.transaction() as conn:
                operations.drop_generation(conn, self.names, self.rebuild.generation)
        except Exception:
            log.exception("rebuild %s: recording the failure failed", self.rebuild.id)

    def cleanup_if_cancelled(self) -> None:
        """A cancel dropped the shadow; rows this worker wrote after it are removed."""
        self._release_if_ours()
        with self.o.db.transaction() as conn:
            current = store.get(conn, self.rebuild.id)
            if current is not None and current.state == "cancelled":
                operations.forget_generation(conn, self.names, self.rebuild.generation)
                operations.drop_generation(conn, self.names, self.rebuild.generation)

    def _release_if_ours(self) -> None:
        self._resumed()  # a cancel released it in its own transaction

    def close(self) -> None:
        if self.held:
            self.release_quietly()
        self.runner.close()


def _nonzero(offsets: Mapping[int, int]) -> dict[int, int]:
    return {int(p): int(o) for p, o in offsets.items() if o > 0}
