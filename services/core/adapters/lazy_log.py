"""An event log opened on first use, for a process that must start while the log is down.

The query API needs the log only to check consistency tokens: it starts without it, and a call
made while the log cannot be opened raises ``LogUnavailable`` (the next call tries again).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from services.core.ports import (
    AssignListener,
    EventLog,
    LogConsumer,
    LogUnavailable,
    OutgoingRecord,
)


class LazyLog(EventLog):
    """Delegates every call to the log ``open_log`` returns, opened by the first call.

    Whatever ``open_log`` raises (an unreachable file, a refused connection) surfaces from that
    call as ``LogUnavailable``; nothing is opened by construction or by ``close``."""

    def __init__(self, open_log: Callable[[], EventLog]) -> None:
        self._open_log = open_log
        self._log: EventLog | None = None
        self._lock = threading.Lock()

    def _opened(self) -> EventLog:
        with self._lock:
            if self._log is None:
                try:
                    self._log = self._open_log()
                except LogUnavailable:
                    raise
                except Exception as exc:  # any failure to open means "not now" to the caller
                    raise LogUnavailable(f"opening the log: {exc}") from exc
            return self._log

    def ensure_topic(self, topic: str, partitions: int) -> int:
        return self._opened().ensure_topic(topic, partitions)

    def append(self, topic: str, records: Sequence[OutgoingRecord]) -> list[tuple[int, int]]:
        return self._opened().append(topic, records)

    def end_offsets(self, topic: str) -> dict[int, int]:
        return self._opened().end_offsets(topic)

    def consumer(self, topic: str, group: str, on_assign: AssignListener) -> LogConsumer:
        return self._opened().consumer(topic, group, on_assign)

    def close(self) -> None:
        with self._lock:
            if self._log is not None:
                self._log.close()
                self._log = None
