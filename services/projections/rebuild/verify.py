"""Compare a rebuild's shadow generation with the live one at the same log positions.

Per table: row counts and an order-independent content digest (``base.fingerprint``); where
they differ, how many rows exist only in the live table, only in the shadow, or differ in
content, and a few sample primary keys of each, so an operator can see what a code change did.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection

from services.projections.base import Projection, digest_of, fingerprint

SAMPLES = 5


def compare(
    conn: Connection,
    pairs: Sequence[tuple[Projection, Projection]],
    positions: Mapping[int, int],
    tick: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """``pairs`` of (live, shadow) projections, read through ``conn`` (one snapshot).

    Returns ``{"result": "equal" | "different", "positions": ..., "summary": text,
    "projections": {name: {table: {...}}}}``; ``tick`` is called after each table (the caller
    renews its leases there)."""
    out: dict[str, Any] = {}
    differences: list[str] = []
    for live, shadow in pairs:
        tables: dict[str, Any] = {}
        for key, live_table in live.tables.items():
            theirs = fingerprint(conn, live_table, tick)
            ours = fingerprint(conn, shadow.tables[key], tick)
            tables[key] = entry = _compare_table(theirs, ours)
            if not entry["equal"]:
                differences.append(
                    f"{live.name}.{key}: live {entry['live_rows']} rows, rebuilt"
                    f" {entry['rebuilt_rows']} ({entry['only_live']} only live,"
                    f" {entry['only_rebuilt']} only rebuilt, {entry['changed']} changed)"
                )
            if tick is not None:
                tick()
        out[live.name] = tables
    return compare_report(out, differences, positions, nothing=not pairs)


def compare_report(out: dict[str, Any], differences: list[str], positions: Mapping[int, int],
                   *, nothing: bool) -> dict[str, Any]:  # fmt: skip
    result = "different" if differences else "equal"
    summary = "equal: every table has the same rows" if not differences else "; ".join(differences)
    if nothing:
        summary = "no live generation to compare with"
    return {
        "result": result,
        "positions": {str(p): o for p, o in sorted(positions.items())},
        "summary": summary,
        "projections": out,
    }


def _compare_table(live: Mapping[tuple[Any, ...], str],
                   rebuilt: Mapping[tuple[Any, ...], str]) -> dict[str, Any]:  # fmt: skip
    live_digest, rebuilt_digest = digest_of(live), digest_of(rebuilt)
    entry: dict[str, Any] = {
        "equal": live_digest == rebuilt_digest,
        "live_rows": len(live),
        "rebuilt_rows": len(rebuilt),
        "live_digest": live_digest,
        "rebuilt_digest": rebuilt_digest,
        "only_live": 0,
        "only_rebuilt": 0,
        "changed": 0,
        "samples": [],
    }
    if entry["equal"]:
        return entry
    only_live = [k for k in live if k not in rebuilt]
    only_rebuilt = [k for k in rebuilt if k not in live]
    changed = [k for k, h in live.items() if k in rebuilt and rebuilt[k] != h]
    entry.update(only_live=len(only_live), only_rebuilt=len(only_rebuilt), changed=len(changed))
    for kind, keys in (("only live", only_live), ("only rebuilt", only_rebuilt),
                       ("changed", changed)):  # fmt: skip
        entry["samples"] += [{"kind": kind, "key": [_plain(v) for v in k]}
                             for k in sorted(keys, key=repr)[:SAMPLES]]  # fmt: skip
    return entry


def _plain(value: Any) -> Any:
    return value if isinstance(value, int | str) or value is None else str(value)


def compare_nothing(positions: Mapping[int, int]) -> dict[str, Any]:
    """The report of a rebuild with no live generation to compare with (a backfill)."""
    return compare_report({}, [], positions, nothing=True)
