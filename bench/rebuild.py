"""The "rebuild while serving" phase: an online rebuild of every read model into a new
generation (``onevoice rebuild --all`` in its own process, as an operator runs it) while an
``api`` process answers timeline and view reads one at a time; the read latency during the
rebuild beside the same reads before it (idle), in the same run."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import httpx

from bench import views
from bench.base import AUTH, BenchBase, say
from bench.report import Row
from bench.server import ROOT, AppProcess, settings_env
from bench.stats import percentile
from services.core.adapters.sql import Database
from services.core.rebuilds import store


def _reads(base_url: str, paths: Sequence[str], until: threading.Event | None,
           count: int) -> list[float]:  # fmt: skip
    """Milliseconds per GET, cycling through ``paths``: ``count`` of them, or until ``until``."""
    took: list[float] = []
    with httpx.Client(base_url=base_url, timeout=60, headers=AUTH) as http:
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
    settings = bench.group("rebuild")
    app = AppProcess(bench.main, "api", bench.workdir / "api-rebuild.log", None)
    outcome: dict[str, Any] = {}
    with app as url:
        _reads(url, paths, None, 100)  # warm-up
        idle = _reads(url, paths, None, max(300, o.query_reps * 2))
        done = threading.Event()
        log_path = bench.workdir / "rebuild.log"

        def run() -> None:
            try:
                t0 = time.perf_counter()
                with log_path.open("wb") as sink:
                    outcome["exit"] = subprocess.run(
                        [sys.executable, "-m", "services", "rebuild", "--all"], cwd=ROOT,
                        env=settings_env(settings), stdout=subprocess.PIPE, stderr=sink,
                        timeout=3600, check=False,
                    )  # fmt: skip
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
    answer = outcome["exit"]
    assert answer.returncode == 0, f"rebuild exited {answer.returncode}: see {log_path}"
    rebuild_id = json.loads(answer.stdout.decode().strip().splitlines()[-1])["id"]
    db = Database(bench.db_url)
    try:
        with db.reading() as conn:
            found = store.get(conn, rebuild_id)
    finally:
        db.dispose()
    assert found is not None
    outcome["rebuild"] = found
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
        Row("  live projector paused (final catch-ups + switch)",
            float(result.progress.get("live_paused_s") or 0.0), "s"),
        Row(f"  reads p50 during rebuild ({len(during)} req)", percentile(during, 0.5), "ms",
            percentile(idle, 0.5), "idle p50"),
        Row("  reads p99 during rebuild", percentile(during, 0.99), "ms",
            percentile(idle, 0.99), "idle p99", "<= 2x idle", "<=", 2.0, "ratio"),
    ]  # fmt: skip
    bench.phases["rebuild_serving"]["p99_ratio_during_vs_idle"] = round(ratio, 2)
