"""The issue-11 figures: each leaders' report over HTTP (an ``api`` process) at this run's
size, beside the same read in-process (no HTTP) in the same run. Goal: p99 < 100 ms.

Before the reads, the refresher fills what a running projector keeps (the health cache and the
state history: every account's state at past period ends), timed; the KPI report is also read
in-process with neither, as every request did before them (the baseline beside its figure)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bench import views
from bench.base import BenchBase
from bench.report import Row
from bench.server import AppProcess
from bench.stats import percentile
from services.bootstrap import as_of_now
from services.core.adapters.sql import Database
from services.core.readmodels import kpi_figures, leadership, state_figures, state_history
from services.core.readmodels.reports import complaints, handoffs, kpi, roster, voice
from services.core.settings import Settings
from services.core.view_rules import AsOf
from services.projections import derived
from services.projections.health_refresh import HealthRefresher

Read = Callable[[Any, AsOf], object]


def _window(as_of: AsOf, days: int) -> tuple[int, int]:
    return as_of.now_us - days * 86_400_000_000, as_of.now_us


REPORTS: dict[str, tuple[str, int, Read]] = {
    # name: (path, rounds, the same read in-process)
    "leadership (7 days)": ("/v1/reports/leadership", 20, lambda c, a: leadership.read_report(
        c, *_window(a, 7), roster.load(c, a))),
    "voice (7 days)": ("/v1/reports/voice", 20, lambda c, a: voice.read_voice(
        c, voice.VoiceQuery(*_window(a, 7)))),
    "complaints (8 weeks)": ("/v1/reports/complaints", 20, lambda c, a: complaints.read_complaints(
        c, complaints.ComplaintQuery(*_window(a, 56)), a)),
    "handoffs (30 days)": ("/v1/reports/handoffs", 20, lambda c, a: handoffs.read_handoffs(
        c, handoffs.HandoffQuery(*_window(a, 30)), a)),
    "kpi (4 weeks, department)": ("/v1/reports/kpi", 20, lambda c, a: kpi.read_kpi(
        c, kpi.KpiQuery(*_window(a, 28)), a, ("sales", "marketing", "support", "success",
                                              "leadership"))),
    "employees (executives)": ("/v1/employees?executive=true", 20,
                               lambda c, a: roster.load(c, a)),
}  # fmt: skip


def _now(settings: Settings) -> AsOf:
    """Now under the server's rules (the caches answer only for the rules they were made
    under: the default ``Policy()`` differs from the settings', e.g. the executive titles)."""
    return as_of_now(settings, lambda: datetime.now(UTC))


def _inprocess(db_url: str, settings: Settings, read: Read, rounds: int) -> list[float]:
    db = Database(db_url)
    took: list[float] = []
    try:
        for _ in range(rounds):
            as_of = _now(settings)
            t0 = time.perf_counter()
            with db.reading() as conn:
                read(conn, as_of)
            took.append((time.perf_counter() - t0) * 1000)
    finally:
        db.dispose()
    return took


class _Rollback(Exception):
    pass


def _kpi_rolled_back(db_url: str, settings: Settings, rounds: int,
                     before: Callable[[Any, AsOf], None]) -> list[float]:  # fmt: skip
    """The KPI report in-process, each round in a transaction that ``before`` prepares and
    that is then rolled back."""
    db = Database(db_url)
    took: list[float] = []
    try:
        for _ in range(rounds):
            as_of = _now(settings)
            try:
                with db.transaction() as conn:
                    before(conn, as_of)
                    t0 = time.perf_counter()
                    REPORTS["kpi (4 weeks, department)"][2](conn, as_of)
                    took.append((time.perf_counter() - t0) * 1000)
                    raise _Rollback
            except _Rollback:
                pass
    finally:
        db.dispose()
    return took


def _kpi_without_history(db_url: str, settings: Settings, rounds: int) -> list[float]:
    """The KPI report in-process with every health row stale and no state kept (rolled back):
    every account evaluated at every period's end."""
    return _kpi_rolled_back(db_url, settings, rounds, lambda conn, _: derived.mark_all(conn))


