"""``make bench-large``: the same phases at two sizes, and a table of how each figure grows.

``python -m bench.scaling`` runs ``python -m bench`` twice, each in its own process with its
own broker and database (200,000 events over 10,000 accounts, then 1,000,000 events over
100,000 accounts; phases projection, replay, query and view), then writes the scaling table to
``bench-results/scaling-<ts>.md`` and ``.json`` beside the two runs' own results. Each run
measures its raw baselines (producer and consumer loops, bare PostgreSQL inserts) on its own
servers, so a figure's ratio to its run's baseline compares across sizes even when the host's
speed moves between the runs (it does, by up to 1.5–2× on this machine kind).

``--small FILE`` / ``--large FILE`` reuse a result instead of running that size again;
``python -m bench.scaling --small A.json --large B.json`` only writes the table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.base import say
from bench.server import ROOT

PHASES = "projection,replay,query,view"
LISTS = {
    "/v1/accounts?sort=health&limit=50": "accounts?sort=health",
    "/v1/accounts?at_risk=true&limit=50": "accounts?at_risk=true",
    "/v1/reports/coverage?limit=50": "reports/coverage",
}


@dataclass
class Figure:
    """One line of the table: the figure at both sizes, its growth and the goal at the large
    size (``goal_small`` when the issue names another target at the small size)."""

    name: str
    unit: str
    small: float | None
    large: float | None
    goal: str = ""
    op: str = ""  # "<" or ">="
    target: float | None = None
    target_small: float | None = None

    @property
    def growth(self) -> float | None:
        if self.small in (None, 0) or self.large is None:
            return None
        return self.large / self.small

    def met(self, value: float | None, target: float | None) -> bool | None:
        if value is None or target is None:
            return None
        return value < target if self.op == "<" else value >= target

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "growth": self.growth,
                "met_small": self.met(self.small, self.target_small or self.target),
                "met_large": self.met(self.large, self.target)}  # fmt: skip


def _get(result: dict[str, Any], *path: str) -> float | None:
    node: Any = result.get("phases", {})
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return float(node) if isinstance(node, int | float) else None


def _row(result: dict[str, Any], prefix: str) -> float | None:
    for row in result.get("rows", []):
        if row["metric"].startswith(prefix):
            return float(row["value"])
    return None


def _per(result: dict[str, Any], phase: str, who: str, count_key: str) -> float | None:
    cpu, count = _get(result, phase, "cpu_s", who), _get(result, phase, count_key)
    return None if cpu is None or not count else cpu / count * 1e6


def _workers_cpu(result: dict[str, Any]) -> float | None:
    here = _get(result, "replay_2_workers", "cpu_s", "bench")
    children = _get(result, "replay_2_workers", "cpu_s", "workers")
    events = _get(result, "replay_2_workers", "events")
    if here is None or children is None or not events:
        return None
    return (here + children) / events * 1e6


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def figures(small: dict[str, Any], large: dict[str, Any]) -> list[Figure]:
    """Every figure both runs measured (None where a run lacks the phase)."""

    def both(fn: Callable[[dict[str, Any]], float | None]) -> tuple[float | None, float | None]:
        return fn(small), fn(large)

    def replay_1m(r: dict[str, Any]) -> float | None:
        rate = _get(r, "replay", "rate")
        return 1_000_000 / rate if rate else None

    def replay_1m_workers(r: dict[str, Any]) -> float | None:
        rate = _get(r, "replay_2_workers", "rate")
        return 1_000_000 / rate if rate else None

    out = [
        Figure("raw consumer loop (baseline)", "events/s", *both(lambda r: _get(
            r, "raw_consumer", "rate"))),
        Figure("raw producer loop (baseline)", "events/s", *both(lambda r: _get(
            r, "raw_producer", "rate"))),
        Figure("ingest, batch POSTs", "events/s", *both(lambda r: _get(r, "ingest", "rate"))),
        Figure("  ÷ raw producer", "ratio", *both(lambda r: _ratio(
            _get(r, "ingest", "rate"), _get(r, "raw_producer", "rate"))), "≥ 0.6", ">=", 0.6),
        Figure("projection catch-up, every read model", "events/s", *both(lambda r: _get(
            r, "projection", "rate")), "≥ 8,000", ">=", 8000.0),
        Figure("  ÷ raw consumer", "ratio", *both(lambda r: _ratio(
            _get(r, "projection", "rate"), _get(r, "raw_consumer", "rate")))),
        Figure("  CPU per event (projector)", "CPU µs", *both(lambda r: _per(
            r, "projection", "bench", "consumed"))),
        Figure("  health cache fill after the catch-up", "accounts/s", *both(
            lambda r: _get(r, "view", "health_cache_fill", "accounts_per_s"))),
        Figure("replay from offset 0", "events/s", *both(lambda r: _get(r, "replay", "rate"))),
        Figure("  replay of 1,000,000 events (measured at 1M, extrapolated below)", "s",
               *both(replay_1m), "< 120 s", "<", 120.0),
        Figure("  CPU per event (replay)", "CPU µs", *both(lambda r: _per(
            r, "replay", "bench", "events"))),
        Figure("replay with 2 worker processes (views compared equal)", "events/s",
               *both(lambda r: _get(r, "replay_2_workers", "rate"))),
        Figure("  its replay of 1,000,000 events (measured at 1M, extrapolated below)", "s",
               *both(replay_1m_workers), "< 120 s", "<", 120.0),
        Figure("  CPU per event (both workers)", "CPU µs", *both(lambda r: _workers_cpu(r))),
        Figure("timeline of the large account, HTTP p50", "ms", *both(lambda r: _row(
            r, "timeline p50, HTTP"))),
        Figure("timeline of the large account, HTTP p99", "ms", *both(lambda r: _row(
            r, "timeline p99, HTTP")), "< 20 ms", "<", 20.0),
        Figure("  events on the large account", "events", *both(lambda r: _get(
            r, "prepare", "large_account_events"))),
        Figure("one-voice view, HTTP p50", "ms", *both(lambda r: _get(r, "view",
                                                                        "http_p50_ms"))),
        Figure("one-voice view, HTTP p99", "ms", *both(lambda r: _get(r, "view", "http_p99_ms")),
               "< 8 ms", "<", 8.0),
    ]  # fmt: skip
    for path, name in LISTS.items():
        for key, when in (("p99_ms", "right after the fill"),
                          ("vacuumed_p99_ms", "after VACUUM ANALYZE")):  # fmt: skip
            at = (_get(small, "view", "lists", path, key), _get(large, "view", "lists", path, key))
            out.append(Figure(f"{name} p99, {when}", "ms", *at,
                              "< 50 ms at 10k, < 100 ms at 100k", "<", 100.0, 50.0))  # fmt: skip
    return out


def _num(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "ratio":
        return f"{value:.3f}"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"


def _size(result: dict[str, Any]) -> str:
    o = result.get("options", {})
    return f"{o.get('events', 0):,} ev / {o.get('accounts', 0):,} acc"


def markdown(small: dict[str, Any], large: dict[str, Any], names: tuple[str, str],
             rows: list[Figure]) -> str:  # fmt: skip
    met = {True: "yes", False: "NO", None: ""}
    lines = [
        f"# Scaling: {_size(small)} → {_size(large)}", "",
        f"small: `{names[0]}` (code {small.get('code')}), "
        f"large: `{names[1]}` (code {large.get('code')}); each run on its own broker and "
        "database, with its raw baselines measured on them.", "",
        f"| figure | unit | {_size(small)} | {_size(large)} | large ÷ small | goal | met "
        "(small / large) |",
        "|---|---|---:|---:|---:|---|---|",
    ]  # fmt: skip
    for f in rows:
        growth = "—" if f.growth is None else f"{f.growth:.2f}×"
        small_met = met[f.met(f.small, f.target_small or f.target)]
        large_met = met[f.met(f.large, f.target)]
        verdict = f"{small_met} / {large_met}" if f.target is not None else ""
        lines.append(f"| {f.name} | {f.unit} | {_num(f.small, f.unit)} | "
                     f"{_num(f.large, f.unit)} | {growth} | {f.goal} | {verdict} |")  # fmt: skip
    errors = [f"{n}: {r['error']}" for n, r in zip(names, (small, large), strict=True)
              if r.get("error")]  # fmt: skip
    if errors:
        lines += ["", "Runs that failed part-way (their later figures are missing):", "",
                  *(f"- {e}" for e in errors)]  # fmt: skip
    return "\n".join(lines) + "\n"


def run_size(events: int, accounts: int, out: Path, extra: list[str]) -> Path:
    """One ``python -m bench`` run in its own process; its JSON is written even when it fails."""
    cmd = [sys.executable, "-m", "bench", "--events", str(events), "--accounts", str(accounts),
           "--phases", PHASES, "--out", str(out), *extra]  # fmt: skip
    say(f"scaling: {' '.join(cmd[1:])}")
    code = subprocess.run(cmd, cwd=ROOT, check=False).returncode
    if not out.exists():
        raise SystemExit(f"bench run for {events:,} events wrote no result (exit {code})")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--small", type=Path, help="reuse this result as the small size")
    p.add_argument("--large", type=Path, help="reuse this result as the large size")
    p.add_argument("--small-size", default="200000:10000", help="EVENTS:ACCOUNTS")
    p.add_argument("--large-size", default="1000000:100000", help="EVENTS:ACCOUNTS")
    p.add_argument("--out-dir", type=Path, default=ROOT / "bench-results")
    a, extra = p.parse_known_args(argv)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    paths = []
    for given, size, tag in ((a.small, a.small_size, "small"), (a.large, a.large_size, "large")):
        if given is not None:
            paths.append(given)
            continue
        events, accounts = (int(x) for x in size.split(":"))
        paths.append(run_size(events, accounts, a.out_dir / f"bench-{stamp}-{tag}.json", extra))
    small, large = (json.loads(path.read_text()) for path in paths)
    rows = figures(small, large)
    names = (paths[0].name, paths[1].name)
    text = markdown(small, large, names, rows)
    a.out_dir.mkdir(parents=True, exist_ok=True)
    (a.out_dir / f"scaling-{stamp}.md").write_text(text)
    (a.out_dir / f"scaling-{stamp}.json").write_text(json.dumps(
        {"small": names[0], "large": names[1], "figures": [f.as_json() for f in rows]},
        indent=2, ensure_ascii=False) + "\n")  # fmt: skip
    print(text)
    say(f"scaling table: {a.out_dir / f'scaling-{stamp}.md'}")
    return 1 if small.get("error") or large.get("error") else 0


if __name__ == "__main__":
    sys.exit(main())
