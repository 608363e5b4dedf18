"""Result rows (figure, its raw limit, the ratio and the goal), the table, JSON and machine info."""

from __future__ import annotations

import json
import os
import platform
import re
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.server import ROOT


@dataclass
class Row:
    """``ratio`` = value / limit. ``goal`` is checked on ``goal_on`` ("value" or "ratio")."""

    metric: str
    value: float
    unit: str
    limit: float | None = None
    limit_name: str = ""
    goal: str = ""
    goal_op: str = ""  # ">=", "<=" or "<"
    goal_target: float | None = None
    goal_on: str = "value"
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.limit is None or self.limit == 0:
            return None
        return self.value / self.limit

    @property
    def met(self) -> bool | None:
        if self.goal_target is None:
            return None
        subject = self.ratio if self.goal_on == "ratio" else self.value
        if subject is None:
            return None
        if self.goal_op == ">=":
            return subject >= self.goal_target
        return subject < self.goal_target if self.goal_op == "<" else subject <= self.goal_target

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ratio"] = None if self.ratio is None else round(self.ratio, 4)
        out["met"] = self.met
        return out


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.2f}" if abs(value) >= 1 else f"{value:.3f}"


def table(rows: list[Row]) -> str:
    """A fixed-width table: metric | value | unit | limit (raw baseline) | ratio | goal | met?"""
    head = ["metric", "value", "unit", "limit (raw baseline)", "ratio", "goal", "met?"]
    body = []
    for r in rows:
        limit = f"{_num(r.limit)} ({r.limit_name})" if r.limit is not None else "—"
        met = {True: "yes", False: "NO", None: ""}[r.met]
        ratio = "—" if r.ratio is None else f"{r.ratio:.2f}"
        body.append([r.metric, _num(r.value), r.unit, limit, ratio, r.goal or "", met])
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(head, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    for line in body:
        cells = [c.rjust(w) if i in (1, 4) else c.ljust(w) for i, (c, w) in
                 enumerate(zip(line, widths, strict=True))]  # fmt: skip
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def phase_table(phases: dict[str, dict[str, Any]]) -> str:
    """Where the time went: wall seconds, CPU seconds per process group, foreign load."""
    lines = ["phase          | wall s | CPU s: bench / server / kafka / postgres | foreign cores"]
    for name, p in phases.items():
        if "wall_s" not in p:
            continue
        cpu = p["cpu_s"]
        parts = " / ".join(
            f"{cpu[k]:.1f}" if k in cpu else "—" for k in ("bench", "server", "kafka", "postgres")
        )
        lines.append(f"{name:<14} | {p['wall_s']:6.1f} | {parts:<40} | {p['foreign_cores']:.2f}")
    return "\n".join(lines)


def kafka_version() -> str:
    pom = (ROOT / "deploy" / "local" / "pom.xml").read_text()
    found = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
    return found.group(1) if found else "unknown"


def _meminfo_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _cgroup_cpus() -> str | None:
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
    except (OSError, ValueError):
        return None
    return None if quota == "max" else f"{int(quota) / int(period):g}"


def machine(pg: dict[str, str]) -> dict[str, Any]:
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cgroup_cpu_limit": _cgroup_cpus(),
        "cpu_model": _cpu_model(),
        "memory_gib": _meminfo_gib(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "kafka_broker": kafka_version(),
        "kafka_python": metadata.version("kafka-python"),
        "psycopg": metadata.version("psycopg"),
        "sqlalchemy": metadata.version("sqlalchemy"),
        "postgres": pg,
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
