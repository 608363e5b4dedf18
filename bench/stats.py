"""Small measurement helpers: percentiles, CPU seconds of processes, system CPU busy share."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (``share`` in 0..1) of a non-empty sample."""
    if not values:
        raise ValueError("no samples")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-share * len(ordered) // 1))))
    return ordered[rank - 1]


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # fields from 'state' on (index 0 = field 3)


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds of the given processes (0 for those gone)."""
    total = 0.0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def tree_cpu_seconds(parent: int) -> float:
    """CPU seconds of a process, its reaped children (cutime/cstime) and its live children:
    continuous while backends come and go (enough for a postmaster and its backends)."""
    fields = _stat_fields(parent)
    if fields is None:
        return 0.0
    total = sum(int(x) for x in fields[11:15]) / TICK
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            child = _stat_fields(int(entry.name))
            if child is not None and int(child[1]) == parent:
                total += (int(child[11]) + int(child[12])) / TICK
    return total


def system_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    return sum(parts) - idle, sum(parts)


def children_cpu() -> float:
    """User + system CPU seconds of this process's children that have been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Processes:
    """Where to look for CPU use: the broker, the postmaster, the current server subprocess."""

    broker: int | None = None
    postmaster: int | None = None
    server: int | None = None

    def sample(self) -> dict[str, float]:
        out = {"bench": own_cpu()}
        if self.server is not None:  # with its children: `run`'s projector process
            out["server"] = tree_cpu_seconds(self.server)
        if self.broker is not None:
            out["kafka"] = cpu_seconds([self.broker])
        if self.postmaster is not None:
            out["postgres"] = tree_cpu_seconds(self.postmaster)
        return out


@dataclass
class Meter:
    """Wall time, CPU seconds per process group and system busy share over one phase."""

    procs: Processes
    wall_s: float = 0.0
    cpu_s: dict[str, float] = field(default_factory=dict)
    busy_share: float = 0.0
    busy_cpu_s: float = 0.0
    _t0: float = 0.0
    _cpu0: dict[str, float] = field(default_factory=dict)
    _sys0: tuple[int, int] = (0, 0)

    def __enter__(self) -> Meter:
        self._cpu0 = self.procs.sample()
        self._sys0 = system_ticks()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_s = time.perf_counter() - self._t0
        after = self.procs.sample()
        self.cpu_s = {k: round(v - self._cpu0.get(k, 0.0), 2) for k, v in after.items()}
        busy, total = system_ticks()
        spent = total - self._sys0[1]
        self.busy_share = (busy - self._sys0[0]) / spent if spent > 0 else 0.0
        self.busy_cpu_s = (busy - self._sys0[0]) / TICK

    def as_json(self) -> dict[str, object]:
        return {
            "wall_s": round(self.wall_s, 3),
            "cpu_s": self.cpu_s,
            "cores_busy": round(self.busy_share * (os.cpu_count() or 1), 2),
            "foreign_cores": round(self.foreign_cores, 2),
        }

    @property
    def foreign_cores(self) -> float:
        """Cores busy with processes this run did not start (other jobs on the machine, kernel)."""
        ours = sum(self.cpu_s.values())
        return max(0.0, self.busy_cpu_s - ours) / self.wall_s if self.wall_s > 0 else 0.0
