"""The rebuild worker: a projector process's thread that runs rebuilds nobody runs.

Rebuilds started over HTTP (``POST /v1/admin/rebuilds``) are rows; every projector process
(``onevoice run``, ``onevoice projector``) looks for open ones every ``poll_s`` and runs one
whose lease is free: never taken, expired, or held by a process of this host that is gone (so
a rebuild whose worker was killed resumes from its own checkpoints).
"""

from __future__ import annotations

import logging
import threading

from services.core.rebuilds import store
from services.projections.rebuild.engine import RebuildBusy, Rebuilder, UnknownProjection

log = logging.getLogger(__name__)


class RebuildWorker:
    def __init__(self, rebuilder: Rebuilder, poll_s: float = 2.0) -> None:
        self._rebuilder = rebuilder
        self._poll_s = poll_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="rebuild-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._thread = None

    def run_pending(self) -> int:
        """Start the backfill of read models a release added (if nobody did), then run every
        open rebuild this worker can take, one after another; returns how many ran."""
        self._rebuilder.backfill_new()
        with self._rebuilder.db.reading() as conn:
            pending = [r.id for r in store.open_rebuilds(conn) if r.state != "diff"]
        ran = 0
        for rebuild_id in pending:
            if self._stop.is_set():
                break
            try:
                self._rebuilder.run(rebuild_id, stop=self._stop)
                ran += 1
            except (RebuildBusy, UnknownProjection):
                continue  # another worker runs it, or it names read models of a newer version
        return ran

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_pending()
            except Exception:
                log.exception("rebuild worker: looking for rebuilds failed; trying again")
            self._stop.wait(self._poll_s)
