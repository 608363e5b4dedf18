"""``python -m bench [--events N] [--quick] …``: start Kafka + PostgreSQL, run every phase, report.

Servers: a KRaft broker and a PostgreSQL (fsync on) from deploy/local via tests.backends, or the
ones named by BENCH_KAFKA_BOOTSTRAP / BENCH_PG_URL (a database is created on that server and
dropped afterwards).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bench.base import Options, say
from bench.phases import Bench
from bench.report import machine, phase_table, table, write_json
from bench.stats import Processes
from tests import backends

OPTIONAL = ("timeline_only", "projection", "lag", "replay", "query", "view", "reports",
            "rebuild_serving")  # fmt: skip


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, Options]:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument(
        "--events",
        type=int,
        default=int(os.environ.get("BENCH_EVENTS", 200_000)),
        help="events to generate and post (default 200000; env BENCH_EVENTS)",
    )
    p.add_argument("--accounts", type=int, default=10_000)
    p.add_argument("--large", type=int, help="events of the large account (default ≥5000)")
    p.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients for ingest")
    p.add_argument("--batch", type=int, default=500, help="events per batch POST")
    p.add_argument("--partitions", type=int, default=12)
    p.add_argument("--workers", type=int, default=2, help="processes of the second replay"
                   " (onevoice replay --workers; its views are compared with the first's);"
                   " 1 skips it")  # fmt: skip
    p.add_argument("--lag-rate", type=float, default=200.0, help="events/s in the lag phase")
    p.add_argument("--lag-seconds", type=float, help="lag phase length (default 15; quick 5)")
    p.add_argument("--query-reps", type=int, help="measured rounds per query variant (100)")
    p.add_argument("--out", type=Path, help="JSON file (default bench-results/bench-<ts>.json)")
    p.add_argument("--quick", action="store_true", help="smoke run: 20000 events")
    p.add_argument("--profile", type=Path, help="write cProfile stats of servers and phases here")
    p.add_argument("--phases", help="comma-separated phases to run after prepare, raw_limits and"
                   f" ingest (default: all of {', '.join(OPTIONAL)}), e.g. projection,view"
                   " for the lists at another account count")  # fmt: skip
    a = p.parse_args(argv)
    n = 20_000 if a.quick else a.events
    large = a.large if a.large is not None else min(n // 4, max(5000, n // 40))
    opts = Options(
        events=n, accounts=a.accounts, clients=a.clients, batch=a.batch,
        lag_rate=a.lag_rate, lag_seconds=a.lag_seconds or (5.0 if a.quick else 15.0),
        partitions=a.partitions, large=large,
        query_reps=a.query_reps or (50 if a.quick else 100), query_warmup=20,
        profile=a.profile, workers=max(1, a.workers),
    )  # fmt: skip
    if opts.profile is not None:
        opts.profile.mkdir(parents=True, exist_ok=True)
        opts.profile = opts.profile.resolve()
    return a, opts


PG_SIZING = {"PG_SHARED_BUFFERS": "4GB", "PG_MAX_WAL_SIZE": "16GB",
             "PG_CHECKPOINT_TIMEOUT": "15min"}  # fmt: skip
"""With ``BENCH_PG_SIZED=1``, the bench's PostgreSQL is sized as a server taking this write
rate would be (a quarter of this machine's memory; checkpoints by time, not every few seconds
by WAL volume: with the defaults, 128MB and 1GB, the 1,000,000-event replay checkpointed
every 2-4 s). By default it runs PostgreSQL's defaults, as every result before 2026-12-03 did:
back to back at 200,000 events the sizing changed nothing beyond the host's drift (README)."""


