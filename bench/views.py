"""The issue-4 figures: projection throughput with every read model vs timeline-only, and
one-voice view reads.

- ``timeline_only_rate``: the same catch-up as the projection phase, on a fresh database of the
  same PostgreSQL server, with only AccountTimeline in the runner. Measured in the same run as
  the all-models catch-up, so the ratio compares like with like.
- ``view_latency``: ``GET /v1/accounts/{id}/view`` for accounts drawn from every account (the
  large account included), over HTTP and in-process; plus the health-sorted accounts list, the
  ``at_risk`` list and the coverage report, which evaluate every account's health per request.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any
from unittest.mock import patch
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import Connection, select, text

from bench.base import AUTH, close
from services.bootstrap import build, migrate, projections
from services.core.adapters import sql
from services.core.adapters.sql import Database
from services.core.readmodels import accounts, view
from services.core.readmodels.timeline import to_micros
from services.core.settings import Settings
from services.core.view_rules import AsOf
from services.projections import base
from services.projections.runner import ProjectionRunner
from services.projections.timeline import AccountTimeline
from tests import backends


def table_digests(url: str) -> dict[str, tuple[int, str]]:
    """Rows and content digest of every table of every read model (``base.table_digests``)."""
    db = Database(url)
    try:
        with db.reading() as conn:
            return base.table_digests(conn, projections())
    finally:
        db.dispose()


def table_writes(url: str) -> dict[str, dict[str, int]]:
    """PostgreSQL's counters of rows inserted, updated (HOT: without index writes) and deleted
    per table since the server started (``pg_stat_user_tables``), and index scans."""
    db = Database(url)
    try:
        with db.reading() as conn:
            rows = conn.execute(text(
                "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del, idx_scan"
                " FROM pg_stat_user_tables"
            ))  # fmt: skip
            return {r[0]: {"inserted": r[1], "updated": r[2], "hot_updated": r[3],
                           "deleted": r[4], "index_scans": r[5] or 0} for r in rows}  # fmt: skip
    finally:
        db.dispose()


def writes_between(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]],
                   top: int = 15) -> dict[str, dict[str, int]]:  # fmt: skip
    """The ``top`` tables by rows written between two ``table_writes``, busiest first."""
    delta = {t: {k: v - before.get(t, {}).get(k, 0) for k, v in counts.items()}
             for t, counts in after.items()}  # fmt: skip
    busy = sorted(delta.items(), key=lambda kv: -(kv[1]["inserted"] + kv[1]["updated"]
                                                  + kv[1]["deleted"]))  # fmt: skip
    return {t: c for t, c in busy[:top] if c["inserted"] + c["updated"] + c["deleted"]}


def timeline_only_rate(settings: Settings, server_url: str) -> tuple[float, int, float]:
    """(events/s, events, seconds) of a timeline-only catch-up into a fresh database."""
    with backends.fresh_database(server_url) as url:
        db = Database(url)
        migrate(db)
        db.dispose()
        services = build(settings.model_copy(update={"database_url": url}), run_migrations=False)
        runner = ProjectionRunner(
            services.container.log, services.container.db, settings.topic, [AccountTimeline()],
            group=settings.projector_group, batch_size=settings.projector_batch,
            idle_s=settings.projector_idle_s,
        )  # fmt: skip
        try:
            t0 = time.perf_counter()
            consumed = runner.catch_up(3600)
            seconds = time.perf_counter() - t0
        finally:
            services.runner = runner
            close(services)
    return consumed / seconds, consumed, seconds


def sample_accounts(db_url: str, count: int, large: str, seed: int) -> list[str]:
    """``count`` account ids drawn uniformly from the directory, plus the large account."""
    db = Database(db_url)
    try:
        with db.reading() as conn:
            a = accounts.TABLES.accounts.c
            every = list(conn.execute(select(a.account_id).order_by(a.name_key, a.account_id))
                         .scalars())  # fmt: skip
    finally:
        db.dispose()
    return [large, *random.Random(seed).sample(every, min(count, len(every)))]


def http_ms(base_url: str, paths: Sequence[str], rounds: int, warmup: int) -> list[float]:
    """Milliseconds per GET, one at a time, after ``warmup`` rounds."""
    took: list[float] = []
    with httpx.Client(base_url=base_url, timeout=60, headers=AUTH) as http:
        for round_no in range(warmup + rounds):
            for path in paths:
                t0 = time.perf_counter()
                answer = http.get(path)
                elapsed = (time.perf_counter() - t0) * 1000
                answer.raise_for_status()
                if round_no >= warmup:
                    took.append(elapsed)
    return took


def inprocess_view_ms(db_url: str, ids: Sequence[str], rounds: int, tz: str
                      ) -> tuple[list[float], list[float]]:  # fmt: skip
    """The same views through ``read_view`` directly (no HTTP): as the service reads them (one
    round trip on PostgreSQL, ``sql.read_together``), and interleaved with that, the baseline of
    the same reads one statement after another (``conn.execute`` each, as before 2026-12-03).
    Milliseconds per view: (service, one after another)."""
    db = Database(db_url)
    took: tuple[list[float], list[float]] = ([], [])
    try:
        for round_no in range(rounds):
            for n, account_id in enumerate(ids):
                for which in (0, 1) if (round_no + n) % 2 else (1, 0):
                    as_of = AsOf(to_micros(datetime.now(UTC)), ZoneInfo(tz))
                    with one_after_another() if which else nullcontext():
                        t0 = time.perf_counter()
                        with db.reading() as conn:
                            found = view.read_view(conn, account_id, as_of)
                        took[which].append((time.perf_counter() - t0) * 1000)
                    assert found is not None
    finally:
        db.dispose()
    return took


@contextmanager
def one_after_another() -> Iterator[None]:
    """``read_together`` as the view's reads ran before it: each statement through
    ``conn.execute``, the next sent once the answer to the last is in."""

    def each(conn: Connection, statements: Sequence[tuple[Any, dict[str, Any]]]
             ) -> list[list[Any]]:  # fmt: skip
        return [list(conn.execute(s, p).all()) for s, p in statements]

    with patch.object(sql, "read_together", each):  # what read_view calls
        yield


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def inprocess_lists_ms(db_url: str, settings: Settings, rounds: int) -> dict[str, list[float]]:
    """The lists and the coverage report of ``view`` read in this process (no HTTP, no JSON):
    milliseconds per read, after one warm-up round."""
    from services.bootstrap import as_of_now
    from services.core.readmodels import account_health, coverage

    def now() -> AsOf:
        return as_of_now(settings, lambda: datetime.now(UTC))

    below = settings.at_risk_below
    reads: dict[str, Callable[[Any], object]] = {
        "/v1/accounts?sort=health&limit=50": lambda c: account_health.read_accounts(
            c, accounts.AccountQuery(sort="health", limit=50), now(), at_risk=None, below=below),
        "/v1/accounts?at_risk=true&limit=50": lambda c: account_health.read_accounts(
            c, accounts.AccountQuery(limit=50), now(), at_risk=True, below=below),
        "/v1/reports/coverage?limit=50": lambda c: coverage.read_coverage(c, now(), 50),
    }  # fmt: skip
    db = Database(db_url)
    took: dict[str, list[float]] = {}
    try:
        for path, read in reads.items():
            for round_no in range(rounds + 1):
                t0 = time.perf_counter()
                with db.reading() as conn:
                    read(conn)
                if round_no:
                    took.setdefault(path, []).append((time.perf_counter() - t0) * 1000)
    finally:
        db.dispose()
    return took


def vacuum_analyze(db_url: str) -> float:
    """``VACUUM ANALYZE`` of the whole database (outside a transaction); seconds it took."""
    db = Database(db_url)
    try:
        t0 = time.perf_counter()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
        return time.perf_counter() - t0
    finally:
        db.dispose()
