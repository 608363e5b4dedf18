"""Shared parts of the phases: options, settings per phase, meters, profiling, output."""

from __future__ import annotations

import cProfile
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.report import Row
from bench.stats import Meter, Processes
from services.bootstrap import Services
from services.core.access import new_secret
from services.core.settings import Settings


@dataclass
class Options:
    events: int
    accounts: int
    clients: int
    batch: int
    lag_rate: float
    lag_seconds: float
    partitions: int
    large: int
    query_reps: int
    query_warmup: int
    profile: Path | None
    seed: int = 42
    workers: int = 2
    """Processes of the second replay (``onevoice replay --workers``); 1: no second replay."""


@dataclass
class BenchBase:
    opts: Options
    bootstrap: str
    db_url: str
    workdir: Path
    procs: Processes
    rows: list[Row] = field(default_factory=list)
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    raw_producer: float = 0.0
    raw_consumer: float = 0.0
    raw_pg_insert: float = 0.0
    raw_pg_copy: float = 0.0
    producer_cpu_us: float = 0.0  # CPU µs per event of the bare loops (this process)
    consumer_cpu_us: float = 0.0
    main: Settings = field(init=False)  # the service settings, set by the first phase

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "log_backend": "kafka", "kafka_bootstrap": self.bootstrap,
            "database_url": self.db_url, "topic": f"bench.events-{self.tag}",
            "partitions": self.opts.partitions, "data_dir": self.workdir / "data",
            "run_projector": False, "log_level": "WARNING", "kafka_send_timeout_s": 30,
            "projector_group": f"bench-projector-{uuid.uuid4().hex[:8]}",
            "bootstrap_key": BENCH_KEY, "write_rate": 0,  # the bench measures throughput
        }  # fmt: skip
        values.update(overrides)
        return Settings(**values)

    def group(self, name: str) -> Settings:
        """The service settings with a consumer group of its own for one phase."""
        return self.main.model_copy(update={"projector_group": f"bench-{name}-{self.tag}"})

    def cpu_us(self, meter: Meter, who: str, events: int) -> float:
        """CPU microseconds per event of one process group: unlike events/s, it does not
        depend on what else the machine is running."""
        return meter.cpu_s.get(who, 0.0) / events * 1e6

    def meter(self) -> Meter:
        return Meter(self.procs)

    def record(self, name: str, meter: Meter, **extra: Any) -> None:
        self.phases[name] = {**meter.as_json(), **extra}
        say(f"{name}: {meter.wall_s:.1f}s  cpu {meter.cpu_s}  {extra.get('rate', '')}")

    def _profiled(self, name: str) -> cProfile.Profile | None:
        return cProfile.Profile() if self.opts.profile is not None else None

    def _dump(self, prof: cProfile.Profile | None, name: str) -> None:
        if prof is not None and self.opts.profile is not None:
            prof.dump_stats(self.opts.profile / f"{name}.prof")

    def _server_profile(self, role: str) -> Path | None:
        return None if self.opts.profile is None else self.opts.profile / f"server-{role}.prof"

    # -- data --------------------------------------------------------------------------------


BENCH_KEY = new_secret()
"""The first key of every server the bench starts (every scope); its clients send ``AUTH``."""
AUTH = {"Authorization": f"Bearer {BENCH_KEY}"}


def close(services: Services) -> None:
    """Services.close() leaves open the group consumer that catch_up() created (only
    run_forever drops it); run_forever with ``stop`` already set does just that."""
    stop = threading.Event()
    stop.set()
    services.runner.run_forever(stop)
    services.close()


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