def servers(stack: ExitStack) -> tuple[str, str, Processes]:
    """(bootstrap, database URL, processes to meter); the servers live as long as ``stack``."""
    procs = Processes()
    bootstrap = os.environ.get("BENCH_KAFKA_BOOTSTRAP")
    if not bootstrap:
        kdir = stack.enter_context(backends.workdir("bench-kafka"))
        say("starting the Kafka broker (deploy/local/kafka-up.sh)")
        bootstrap = stack.enter_context(backends.kafka_server(kdir))
        procs.broker = _pid(kdir / "kafka.pid")
    given_pg = os.environ.get("BENCH_PG_URL")
    if given_pg:
        server_url = given_pg.rsplit("/", 1)[0]
    else:
        pdir = stack.enter_context(backends.workdir("bench-pg"))
        sizing = PG_SIZING if os.environ.get("BENCH_PG_SIZED") else {}
        for name, value in sizing.items():
            os.environ.setdefault(name, value)  # read by pg-up.sh
        say(f"starting PostgreSQL (deploy/local/pg-up.sh, fsync on, {sizing or 'its defaults'})")
        server_url = stack.enter_context(backends.postgres_server(pdir))
        procs.postmaster = _pid(pdir / "data" / "postmaster.pid")
    db_url = stack.enter_context(backends.fresh_database(server_url))
    return bootstrap, db_url, procs


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def pg_facts(db_url: str) -> dict[str, str]:
    plain = db_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as conn:
        facts = {
            k: str(conn.execute(f"SHOW {k}").fetchone()[0])  # type: ignore[index]
            for k in ("server_version", "fsync", "synchronous_commit", "shared_buffers",
                      "wal_level", "max_wal_size", "checkpoint_timeout")
        }  # fmt: skip
    return facts


def _code() -> str:
    """The commit measured (with ``+changes`` when the work tree differs from it)."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + ("+changes" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    args, opts = parse(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.ERROR)
    started, stamp = time.perf_counter(), datetime.now().strftime("%Y%m%d-%H%M%S")
    out: Path = args.out or Path("bench-results") / f"bench-{stamp}.json"
    say(f"N={opts.events:,} accounts={opts.accounts:,} clients={opts.clients} "
        f"batch={opts.batch} partitions={opts.partitions} -> {out}")  # fmt: skip
    with ExitStack() as stack:
        try:
            bootstrap, db_url, procs = servers(stack)
        except (pytest.skip.Exception, pytest.fail.Exception) as exc:
            print(f"bench: a backend is unavailable: {exc}", file=sys.stderr)
            return 2
        setup_s = time.perf_counter() - started
        work = stack.enter_context(backends.workdir("bench-run"))
        bench = Bench(opts, bootstrap, db_url, work, procs)
        phases_run: list[str] = []
        error: str | None = None
        try:
            wanted = OPTIONAL if args.phases is None else args.phases.split(",")
            unknown = set(wanted) - set(OPTIONAL)
            if unknown:
                raise ValueError(f"unknown phases {sorted(unknown)}; choose from {OPTIONAL}")
            chosen = [getattr(bench, name) for name in OPTIONAL if name in wanted]
            for phase in (bench.prepare, bench.raw_limits, bench.ingest, *chosen):
                say(f"phase {phase.__name__}")
                phase()
                phases_run.append(phase.__name__)
        except Exception as exc:  # report what was measured, then fail
            error = f"{type(exc).__name__}: {exc}"
            say(f"FAILED in phase after {phases_run}: {error}; server logs in {work}")
            for log in sorted(work.glob("*.log")):
                print(f"--- {log.name} (tail)\n{log.read_text()[-3000:]}", file=sys.stderr)
        facts = pg_facts(db_url)
    total = time.perf_counter() - started
    result: dict[str, Any] = {
        "started": stamp, "code": _code(), "total_s": round(total, 1),
        "servers_setup_s": round(setup_s, 1),
        "error": error, "options": {**asdict(opts), "profile": str(opts.profile or "")},
        "external_servers": {"kafka": bool(os.environ.get("BENCH_KAFKA_BOOTSTRAP")),
                             "postgres": bool(os.environ.get("BENCH_PG_URL"))},
        "machine": machine(facts), "phases": bench.phases,
        "rows": [r.as_json() for r in bench.rows],
        "notes": [
            "ratio = value / limit; limits are measured in this run on the same broker/database",
            f"PostgreSQL fsync={facts.get('fsync')}, synchronous_commit="
            f"{facts.get('synchronous_commit')}; Kafka single KRaft broker, replication 1",
            "all processes (broker, PostgreSQL, server, load generator) share this machine",
            "timeline latency includes HTTP (httpx client -> uvicorn, one request at a time)",
            "lag: open-loop single POSTs, counted from the scheduled post time to the first"
            " timeline read (probe account via related_account_ids) that shows the event",
            "CPU µs/event figures do not depend on other load; events/s figures do (see"
            " foreign_cores per phase)",
        ],
    }  # fmt: skip
    write_json(out, result)
    print(table(bench.rows))
    print()
    print(phase_table(bench.phases))
    print(f"\nN={opts.events:,}  total {total:.0f}s (servers {setup_s:.0f}s)  "
          f"nproc={result['machine']['nproc']}  PostgreSQL fsync={facts.get('fsync')}  "
          f"JSON: {out}")  # fmt: skip
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main())
