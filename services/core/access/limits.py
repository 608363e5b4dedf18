"""Per-key write rate limits: a token bucket per key name, in each serving process.

A key may write ``rate`` events per second (its own ``write_rate``, else
``ONEVOICE_WRITE_RATE``; 0: no limit) with bursts up to ``ONEVOICE_MAX_BATCH`` events (so any
valid batch fits once the bucket has refilled). A request that would overdraw the bucket is
refused whole — nothing of it is appended — with the seconds until it would fit
(``Retry-After``). The buckets live in each process: with N ingest processes behind a load
balancer a key may write up to N times its rate.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from services.core.access import Grant


class WriteLimiter:
    def __init__(self, default_rate: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self._default = default_rate
        self._burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key name -> (tokens, at)
        self._lock = threading.Lock()

    def rate_of(self, grant: Grant) -> float:
        """Events per second the key may write (0: no limit)."""
        return self._default if grant.write_rate is None else grant.write_rate

    def take(self, grant: Grant, events: int) -> int | None:
        """Take ``events`` from the key's bucket: None when they fit (taken), else the whole
        seconds until they would (nothing taken)."""
        rate = self.rate_of(grant)
        if rate <= 0:
            return None
        capacity = max(float(self._burst), rate)
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(grant.name, (capacity, now))
            tokens = min(capacity, tokens + (now - at) * rate)
            if events <= tokens:
                self._buckets[grant.name] = (tokens - events, now)
                return None
            self._buckets[grant.name] = (tokens, now)
        return max(1, math.ceil((min(events, capacity) - tokens) / rate))

    def give_back(self, grant: Grant, events: int) -> None:
        """Return what ``take`` took for a request that appended nothing (refused, or the
        log was unavailable): a retry is not charged twice."""
        rate = self.rate_of(grant)
        if rate <= 0:
            return
        capacity = max(float(self._burst), rate)
        with self._lock:
            tokens, at = self._buckets.get(grant.name, (capacity, self._clock()))
            self._buckets[grant.name] = (min(capacity, tokens + events), at)
