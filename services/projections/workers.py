"""Catch up with several worker processes: one consumer group splits the partitions.

The fold is CPU-bound Python, and one process applies a batch while PostgreSQL waits, then
waits while PostgreSQL writes it: one core at a time. ``catch_up_in_workers`` starts
``workers - 1`` child processes (``onevoice catch-up-worker``) beside the calling
runner, all in the runner's consumer group, so Kafka gives each a share of the partitions and
they apply batches at the same time. How far the work is comes from the database, not from any
one member: every read model's stored checkpoint at or past the log's end (as of the start) on
every partition. Each member stops once that holds.

Nothing depends on which member applies what: each batch commits its view rows with its
checkpoints (a member that takes over a partition after a rebalance resumes from the stored
checkpoint), writes to another account's rows take that account's lock, and a member that dies
leaves its partitions to the others after the group notices (``session.timeout.ms``, the
setting ``kafka_session_timeout_s``). A child that fails is reported; the others finish its
partitions.

Only on Kafka (``ONEVOICE_LOG_BACKEND=kafka``) with PostgreSQL: the embedded log has one member
per group and SQLite one writer.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from services.core.adapters.sql import Database, is_transient
from services.core.readmodels import checkpoints, generations
from services.core.settings import Settings
from services.projections.runner import ProjectionRunner

log = logging.getLogger(__name__)

LOOK_S = 0.5
"""How often a member reads the stored checkpoints to see whether the work is done."""
CHILD_EXIT_S = 60.0
"""How long the caller waits for its children to leave the group once the work is done."""

Progress = Callable[[int, int], None]


class Stopped(RuntimeError):
    """A member was asked to stop (its parent is gone) before the work was done."""


@dataclass
class CatchUp:
    """What ``catch_up_in_workers`` did: the records up to the log's end as of the start
    (``events``), the records the calling process consumed itself, and the children's exits."""

    events: int
    consumed_here: int
    workers: int
    child_exits: list[int | None] = field(default_factory=list)

    @property
    def failed_children(self) -> int:
        return sum(1 for code in self.child_exits if code != 0)


def supported(settings: Settings) -> str | None:
    """Why several workers cannot run on these settings; None when they can."""
    if settings.log_backend != "kafka":
        return "several workers need Kafka (ONEVOICE_LOG_BACKEND=kafka): the embedded log" \
            " gives every partition to one member"  # fmt: skip
    if not settings.resolved_database_url().startswith("postgresql"):
        return "several workers need PostgreSQL (ONEVOICE_DATABASE_URL): SQLite has one writer"
    return None


def stored_progress(runner: ProjectionRunner, db: Database, target: Mapping[int, int]) -> int:
    """Records applied by every read model the runner applies, summed over ``target``'s
    partitions and capped at the target: the stored checkpoints, whichever member wrote them.
    Read models waiting for their backfill (live generation only) are not waited for."""
    names = [p.name for p in runner.projections]
    with db.reading() as conn:
        if runner.generation == checkpoints.LIVE_GENERATION:
            waiting = generations.not_built(conn, names)
            names = [n for n in names if n not in waiting]
        stored = checkpoints.load_many(conn, names, runner.generation, runner.topic)
    return sum(
        min([offset, *(stored.get(name, {}).get(part, 0) for name in names)])
        for part, offset in target.items()
    )  # fmt: skip


def drive(
    runner: ProjectionRunner,
    db: Database,
    target: Mapping[int, int],
    timeout_s: float,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    first: Callable[[int], None] | None = None,
) -> int:
    """Apply the batches this member is given until every partition's stored checkpoints reach
    ``target``; returns the records this member consumed. Errors that say the database or the
    log cannot work right now (a deadlock with another member, a lost connection) are retried
    with backoff; others propagate. Raises ``TimeoutError`` past ``timeout_s`` and ``Stopped``
    when ``stop`` is set first. ``first(records)`` is called after this member's first batch
    with records."""
    total = sum(target.values())
    deadline = time.monotonic() + timeout_s
    consumed, backoff, look_at = 0, 0.1, 0.0
    while True:
        now = time.monotonic()
        if now >= look_at:
            done = stored_progress(runner, db, target)
            if progress is not None:
                progress(done, total)
            if done >= total:
                return consumed
            look_at = now + LOOK_S
        if stop is not None and stop.is_set():
            raise Stopped("asked to stop before the work was done")
        if now > deadline:
            raise TimeoutError(f"the workers did not reach {dict(target)} in {timeout_s}s;"
                               f" this member: {runner.diagnostics()}")  # fmt: skip
        try:
            got = runner.run_once()
            if got and not consumed and first is not None:
                first(got)
            consumed += got
            backoff = 0.1
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("catch-up batch failed (%s: %s); retrying in %.1fs",
                        type(exc).__name__, exc, backoff)  # fmt: skip
            time.sleep(backoff)
            backoff = min(backoff * 2, 5.0)


