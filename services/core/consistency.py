"""Consistency tokens: what a client just wrote, so a later read can wait until it is visible.

A token names, per partition, the highest log offset written: ``v1.<partition>-<offset>,...``
(``v1.`` alone for a write that touched nothing new). It is opaque to clients.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping

_PREFIX = "v1."
TOKEN_HEADER = "X-Consistency-Token"
STALE_HEADER = "X-OneVoice-Stale"


def token_for(positions: Iterable[tuple[int, int]]) -> str:
    """The token covering every ``(partition, offset)`` given."""
    highest: dict[int, int] = {}
    for partition, offset in positions:
        highest[partition] = max(highest.get(partition, -1), offset)
    return _PREFIX + ",".join(f"{p}-{o}" for p, o in sorted(highest.items()))


def parse_token(token: str) -> dict[int, int]:
    """``partition -> offset`` from a token; ``ValueError`` when it is not one of ours."""
    if not token.startswith(_PREFIX) or len(token) > 4096:
        raise ValueError("not a consistency token issued by this service")
    positions: dict[int, int] = {}
    body = token[len(_PREFIX) :]
    for part in filter(None, body.split(",")):
        partition, sep, offset = part.partition("-")
        if not sep or not partition.isdigit() or not offset.isdigit():
            raise ValueError("not a consistency token issued by this service")
        positions[int(partition)] = int(offset)
    return positions


def reached(applied: Mapping[int, int], wanted: Mapping[int, int]) -> bool:
    """True when every wanted offset is below the applied next-offset of its partition."""
    return all(applied.get(p, 0) > o for p, o in wanted.items())


class LogEnds:
    """The log's end offsets as last read, to refuse tokens no write of this log could have
    issued. Read again only when a token names something past them (ends only grow), so a
    valid token costs no log round trip once the cache has caught up."""

    def __init__(self, read: Callable[[], dict[int, int]]) -> None:
        self._read = read
        self._ends: dict[int, int] = {}
        self._lock = threading.Lock()

    def _beyond(self, wanted: Mapping[int, int]) -> list[tuple[int, int]]:
        with self._lock:
            return [(p, o) for p, o in wanted.items() if o >= self._ends.get(p, 0)]

    def refresh(self) -> None:
        """Read the ends again (blocking: the log's round trip)."""
        ends = self._read()
        with self._lock:
            self._ends = ends

    def needs_refresh(self, wanted: Mapping[int, int]) -> bool:
        return bool(self._beyond(wanted))

    def problem(self, wanted: Mapping[int, int]) -> str | None:
        """Why ``wanted`` cannot be a token of this log (after ``refresh``), or None."""
        with self._lock:
            ends = dict(self._ends)
        for partition, offset in sorted(wanted.items()):
            if partition not in ends:
                return f"partition {partition} does not exist in this log"
            if offset >= ends[partition]:
                return (
                    f"offset {offset} of partition {partition} is at or past the log's end"
                    f" ({ends[partition]}): not a token of this log"
                )
        return None
