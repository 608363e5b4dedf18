"""Rebuild every read model from offset 0 (views are offline while it runs).

In one transaction: fences the projections (a live projector that resumed before cannot commit
afterwards: it rejoins from the reset checkpoints), empties the views, sets their checkpoints to
0 and forgets their dead letters and the registered first copies (every record is read again,
and parked again if it still cannot be applied). Then re-consumes the whole topic with a
progress bar (events/s and ETA) and reports what the rebuilt views hold.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from sqlalchemy import Connection, text

from services.core.adapters.sql import Database
from services.core.deadletters import store as dead_letters
from services.core.readmodels import checkpoints, copies
from services.core.rebuilds import store as rebuilds
from services.core.rebuilds.operations import retried
from services.projections import derived
from services.projections.runner import ProjectionRunner


@dataclass
class ReplayReport:
    events: int
    seconds: float
    parked: int
    rows: dict[str, dict[str, int]] = field(default_factory=dict)

    def summary(self) -> str:
        rate = self.events / self.seconds if self.seconds > 0 else 0.0
        views = "; ".join(
            f"{name}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
            for name, counts in self.rows.items()
        )
        return (
            f"replayed {self.events} events in {self.seconds:.1f}s ({rate:,.0f} events/s),"
            f" {self.parked} parked; {views}"
        )


class ProgressBar:
    """``[#####.....]  52%  10,400/20,000 events  3,100 ev/s  ETA 0:03`` on one line."""

    def __init__(self, out: TextIO, width: int = 30, every_s: float = 0.25) -> None:
        self._out = out
        self._width = width
        self._every = every_s if out.isatty() else 2.0
        self._started = time.monotonic()
        self._last = 0.0
        self._end = "\r" if out.isatty() else "\n"
        self._shown = -1

    def update(self, done: int, total: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if (not force and now - self._last < self._every) or done == self._shown:
            return
        self._last, self._shown = now, done
        elapsed = max(now - self._started, 1e-9)
        rate = done / elapsed
        share = done / total if total else 1.0
        filled = int(share * self._width)
        eta = (total - done) / rate if rate > 0 else 0.0
        self._out.write(
            f"[{'#' * filled}{'.' * (self._width - filled)}] {share:4.0%}  {done:,}/{total:,}"
            f" events  {rate:,.0f} ev/s  ETA {int(eta // 60)}:{int(eta % 60):02d}{self._end}"
        )
        self._out.flush()

    def finish(self, done: int, total: int) -> None:
        self.update(done, total, force=True)
        if self._end == "\r":
            self._out.write("\n")


def _lock_views(conn: Connection, runner: ProjectionRunner) -> None:
    """PostgreSQL: take every table the replay empties first, in one statement, waiting at
    most 200 ms for readers that hold one (``retried`` tries again): the ``TRUNCATE``s then
    wait for nothing while this transaction already holds the fences and the derived facts'
    locks, and a reader is never part of a deadlock with it."""
    if conn.dialect.name != "postgresql":
        return
    tables = [t for p in runner.projections for t in p.tables.values()] + [copies.EVENT_COPIES]
    quote = conn.dialect.identifier_preparer.format_table
    conn.execute(text("SET LOCAL lock_timeout = '200ms'"))
    conn.execute(text(f"LOCK TABLE {', '.join(quote(t) for t in tables)} IN ACCESS EXCLUSIVE"
                      " MODE"))  # fmt: skip


CatchUpFn = Callable[[float, Callable[[int, int], None]], int]


def replay(runner: ProjectionRunner, db: Database, timeout_s: float, out: TextIO,
           catch_up: CatchUpFn | None = None) -> ReplayReport:  # fmt: skip
    """Clear and rebuild the runner's projections; ``runner`` must not be running elsewhere.

    ``catch_up(timeout_s, progress)`` refills them and returns the events it applied (default:
    ``runner.catch_up`` in this process; ``workers.catch_up_in_workers`` with several)."""
    names = [p.name for p in runner.projections]

    def clear() -> None:
        with db.transaction() as conn:
            _lock_views(conn, runner)
            busy = rebuilds.claims(conn)
            if busy:
                raise RuntimeError(
                    "rebuilds are open for " + ", ".join(sorted(busy)) + ": cancel them"
                    " (onevoice rebuild --cancel ID) or let them finish before replaying"
                )
            # Every row stale, every state and sum forgotten — first, so no KPI sum is computed
            # from the views while they are emptied (the catch-up below marks each account
            # again).
            derived.mark_all(conn)
            checkpoints.bump(conn, names, runner.generation)
            for projection in runner.projections:
                projection.clear(conn)
            checkpoints.reset(conn, names, runner.generation)
            dead_letters.clear(conn, names, runner.generation)
            copies.forget(conn, runner.topic)

    retried(clear)
    runner.rewind()
    bar = ProgressBar(out)
    started = time.monotonic()
    total = [0]

    def progress(done: int, of: int) -> None:
        total[0] = of
        bar.update(done, of)

    events = (catch_up or runner.catch_up)(timeout_s, progress)
    seconds = time.monotonic() - started
    bar.finish(total[0], total[0])
    db.analyze()  # the planner's statistics still describe the emptied tables
    with db.reading() as conn:
        rows = {p.name: p.count(conn) for p in runner.projections}
        # Parked by whichever process applied the record (dead letters were cleared above).
        counts = dead_letters.parked_counts(conn, names)
        parked = sum(counts[name]["total"] for name in names) \
            if runner.generation == checkpoints.LIVE_GENERATION else runner.parked  # fmt: skip
    return ReplayReport(events, seconds, parked, rows)
