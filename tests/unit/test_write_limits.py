"""The per-key token bucket (``access.limits``) with a hand-driven clock."""

from __future__ import annotations

from services.core.access import Grant
from services.core.access.limits import WriteLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_up_to_the_batch_size_then_the_rate() -> None:
    clock = Clock()
    limiter = WriteLimiter(default_rate=10, burst=50, clock=clock)
    crm = Grant("crm", frozenset({"sales"}))
    assert limiter.take(crm, 50) is None  # a full batch at once
    assert limiter.take(crm, 1) == 1  # empty: one event needs 0.1 s, answered in whole seconds
    clock.now += 0.5
    assert limiter.take(crm, 5) is None  # 5 tokens refilled
    assert limiter.take(crm, 50) == 5  # refused whole: nothing taken
    clock.now += 5
    assert limiter.take(crm, 50) is None
    clock.now += 3600
    assert limiter.take(crm, 51) == 1  # never more than the burst at once... (unreachable: a
    # batch holds at most the burst) and the bucket never fills past it


def test_keys_have_their_own_buckets_and_rates() -> None:
    clock = Clock()
    limiter = WriteLimiter(default_rate=1, burst=2, clock=clock)
    slow, fast = Grant("slow", frozenset({"sales"})), Grant("fast", frozenset({"sales"}),
                                                            write_rate=100)  # fmt: skip
    unlimited = Grant("bulk", frozenset({"sales"}), write_rate=0)
    assert limiter.take(slow, 2) is None and limiter.take(slow, 1) == 1
    assert limiter.take(fast, 100) is None  # its burst is its rate when that is larger
    assert all(limiter.take(unlimited, 10_000) is None for _ in range(10))
    assert limiter.rate_of(slow) == 1 and limiter.rate_of(fast) == 100


def test_no_default_limit() -> None:
    limiter = WriteLimiter(default_rate=0, burst=500, clock=Clock())
    assert all(limiter.take(Grant("any", frozenset({"sales"})), 500) is None for _ in range(100))
