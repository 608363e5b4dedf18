"""The "rebuild while serving" phase: an online rebuild of every read model into a new
generation while an ``api`` process answers timeline and view reads one at a time; the read
latency during the rebuild beside the same reads before it (idle), in the same run."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import httpx

from bench import views
from bench.base import BenchBase, close, say
from bench.report import Row
from bench.server import AppProcess
from bench.stats import percentile
from services.bootstrap import build


def _reads(base_url: str, paths: Sequence[str], until: threading.Event | None,
           count: int) -> list[float]:  # fmt: skip
    """Milliseconds per GET, cycling through ``paths``: ``count`` of them, or until ``until``."""
    took: list[float] = []
    with httpx.Client(base_url=base_url, timeout=60) as http:
        i = 0
        while (until is None and i < count) or (until is not None and not until.is_set()):
            t0 = time.perf_counter()
            http.get(paths[i % len(paths)]).raise_for_status()
            took.append((time.perf_counter() - t0) * 1000)
            i += 1
    return took


def rebuild_while_serving(bench: BenchBase) -> None:
    o = bench.opts
    large = bench.data.large_account  # type: ignore[attr-defined]
    ids = views.sample_accounts(bench.db_url, 50, large, o.seed)
    paths = [f"/v1/accounts/{large}/timeline?limit=50"]
    paths += [p for a in ids for p in (f"/v1/accounts/{a}/view", f"/v1/accounts/{a}/timeline")]
    services = build(bench.group("rebuild"), run_migrations=False)
    app = AppProcess(bench.main, "api", bench.workdir / "api-rebuild.log", None)
    try:
        with app as url:
            _reads(url, paths, None, 100)  # warm-up
            idle = _reads(url, paths, None, max(300, o.query_reps * 2))
            rebuild = services.rebuilder.start(None)
            done = threading.Event()
            outcome: dict[str, Any] = {}

            def run() -> None:
                try:
                    t0 = time.perf_counter()
                    outcome["rebuild"] = services.rebuilder.run(rebuild.id)
                    outcome["seconds"] = time.perf_counter() - t0
                finally:
                    done.set()

            worker = threading.Thread(target=run, name="bench-rebuild")
            bench.procs.server = app.pid
            with bench.meter() as m:
                worker.start()
                during = _reads(url, paths, done, 0)
                worker.join()
            bench.procs.server = None
    finally:
        close(services)
    result = outcome["rebuild"]
    seconds = outcome["seconds"]
    events = int(result.progress.get("events_applied", 0))
    ratio = percentile(during, 0.99) / percentile(idle, 0.99)
    say(f"rebuild {result.state} in {seconds:.1f}s; reads p99 {percentile(during, 0.99):.1f} ms"
        f" during vs {percentile(idle, 0.99):.1f} ms idle")  # fmt: skip
    bench.record(
        "rebuild_serving", m, state=result.state, seconds=round(seconds, 2), events=events,
        rate=events / seconds if seconds else None,
        verification=(result.report or {}).get("summary"),
        live_paused_s=result.progress.get("live_paused_s"),
        reads_idle=len(idle), reads_during=len(during),
        idle_p50_ms=percentile(idle, 0.5), idle_p99_ms=percentile(idle, 0.99),
        during_p50_ms=percentile(during, 0.5), during_p99_ms=percentile(during, 0.99),
    )  # fmt: skip
    assert result.state == "switched", f"rebuild ended {result.state}: {result.error}"
    bench.rows += [
        Row("rebuild every read model while serving", events / seconds, "events/s",
            None, ""),
        Row(f"  rebuild time ({events:,} events, verify + switch included)", seconds, "s"),
        Row("  live projector paused (final catch-up + verification)",
            float(result.progress.get("live_paused_s") or 0.0), "s"),
        Row(f"  reads p50 during rebuild ({len(during)} req)", percentile(during, 0.5), "ms",
            percentile(idle, 0.5), "idle p50"),
        Row("  reads p99 during rebuild", percentile(during, 0.99), "ms",
            percentile(idle, 0.99), "idle p99", "<= 2x idle", "<=", 2.0, "ratio"),
    ]  # fmt: skip
    bench.phases["rebuild_serving"]["p99_ratio_during_vs_idle"] = round(ratio, 2)
