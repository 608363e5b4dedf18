"""Dead letters: log records a projection could not apply, parked where an operator sees them.

Contract:
- A record is parked per projection (the others may have applied it) with its position, the raw
  key, value and headers, why (``reason``), the error, when it was first and last seen, and how
  many attempts were made. Parking advances the checkpoint: nothing else waits on it.
- ``reason`` is one of ``REASONS``: ``undecodable`` (null value, not UTF-8, not JSON),
  ``invalid`` (JSON, but not a valid event of this version), ``unsupported`` (an event of a
  newer contract: unknown type, a higher ``schema_version``, unknown fields) and ``failed``
  (decoded, but applying it raised a non-transient error).
- Re-driving applies a parked record to its projection as if it had been applied in log order:
  every read model is keyed so that late application gives the same rows as a pure fold
  (insert-once by event id, or newest-by-(occurred_at, partition, offset) wins).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Reason = Literal["undecodable", "invalid", "unsupported", "failed"]
REASONS: tuple[Reason, ...] = ("undecodable", "invalid", "unsupported", "failed")
State = Literal["parked", "redriven"]
STATES: tuple[State, ...] = ("parked", "redriven")


@dataclass
class RedriveReport:
    """What a re-drive did: ids re-applied, still failing (with their new error), skipped."""

    redriven: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        return {
            "redriven": len(self.redriven),
            "still_failing": len(self.failed),
            "redriven_ids": self.redriven,
            "failures": [{"id": k, "error": v} for k, v in sorted(self.failed.items())],
        }
