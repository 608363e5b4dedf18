"""The health refresher: keeps ``health_cache`` ahead of the reads that sort and filter on
health (the accounts list, the coverage report).

Each pass takes the stale rows for the clock's now — accounts a batch just changed, and those
whose next time-driven change has come (``valid_until_us``) — most overdue first, evaluates them
with the same rules a read would (``account_health.evaluate``) and stores each result unless a
batch changed that account meanwhile (``health_cache.store`` compares the stamp read before the
facts). Reads never wait for it: a row it has not refreshed is evaluated by the read itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from services.core.adapters.sql import Database
from services.core.readmodels import account_health, health_cache
from services.core.view_rules import AsOf

log = logging.getLogger(__name__)


class HealthRefresher:
    def __init__(self, db: Database, as_of: Callable[[], AsOf], *, batch: int = 500,
                 idle_s: float = 1.0) -> None:  # fmt: skip
        self._db = db
        self._as_of = as_of
        self._batch = batch
        self._idle_s = idle_s
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._adopt_at = 0.0

    def refresh_once(self) -> int:
        """Evaluate up to one batch of stale rows; returns how many were stale."""
        as_of = self._as_of()
        if time.monotonic() >= self._adopt_at:
            # Accounts that reached the directory without the projector's marking (none are
            # expected; a read evaluates them meanwhile): once a minute, not every pass.
            with self._db.transaction() as conn:
                health_cache.adopt(conn)
            self._adopt_at = time.monotonic() + 60
        with self._db.reading() as conn:
            stale = health_cache.stale_rows(conn, as_of, self._batch)
        if not stale:
            return 0
        stamps = dict(stale)
        with self._db.reading() as conn:  # after the stamps were read: see health_cache.store
            found = account_health.evaluate(conn, list(stamps), as_of, by="refresher")
        with self._db.transaction() as conn:
            health_cache.store(conn, {a: (stamps[a], e) for a, e in found.items()}, as_of)
        return len(stale)

    def refresh_all(self) -> int:
        """Refresh until nothing is stale for the clock's now (tests, ``onevoice`` tools)."""
        total = 0
        while (n := self.refresh_once()) > 0:
            total += n
        return total

    def run_forever(self, stop: threading.Event) -> None:
        backoff = 0.1
        while not stop.is_set():
            try:
                n = self.refresh_once()
                backoff = 0.1
            except Exception:
                log.exception("health refresh failed; retrying in %.1fs", backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if n < self._batch:
                stop.wait(self._idle_s)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self.run_forever, args=(self._stop,),
                                        name="health-refresh", daemon=True)  # fmt: skip
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