def _kpi_after_a_batch(db_url: str, settings: Settings, rounds: int) -> list[float]:
    """The KPI report in-process after a batch of events at now (rolled back): the kept
    figures of the periods that batch changes are gone (``kpi_figures.forget``: the current
    week's and month's, and an ended period's whose follow-up window is open), so the request
    counts those itself — what every request does under a steady stream of events."""
    return _kpi_rolled_back(db_url, settings, rounds,
                            lambda conn, as_of: kpi_figures.forget(conn, as_of.now_us))  # fmt: skip


def _fill(bench: BenchBase) -> dict[str, Any]:
    """What a running projector's refresher keeps, filled now (a replay before this phase
    emptied both); returns its figures."""
    db = Database(bench.db_url)
    try:
        refresher = HealthRefresher(db, lambda: _now(bench.main),
                                    history=(bench.main.kpi_history_weeks,
                                             bench.main.kpi_history_months))  # fmt: skip
        t0 = time.perf_counter()
        health = refresher.refresh_all(history=False)
        t1 = time.perf_counter()
        stored = refresher.refresh_all()  # the states, then their sums per grouping
        t2 = time.perf_counter()
        with db.reading() as conn:
            kept, sums = state_history.counts(conn), state_figures.counts(conn)
            periods = kpi_figures.counts(conn)
    finally:
        db.dispose()
    states = stored - sums - periods if stored >= sums + periods else stored
    return {"health_rows": health, "health_s": round(t1 - t0, 2), "states": states,
            "states_s": round(t2 - t1, 2), "states_kept": kept, "sums_kept": sums,
            "kpi_periods_kept": periods,
            "states_per_s": round(states / (t2 - t1), 1) if states else None}  # fmt: skip


def reports_phase(bench: BenchBase) -> None:
    baseline = _kpi_without_history(bench.db_url, bench.main, 2)
    filled = _fill(bench)
    app = AppProcess(bench.main, "api", bench.workdir / "api-reports.log", None)
    http: dict[str, list[float]] = {}
    with app as url, bench.meter() as m:
        for name, (path, rounds, _) in REPORTS.items():
            http[name] = views.http_ms(url, [path], rounds, 1)
    local = {name: _inprocess(bench.db_url, bench.main, read, rounds)
             for name, (_, rounds, read) in REPORTS.items()}  # fmt: skip
    after_batch = _kpi_after_a_batch(bench.db_url, bench.main, 20)
    detail = {name: {"http_p50_ms": percentile(http[name], 0.5),
                     "http_p99_ms": percentile(http[name], 0.99),
                     "inprocess_p50_ms": percentile(local[name], 0.5),
                     "inprocess_p99_ms": percentile(local[name], 0.99),
                     "requests": len(http[name])}
              for name in REPORTS}  # fmt: skip
    bench.record("reports", m, reports=detail, fill=filled,
                 kpi_without_history_inprocess_ms=[round(x, 1) for x in baseline],
                 kpi_after_a_batch_inprocess_ms=[round(x, 1) for x in after_batch])  # fmt: skip
    for name, d in detail.items():
        bench.rows.append(Row(
            f"report {name} p99, HTTP ({d['requests']} req)", d["http_p99_ms"], "ms",
            d["inprocess_p99_ms"], "in-process", "< 100 ms", "<", 100.0))  # fmt: skip
    bench.rows.append(Row("  kpi without the state history, in-process p50", percentile(
        baseline, 0.5), "ms"))  # fmt: skip
    for q in (0.5, 0.99):
        bench.rows.append(Row(f"  kpi after a batch (current periods counted), in-process"
                              f" p{round(q * 100)}", percentile(after_batch, q), "ms"))  # fmt: skip
    if filled["states"]:
        bench.rows.append(Row(f"  state history fill ({filled['states']} states)",
                              filled["states_per_s"], "states/s"))  # fmt: skip
