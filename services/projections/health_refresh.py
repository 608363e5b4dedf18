"""The health refresher: keeps ``health_cache`` ahead of the reads that sort and filter on
health (the accounts list, the coverage report), and, when that is caught up, the state history
(``state_history``: every account's state at the last weeks' and months' ends, which the KPI
report reads), and when that is complete, the KPI report's sums of those states per group at
each end (``state_figures``), then the KPI report's figures of whole periods (``kpi_figures``:
the current week and month and those of the kept ends, each grouping).

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
from dataclasses import replace
from typing import TypeVar

from sqlalchemy import Connection

from services.core.adapters.sql import Database, is_systemic, is_transient
from services.core.readmodels import (
    account_health,
    health_cache,
    kpi_figures,
    state_figures,
    state_history,
)
from services.core.readmodels.health_cache import Entry
from services.core.readmodels.reports import kpi, kpi_states
from services.core.readmodels.reports.periods import Span
from services.core.readmodels.state_history import State
from services.core.view_rules import AsOf

log = logging.getLogger(__name__)
T = TypeVar("T", Entry, State)
SKIP_FAILED_S = 600.0
"""How long the state history passes over an account whose evaluation failed."""
SUM_EVALUATES_UP_TO = 20
"""How many accounts lacking a kept state a sum evaluates itself (under the lock that keeps
batches waiting) before it leaves the end to the state history's fill."""
PERIODS_AGAIN_S = 30.0
"""How soon the refresher computes a period's KPI figures again after it last did: a batch
deletes those of the current periods (``kpi_figures``), and under a steady stream of events
recomputing them after every batch would keep a core busy for figures no one reads."""


