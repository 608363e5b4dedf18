"""Consistency tokens: what a client just wrote, so a later read can wait until it is visible.

A token names, per partition, the highest log offset written: ``v1.<partition>-<offset>,...``
(``v1.`` alone for a write that touched nothing new). It is opaque to clients.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping

from services.core.ports import LogUnavailable

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
    valid token costs no log round trip once the cache has caught up.

    After a read failed with ``LogUnavailable``, ``refresh`` raises it again at once for
    ``retry_after_s`` without asking the log: while the log is down (the query API runs without
    it), a read carrying a token does not wait on the log's timeout every time."""

    def __init__(
        self,
        read: Callable[[], dict[int, int]],
        *,
        retry_after_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._ends: dict[int, int] = {}
        self._lock = threading.Lock()
        self._retry_after_s = retry_after_s
        self._clock = clock
        self._failed_at: float | None = None

    def _beyond(self, wanted: Mapping[int, int]) -> list[tuple[int, int]]:
        with self._lock:
            return [(p, o) for p, o in wanted.items() if o >= self._ends.get(p, 0)]

    def refresh(self) -> None:
        """Read the ends again (blocking: the log's round trip); ``LogUnavailable`` when the
        log cannot answer, or did not a moment ago."""
        failed_at = self._failed_at
        if failed_at is not None and self._clock() - failed_at < self._retry_after_s:
            raise LogUnavailable("the log did not answer a moment ago")
        try:
            ends = self._read()
        except LogUnavailable:
            self._failed_at = self._clock()
            raise
        with self._lock:
            self._ends = ends
            self._failed_at = None

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
