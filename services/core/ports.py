"""Ports: the small interfaces the services depend on. Adapters live in ``core/adapters``.

The event log is shaped like Kafka so the Kafka adapter drops in unchanged: topics split into
partitions, a record's key picks its partition (murmur2, as Kafka's default partitioner), each
partition is an append-only sequence of integer offsets, and a consumer is told which partitions
it owns and where to start reading them.

This module imports only the stdlib.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    """A record to append: ``key`` selects the partition."""

    key: bytes
    value: bytes
    headers: Headers = ()


@dataclass(frozen=True, slots=True)
class LogRecord:
    """A record read back from the log (``value`` is None for a tombstone a foreign producer
    wrote)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    headers: Headers = field(default=())


class LogUnavailable(RuntimeError):
    """The log could not durably append or read right now; the caller may retry later."""


class StoreUnavailable(RuntimeError):
    """The database could not be reached or answered with a connection-level error."""


class LogMisconfigured(RuntimeError):
    """The log exists but is set up in a way that would lose data (e.g. finite retention)."""


AssignListener = Callable[[Sequence[int]], Mapping[int, int]]
"""Called with newly assigned partitions; returns the offset to resume each from.

Partitions missing from the answer are read from the beginning.
"""


class LogConsumer(ABC):
    """One member of a consumer group reading one topic."""

    @abstractmethod
    def poll(self, max_records: int, timeout_s: float) -> list[LogRecord]:
        """Up to ``max_records`` records, in offset order within each partition.

        Waits at most ``timeout_s`` when nothing is available; may return an empty list.
        Assignment changes (and so calls to the listener) happen only inside ``poll``. An
        exception the listener raises is raised from ``poll`` (which then returns nothing), and
        the listener is asked again by a later ``poll`` before any record of its partitions is
        returned.
        """

    @abstractmethod
    def assignment(self) -> frozenset[int]:
        """The partitions this member owns now."""

    @abstractmethod
    def positions(self) -> dict[int, int]:
        """Per partition owned, the offset the next ``poll`` reads from. After a poll it may
        lie past the last record returned: offsets that hold nothing a reader can see
        (transaction markers, aborted records) are passed over."""

    @abstractmethod
    def seek(self, partition: int, offset: int) -> None:
        """Read ``partition`` from ``offset`` on (an owned partition), without leaving the
        group."""

    def commit(self, next_offsets: Mapping[int, int]) -> None:  # noqa: B027 - optional hook
        """Report progress to the log for lag tooling. The database stays the truth."""

    @abstractmethod
    def close(self) -> None:
        """Leave the group and release resources."""


class EventLog(ABC):
    """A durable, partitioned, append-only log."""

    @abstractmethod
    def ensure_topic(self, topic: str, partitions: int) -> int:
        """Create the topic if missing (infinite retention); return its partition count."""

    @abstractmethod
    def append(self, topic: str, records: Sequence[OutgoingRecord]) -> list[tuple[int, int]]:
        """Append records durably; return ``(partition, offset)`` for each, in order.

        Returns only once every record is durable. Raises ``LogUnavailable`` otherwise, in which
        case some records may still have been appended (callers retry with the same event ids).
        """

    @abstractmethod
    def end_offsets(self, topic: str) -> dict[int, int]:
        """The next offset to be written, per partition (Kafka: the high watermark, which
        includes records of transactions still open)."""

    @abstractmethod
    def consumer(self, topic: str, group: str, on_assign: AssignListener) -> LogConsumer:
        """Join ``group`` on ``topic``; ``on_assign`` says where assigned partitions start."""

    @abstractmethod
    def close(self) -> None:
        """Flush and release resources."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """What ingest remembers of an event id: the body digest and, once appended, its position."""

    event_id: str
    digest: str
    position: tuple[int, int] | None


class ReceiptStore(ABC):
    """Idempotency keys for ingest: the first body seen for an event id wins."""

    @abstractmethod
    def claim(self, claims: Mapping[str, str]) -> dict[str, Receipt]:
        """Record ``event_id -> digest`` for ids not seen before.

        Returns the earlier receipts of ids that were already claimed (those were not changed).
        """

    @abstractmethod
    def confirm(self, positions: Mapping[str, tuple[int, int]]) -> None:
        """Store the log position of claimed ids once appended."""

    @abstractmethod
    def release(self, event_ids: Sequence[str]) -> None:
        """Forget claims whose append failed, so a retry starts afresh."""

    @abstractmethod
    def highest_positions(self) -> dict[int, int]:
        """``partition -> highest offset`` named by any receipt."""


Clock = Callable[[], datetime]
"""Now, as an aware datetime; tests substitute a fixed clock."""