class HealthRefresher:
    def __init__(self, db: Database, as_of: Callable[[], AsOf], *, batch: int = 500,
                 idle_s: float = 1.0, history: tuple[int, int] = (6, 3),
                 at_risk_below: int = 60,
                 periods_again_s: float = PERIODS_AGAIN_S) -> None:  # fmt: skip
        self._db = db
        self._as_of = as_of
        self._batch = batch
        self._idle_s = idle_s
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._adopt_at = 0.0
        self._weeks, self._months = history
        self._failed: dict[str, float] = {}  # account -> monotonic time to try it again
        self._history_done: tuple[str, tuple[int, ...]] | None = None  # (rules, ends) complete
        self._read_to: dict[int, str] = {}
        """Per end, the last account the history fill was given: the next lookup reads on
        from there, and starts over from the first account once it finds nothing after it."""
        self._complete: set[tuple[str, int]] = set()
        """(rules, end) whose lookup from the first account found nothing missing: not looked
        up again on the passes that fill the next ends, until an account changes."""
        self._history_recheck_at = 0.0
        self._at_risk_below = at_risk_below
        self._figures_retry_at = 0.0
        self._sums_waiting = False  # the last pass left sums to keep for lack of the lock
        self._periods_again_s = periods_again_s
        # (start, end, grouping) -> the monotonic time before which it is not computed again
        self._period_at: dict[tuple[int, int, str], float] = {}
        self.stored = 0  # by the last pass
        self.passed_over = 0  # accounts the last pass could not evaluate (state history)

    def refresh_once(self, *, history: bool = True) -> int:
        """Evaluate up to one batch of stale rows or, when none is stale (and ``history``), of
        accounts missing from the state history; returns how many were taken."""
        as_of = self._as_of()
        self.passed_over = 0
        if time.monotonic() >= self._adopt_at:
            # Accounts that reached the directory without the projector's marking (none are
            # expected; until then the lists that join the cache leave them out), and states
            # of ends no longer kept: once a minute, not every pass.
            with self._db.transaction() as conn:
                health_cache.adopt(conn)
                state_history.prune(conn, self._ends(as_of), as_of)
                state_figures.prune(conn, self._ends(as_of),
                                    state_figures.key(health_cache.policy_key(as_of)),
                                    self._at_risk_below)  # fmt: skip
                kpi_figures.prune(conn, [(p.start_us, p.end_us) for p in self.periods(as_of)],
                                  kpi_figures.key(health_cache.policy_key(as_of)),
                                  self._at_risk_below, as_of.now_us)  # fmt: skip
            self._adopt_at = time.monotonic() + 60
        with self._db.transaction() as conn:
            claimed = health_cache.claim(conn, as_of, self._batch)
        if not claimed.stamps:
            if history:
                return self._fill_history(as_of)
            self.stored = 0
            return 0
        self._history_done = None  # these accounts changed: their past states may be gone
        self._complete.clear()
        found = self._evaluate(sorted(claimed.stamps), as_of)
        with self._db.transaction() as conn:
            self.stored = health_cache.store(conn, claimed, found, as_of)
        return len(claimed.stamps)

    def _ends(self, as_of: AsOf) -> list[int]:
        return state_history.ends(as_of, self._weeks, self._months)

    def _fill_history(self, as_of: AsOf) -> int:
        """One batch of accounts missing at the latest end that has any (their health rows are
        fresh: the health cache comes first). An account whose evaluation failed is passed
        over for ``SKIP_FAILED_S`` (the KPI report evaluates it, and fails, as before the
        history), so it holds back neither the others nor the older ends."""
        self.stored = self.passed_over = 0
        now = time.monotonic()
        ends = self._ends(as_of)
        checked = (health_cache.policy_key(as_of), tuple(ends))
        if self._history_done == checked and now < self._history_recheck_at:
            return 0  # nothing was missing, and no account changed since

        self._failed = {a: until for a, until in self._failed.items() if until > now}
        for end in ends:
            found = self._missing(end, as_of)
            stamps = {a: found[a] for a in sorted(found)}
            if not stamps:
                continue
            at_end = replace(as_of, now_us=end)
            states = self._isolated(
                sorted(stamps),
                lambda conn, ids, at=at_end: state_history.evaluate(conn, ids, at),  # type: ignore[misc]
                alone_too=True,
            )
            failed = stamps.keys() - states.keys()
            self._failed.update(dict.fromkeys(failed, now + SKIP_FAILED_S))
            self.passed_over = len(failed)
            with self._db.transaction() as conn:
                self.stored = state_history.store(conn, end, as_of, states, stamps)
            return len(stamps)
        if not self._failed:  # an account passed over would be evaluated under the lock
            self._sums_waiting = False
            self.stored = self._keep_figures(as_of, ends)
            if not self.stored and not self._sums_waiting:
                self.stored = self._keep_periods(as_of)
            if self.stored or self._sums_waiting:
                return self.stored  # not "nothing missing": the next pass tries again
        # Nothing missing: look again when an account changes (a health pass finds it stale),
        # a period ends, the rules change, or in a minute (accounts passed over, other
        # refreshers), not on every idle pass (each end's lookup is an anti-join over the
        # directory).
        self._history_done, self._history_recheck_at = checked, now + 60
        self._complete.clear()  # the next look (a minute on, or a change) checks every end
        return 0

    def _missing(self, end: int, as_of: AsOf) -> dict[str, int]:
        """Accounts missing at ``end`` and not passed over (``_failed``), read on from the
        last lookup's; from the first account again when none is after it (accounts changed
        behind the last batch lose their states, and ones passed over come due again). Up to
        a batch; empty only when a lookup from the first account finds none."""
        done = (health_cache.policy_key(as_of), end)
        if done in self._complete:
            return {}
        after = self._read_to.get(end, "")
        limit = self._batch + len(self._failed)  # the batch, whichever of them failed before
        with self._db.reading() as conn:
            found = state_history.missing(conn, end, as_of, limit, after)
            if after and not found.keys() - self._failed.keys():
                found = state_history.missing(conn, end, as_of, limit)
        fresh = [a for a in found if a not in self._failed][: self._batch]  # directory order
        if not fresh:
            self._complete.add(done)
        if found:  # read on after this batch (or after accounts that all failed before)
            self._read_to[end] = fresh[-1] if fresh else next(reversed(found))
        else:
            self._read_to.pop(end, None)
        if len(self._read_to) > 64:  # ends no longer kept
            self._read_to = {e: a for e, a in self._read_to.items() if e in self._ends(as_of)}
        return {a: found[a] for a in fresh}

    def _keep_figures(self, as_of: AsOf, ends: list[int]) -> int:
        """The sums per group at the latest end that lacks some (every state there is kept),
        each computed only when ``state_figures.computing`` gives the lock at once (else the
        next pass tries again). A failure backs off for ``SKIP_FAILED_S`` (the reports compute
        the sums themselves meanwhile). Returns how many groupings were kept."""
        if time.monotonic() < self._figures_retry_at:
            return 0
        policy = state_figures.key(health_cache.policy_key(as_of))
        past = [e for e in ends if e < as_of.now_us]  # an end at now is summed from the cache
        with self._db.reading() as conn:
            todo = state_figures.lacking(conn, past, kpi_states.GROUP_BYS, policy,
                                         self._at_risk_below)  # fmt: skip
        if not todo:
            return 0
        end = todo[0][0]
        done = 0
        for group_by in (g for g in kpi_states.GROUP_BYS if (end, g) in todo):
            try:
                with self._db.transaction() as conn:
                    if not state_figures.computing(conn):
                        self._sums_waiting = True  # something changes the inputs right now
                        return done
                    sums = kpi_states.state_sums(conn, end, as_of, group_by, self._at_risk_below,
                                                 evaluate_up_to=SUM_EVALUATES_UP_TO)  # fmt: skip
                    state_figures.store(conn, end, group_by, policy, self._at_risk_below, sums,
                                        int(time.time() * 1_000_000))  # fmt: skip
            except kpi_states.TooManyLacking:
                self._sums_waiting = True  # states went missing since the pass looked
                return done
            except Exception as exc:
                if is_transient(exc) or is_systemic(exc):
                    raise
                log.warning("KPI sums at %d by %s not kept (%s); the report computes them",
                            end, group_by, exc)  # fmt: skip
                self._figures_retry_at = time.monotonic() + SKIP_FAILED_S
                return done
            done += 1
        return done

    def periods(self, as_of: AsOf) -> list[Span]:
        """The periods whose KPI figures are kept (``kpi_figures.periods``)."""
        return kpi_figures.periods(as_of, self._weeks, self._months)

    def _keep_periods(self, as_of: AsOf) -> int:
        """The KPI figures of kept periods that no row answers for, latest first, each grouping
        computed only when ``state_figures.computing`` gives the lock at once, and not again
        within ``periods_again_s`` of the last time. A current period is left to the reads
        while some account lacks a valid health row. Returns how many were kept."""
        if time.monotonic() < self._figures_retry_at:
            return 0
        policy = kpi_figures.key(health_cache.policy_key(as_of))
        with self._db.reading() as conn:
            have = kpi_figures.answering(conn, policy, self._at_risk_below, as_of.now_us)
        now = time.monotonic()
        self._period_at = {k: at for k, at in self._period_at.items() if at > now}
        done = 0
        for span in self.periods(as_of):
            for group_by in kpi_states.GROUP_BYS:
                key = (span.start_us, span.end_us, group_by)
                if key in have or key in self._period_at:
                    continue
                self._period_at[key] = now + self._periods_again_s
                try:
                    with self._db.transaction() as conn:
                        current = as_of.now_us < span.end_us  # its states from the cache
                        if not state_figures.computing(conn) or (
                                current and not health_cache.held_still(conn)):  # fmt: skip
                            self._sums_waiting = True
                            self._period_at.pop(key)
                            return done
                        found = kpi.period_figures(conn, span, as_of, group_by,
                                                   self._at_risk_below)  # fmt: skip
                        if found.until_us <= as_of.now_us:
                            continue  # an event at this very moment: none would answer
                        kpi_figures.store(
                            conn, span.start_us, span.end_us, group_by, policy,
                            self._at_risk_below, as_of_us=as_of.now_us, until_us=found.until_us,
                            depends_until_us=found.depends_until_us,
                            has_states=found.has_states, figures=found.figures,
                            computed_us=int(time.time() * 1_000_000))  # fmt: skip
                except kpi_states.TooManyLacking:
                    continue  # an account changed since the health pass: the next one
                except Exception as exc:
                    if is_transient(exc) or is_systemic(exc):
                        raise
                    log.warning("KPI figures of %d-%d by %s not kept (%s); the report counts"
                                " them", span.start_us, span.end_us, group_by, exc)  # fmt: skip
                    self._figures_retry_at = time.monotonic() + SKIP_FAILED_S
                    return done
                done += 1
        return done

    def _evaluate(self, account_ids: list[str], as_of: AsOf) -> dict[str, Entry]:
        """Evaluate after the claim committed (see ``health_cache.claim``)."""
        return self._isolated(account_ids, lambda conn, ids: account_health.evaluate(
            conn, ids, as_of, by="refresher"))  # fmt: skip

    def _isolated(
        self,
        account_ids: list[str],
        evaluate: Callable[[Connection, list[str]], dict[str, T]],
        *,
        alone_too: bool = False,
    ) -> dict[str, T]:
        """``evaluate`` all at once or, when that fails, one by one: an account whose
        evaluation fails is left out (a read evaluates it, and fails, as before the cache), so
        one account cannot hold the rest back. A single account's failure is raised unless
        ``alone_too`` (the refresher logs it and backs off)."""
        try:
            with self._db.reading() as conn:
                return evaluate(conn, account_ids)
        except Exception as exc:
            if is_transient(exc) or is_systemic(exc) or (len(account_ids) == 1 and not alone_too):
                raise
        found: dict[str, T] = {}
        for account_id in account_ids:
            try:
                with self._db.reading() as conn:
                    found.update(evaluate(conn, [account_id]))
            except Exception as exc:
                if is_transient(exc) or is_systemic(exc):
                    raise
                log.exception("evaluating account %r failed; left to the reads", account_id)
        return found

    def behind(self) -> tuple[int, int]:
        """(rows, rows stale for the clock's now)."""
        with self._db.reading() as conn:
            return health_cache.counts(conn, self._as_of())

    def refresh_all(self, *, history: bool = True) -> int:
        """Refresh until nothing is stale for the clock's now and (with ``history``) no state
        of a kept end is missing, or a pass stored nothing and passed over no account it could
        not evaluate; returns how many were stored (tests, the bench)."""
        total = 0
        while self.refresh_once(history=history) > 0 and (self.stored or self.passed_over):
            total += self.stored
        return total

    def run_forever(self, stop: threading.Event) -> None:
        """Refresh until ``stop``: after a full batch, pause as long as it took (at most
        ``idle_s``), so a backlog (after a replay, a switch, midnight) takes about half of a
        core from the projector and the HTTP server it shares a process with (a batch of 500
        takes about 0.6 s; a longer one gets ``t / (t + idle_s)``); after a pass that found
        less, wait ``idle_s``."""
        backoff = 0.1
        while not stop.is_set():
            try:
                started = time.monotonic()
                n = self.refresh_once()
                backoff = 0.1
            except Exception:
                log.exception("health refresh failed; retrying in %.1fs", backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if n < self._batch:
                stop.wait(self._idle_s)
            else:
                stop.wait(min(self._idle_s, time.monotonic() - started))

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
