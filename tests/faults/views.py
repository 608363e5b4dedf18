"""What the fault tests hold the read models to: digests equal to a fresh pure fold of the same
log, checkpoints at the log's end, no dead letters, each event id once on its timelines."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select, text

from services.bootstrap import migrate, projections
from services.core import codec
from services.core.adapters.sql import Database
from services.core.codec import StoredEvent
from services.core.deadletters.store import DEAD_LETTERS
from services.core.ports import EventLog
from services.core.readmodels import checkpoints, timeline
from services.projections.base import _canonical
from services.projections.runner import ProjectionRunner
from tests import backends

Digests = dict[str, dict[str, str]]


def wait_until(
    condition: Callable[[], object], timeout_s: float, what: str,
    detail: Callable[[], str] = lambda: "",
) -> None:  # fmt: skip
    """Poll ``condition`` every 50 ms; after ``timeout_s`` fail the test naming ``what``, with
    ``detail()`` (e.g. the tail of a process's output) appended."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}\n{detail()}")
        time.sleep(0.05)


def digests(db: Database) -> Digests:
    """The digest of every read model: ``{projection: {table: sha256}}``."""
    with db.reading() as conn:
        return {p.name: p.digest(conn) for p in projections()}


def pure_fold(log: EventLog, topic: str, folder: Path, timeout_s: float = 120) -> Database:
    """A new SQLite database filled by one runner reading ``topic`` from offset 0."""
    fold = Database(f"sqlite:///{folder / 'pure-fold.sqlite3'}")
    migrate(fold)
    runner = ProjectionRunner(log, fold, topic, projections(), group=backends.unique("pure-fold"))
    try:
        runner.catch_up(timeout_s)
    finally:
        runner.close()
    assert runner.parked == 0, f"the pure fold itself parked {runner.parked} records"
    return fold


def assert_same_views(db: Database, fold: Database) -> None:
    """Every read model of ``db`` equals the pure fold's, table by table (rows shown on
    failure: the ones only one side holds)."""
    ours, theirs = digests(db), digests(fold)
    if ours == theirs:
        return
    report = []
    for projection in projections():
        for name, table in projection.tables.items():
            if ours[projection.name][name] == theirs[projection.name][name]:
                continue
            with db.reading() as conn:
                mine = Counter(_canonical(r) for r in conn.execute(select(table)).mappings())
            with fold.reading() as conn:
                pure = Counter(_canonical(r) for r in conn.execute(select(table)).mappings())
            only_ours, only_fold = mine - pure, pure - mine
            report.append(
                f"{projection.name}.{name} ({table.name}): {sum(only_ours.values())} rows only"
                f" in the faulted views, {sum(only_fold.values())} only in the pure fold"
                f"\n  faulted: {sorted(only_ours)[:3]}\n  pure:    {sorted(only_fold)[:3]}"
            )
    raise AssertionError("read models differ from a pure fold of the log:\n" + "\n".join(report))


def dead_letters(db: Database) -> list[dict[str, Any]]:
    """Every parked record (``SELECT ... FROM dead_letters``), for the failure message."""
    d = DEAD_LETTERS.c
    with db.reading() as conn:
        count = conn.execute(text("SELECT count(*) FROM dead_letters")).scalar_one()
        rows = conn.execute(select(d.projection, d.partition, d.offset, d.event_type, d.reason,
                                   d.error_class, d.error_message)).mappings()  # fmt: skip
        found = [dict(r) for r in rows]
    assert count == len(found)
    return found


def applied(db: Database, topic: str) -> dict[int, int]:
    """Per partition, the next offset every read model has applied (the slowest one's)."""
    names = [p.name for p in projections()]
    with db.reading() as conn:
        return checkpoints.load_slowest(conn, names, checkpoints.LIVE_GENERATION, topic)


def at_log_end(db: Database, log: EventLog, topic: str) -> bool:
    """True when every read model's checkpoint of every partition equals the log's end."""
    end = log.end_offsets(topic)
    done = applied(db, topic)
    return all(done.get(p, 0) == o for p, o in end.items())


def assert_checkpoints_at_log_end(db: Database, log: EventLog, topic: str) -> None:
    end = log.end_offsets(topic)
    with db.reading() as conn:
        for projection in projections():
            done = checkpoints.load(conn, projection.name, checkpoints.LIVE_GENERATION, topic)
            stored = {p: done.get(p, 0) for p in end}
            assert stored == end, f"{projection.name} checkpoints {stored} != log end {end}"


def read_log(log: EventLog, topic: str, timeout_s: float = 60) -> list[StoredEvent]:
    """Every record of ``topic`` from offset 0 to its current end, decoded, in log order per
    partition (copies included)."""
    end = {p: o for p, o in log.end_offsets(topic).items() if o > 0}
    consumer = log.consumer(topic, backends.unique("reader"), lambda parts: {p: 0 for p in parts})
    found: dict[int, dict[int, StoredEvent]] = {p: {} for p in end}
    deadline = time.monotonic() + timeout_s
    try:
        while any(len(found[p]) < o for p, o in end.items()):
            got = {p: len(r) for p, r in found.items()}
            assert time.monotonic() < deadline, f"read {got} of {end} records in {timeout_s} s"
            # A rebalance seeks back to 0 and delivers records again: keep one per offset.
            for record in consumer.poll(10_000, 0.5):
                if record.offset < end.get(record.partition, 0):
                    found[record.partition][record.offset] = codec.decode(record)
    finally:
        consumer.close()
    return [found[p][o] for p in sorted(found) for o in sorted(found[p])]


def first_copies(records: list[StoredEvent]) -> dict[str, StoredEvent]:
    """Each event id's first copy in the log (copies of one id share a partition)."""
    first: dict[str, StoredEvent] = {}
    for event in records:
        first.setdefault(event.event_id, event)
    return first


def timeline_accounts(db: Database) -> dict[str, list[str]]:
    """``event_id -> sorted account ids`` whose timeline lists it (a repeat would show twice)."""
    e = timeline.TABLES.entries
    listed: dict[str, list[str]] = {}
    with db.reading() as conn:
        for account_id, event_id in conn.execute(select(e.c.account_id, e.c.event_id)):
            listed.setdefault(event_id, []).append(account_id)
    return {event_id: sorted(accounts) for event_id, accounts in listed.items()}


def assert_each_id_once_on_its_timelines(db: Database, records: list[StoredEvent]) -> None:
    """No gap, no repeat: every event id of the log is listed exactly once on the timeline of
    its account and of each related account (of its first copy), and nothing else is listed."""
    expected = {
        event_id: sorted([e.event.account_id, *e.event.related_account_ids])
        for event_id, e in first_copies(records).items()
    }
    listed = timeline_accounts(db)
    missing = sorted(set(expected) - set(listed))
    unknown = sorted(set(listed) - set(expected))
    wrong = sorted(i for i in set(expected) & set(listed) if expected[i] != listed[i])
    assert not (missing or unknown or wrong), (
        f"{len(missing)} log ids missing from the timelines (e.g. {missing[:3]}), "
        f"{len(unknown)} listed ids not in the log (e.g. {unknown[:3]}), {len(wrong)} listed on"
        f" other accounts than expected (e.g. {[(i, listed[i], expected[i]) for i in wrong[:3]]})"
    )
