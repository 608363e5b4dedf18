"""Rebuilds: a read model rebuilt into a new generation beside the live one, then switched.

A rebuild is a row (``store.REBUILDS``) that any rebuild worker can run: the CLI in the
foreground, or the worker thread of a projector process (``onevoice run``, ``onevoice
projector``) for rebuilds started over HTTP. Its states:

- ``running``: the shadow generation catches up with the live one (resumable: the shadow has
  its own checkpoints; a worker that dies loses its lease and another one, or the restarted
  one, carries on);
- ``verifying``: the live projector is paused (a lease) while the shadow is brought to exactly
  the live positions and both are compared (row counts and an order-independent digest per
  table);
- ``diff``: they differ and the rebuild did not say ``accept_diff``; it waits for the
  operator (accept, which verifies again and switches, or cancel);
- ``switched``: the shadow became the live generation in one transaction (terminal);
- ``failed`` / ``cancelled``: terminal; the shadow is dropped.

Only one rebuild per read model at a time (``store.REBUILD_CLAIMS``).
"""

from __future__ import annotations

from typing import Final, Literal

State = Literal["running", "verifying", "diff", "switched", "failed", "cancelled"]
STATES: Final = ("running", "verifying", "diff", "switched", "failed", "cancelled")
OPEN_STATES: Final = ("running", "verifying", "diff")
"""States that hold the read models' claims (a new rebuild of them is refused)."""


class RebuildConflict(RuntimeError):
    """A read model named by a new rebuild is being rebuilt already."""

    def __init__(self, projection: str, rebuild_id: str) -> None:
        super().__init__(f"{projection} is being rebuilt already by rebuild {rebuild_id}")
        self.projection, self.rebuild_id = projection, rebuild_id


class RebuildStateError(RuntimeError):
    """The operation does not apply to a rebuild in its current state."""