def _child_command(target: Mapping[int, int], timeout_s: float) -> list[str]:
    return [sys.executable, "-m", "services", "catch-up-worker",
            "--target", json.dumps({str(p): o for p, o in target.items()}),
            "--timeout", str(timeout_s), "--parent", str(os.getpid())]  # fmt: skip


def catch_up_in_workers(
    runner: ProjectionRunner,
    db: Database,
    settings: Settings,
    workers: int,
    timeout_s: float,
    progress: Progress | None = None,
) -> CatchUp:
    """Bring every read model of ``runner`` to the log's end (as of the call) with ``workers``
    processes: this one (with ``runner``) and ``workers - 1`` children built from ``settings``
    (the settings that built ``runner``: same topic, database, and consumer group)."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    target = runner.log_end()
    if workers == 1:
        return CatchUp(sum(target.values()), runner.catch_up(timeout_s, progress), 1)
    why_not = supported(settings)
    if why_not is not None:
        raise ValueError(why_not)
    if settings.projector_group != runner.group:
        raise ValueError(f"settings name group {settings.projector_group!r}, the runner"
                         f" {runner.group!r}: the workers must share one group")  # fmt: skip
    # More members than partitions with records would only idle (and make the group rebalance
    # each time an idle member rejoins).
    workers = min(workers, max(1, len(target)))
    runner.check_fence()
    env = settings.environment()
    children: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(workers - 1):
            # A session of their own: a Ctrl-C reaches the caller, which stops them in order
            # (and a child sees its parent gone within WATCH_S otherwise).
            children.append(subprocess.Popen(_child_command(target, timeout_s), env=env,
                                             start_new_session=True))  # fmt: skip
        consumed = drive(runner, db, target, timeout_s, progress)
    except BaseException:
        for child in children:
            child.terminate()
        for child in children:
            _wait(child, CHILD_EXIT_S)
        raise
    runner.close()  # leave the group at once: the children need not wait on a rebalance
    exits = [_wait(child, CHILD_EXIT_S) for child in children]
    for code in exits:
        if code != 0:
            log.warning("a catch-up worker exited with %s; the others applied its partitions",
                        code)  # fmt: skip
    return CatchUp(sum(target.values()), consumed, workers, exits)


def _wait(child: subprocess.Popen[bytes], timeout_s: float) -> int | None:
    try:
        return child.wait(timeout_s)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        return None


def parse_target(text: str) -> dict[int, int]:
    """``--target``'s JSON ``{"partition": offset}`` (what ``_child_command`` writes)."""
    return {int(p): int(o) for p, o in json.loads(text).items()}


def work(runner: ProjectionRunner, db: Database, target: Mapping[int, int], timeout_s: float,
         stop: threading.Event) -> int:  # fmt: skip
    """A child's life (``onevoice catch-up-worker``): ``drive`` until the work is done; exit
    status 0 when it is, 1 when asked to stop first."""
    try:
        consumed = drive(runner, db, target, timeout_s, stop=stop,
                         first=lambda n: log.info("catch-up worker %d: first batch applied"
                                                  " (%d records)", os.getpid(), n))  # fmt: skip
    except Stopped as exc:
        log.warning("catch-up worker %d: %s", os.getpid(), exc)
        return 1
    log.info("catch-up worker %d done: consumed %d records", os.getpid(), consumed)
    return 0
