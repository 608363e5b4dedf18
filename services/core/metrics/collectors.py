"""Samples read from the database and the log when ``/metrics`` is scraped (not counted as
things happen): projection lag, parked dead letters, and whether each source answered."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TypeVar

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from services.core.container import Container
from services.core.deadletters import REASONS
from services.core.deadletters.store import parked_counts
from services.core.metrics.definitions import SCRAPE_ERRORS
from services.core.readmodels import (
    checkpoints,
    health_cache,
    kpi_figures,
    state_figures,
    state_history,
)
from services.core.readmodels.reports.kpi_states import GROUP_BYS
from services.core.readmodels.timeline import to_micros
from services.core.view_rules import AsOf

log = logging.getLogger(__name__)
T = TypeVar("T")

Stored = tuple[
    dict[str, dict[int, int]],
    dict[str, dict[str, int]],
    tuple[int, int],
    tuple[int, int],
    tuple[int, int],
    tuple[int, int],
]
"""``projection -> partition -> next offset`` (live generation), parked counts, the health
cache's (rows, stale rows), the state history's (kept, missing) and its sums' (kept,
missing), and the KPI period figures' (answering, missing)."""


class PipelineCollector:
    """One process's view of the pipeline, read at scrape time:

    - ``onevoice_log_up`` / ``onevoice_database_up``: 1 when the source answered this scrape;
    - ``onevoice_projection_lag_records{projection,partition}``: the log's end offset minus the
      read model's stored checkpoint of the live generation (records not applied yet);
    - ``onevoice_dead_letters{projection,reason}``: records parked and not re-driven, every
      reason of every read model present (0 when none);
    - ``onevoice_health_cache_accounts{state}``: accounts whose cached health answers for now
      (``valid``) and those a read would evaluate itself (``stale``);
    - ``onevoice_state_history_states{state}``: account states kept at the past period ends
      the refresher keeps (``kept``) and those still to evaluate (``missing``);
    - ``onevoice_kpi_state_sums{state}``: the KPI report's sums of those states per end and
      grouping, kept (``kept``) or not yet (``missing``: the report sums those itself);
    - ``onevoice_kpi_period_figures{state}``: the KPI report's figures of the periods the
      refresher keeps, per period and grouping, answering for now (``kept``) or not
      (``missing``: the report counts those itself).

    Never raises: a source that cannot be read counts once in
    ``onevoice_scrape_errors_total{source}`` and the samples that need it are left out.
    """

    NAMES = ("onevoice_log_up", "onevoice_database_up", "onevoice_projection_lag_records",
             "onevoice_dead_letters", "onevoice_health_cache_accounts",
             "onevoice_state_history_states", "onevoice_kpi_state_sums",
             "onevoice_kpi_period_figures")  # fmt: skip

    def __init__(self, container: Container) -> None:
        self._container = container

    def collect(self) -> Iterator[Metric]:
        ends = self._read("log", self._end_offsets)
        stored = self._read("database", self._stored)
        yield _up("onevoice_log_up", "The event log answered this scrape (1) or not (0).", ends)
        yield _up("onevoice_database_up", "The database answered this scrape (1) or not (0).",
                  stored)  # fmt: skip
        if stored is None:
            return
        done, parked, (rows, stale), (kept, missing), sums, periods = stored
        yield _states(
            "onevoice_health_cache_accounts",
            "Accounts of the health cache whose row answers for now (valid) or not (stale: a"
            " read evaluates them itself until the refresher has).",
            {"valid": rows - stale, "stale": stale},
        )
        yield _states(
            "onevoice_state_history_states",
            "Account states kept at the past period ends the refresher keeps (kept) and those"
            " not evaluated yet (missing: the KPI report evaluates them itself).",
            {"kept": kept, "missing": missing},
        )
        yield _states(
            "onevoice_kpi_state_sums",
            "The KPI report's sums of the kept states per past period end and grouping, kept"
            " (kept) or not yet (missing: the report sums those itself).",
            {"kept": sums[0], "missing": sums[1]},
        )
        yield _states(
            "onevoice_kpi_period_figures",
            "The KPI report's figures of the periods the refresher keeps (the current week and"
            " month and those of the kept ends), per period and grouping: answering for now"
            " (kept) or not (missing: the report counts those itself).",
            {"kept": periods[0], "missing": periods[1]},
        )
        dead = GaugeMetricFamily(
            "onevoice_dead_letters",
            "Records parked as dead letters and not re-driven, per read model and reason.",
            labels=["projection", "reason"],
        )
        for name in self._container.projections:
            for reason in REASONS:
                dead.add_metric([name, reason], parked.get(name, {}).get(reason, 0))
        yield dead
        if ends is not None:
            yield _lag(done, ends)

    def _read(self, source: str, read: Callable[[], T]) -> T | None:
        try:
            return read()
        except Exception as exc:
            SCRAPE_ERRORS.labels(source).inc()
            log.warning("metrics: %s unavailable: %s", source, str(exc).split("\n", 1)[0])
            return None

    def _end_offsets(self) -> dict[int, int]:
        return self._container.log.end_offsets(self._container.settings.topic)

    def _stored(self) -> Stored:
        names, topic = self._container.projections, self._container.settings.topic
        with self._container.db.reading() as conn:
            done = {
                name: checkpoints.load(conn, name, checkpoints.LIVE_GENERATION, topic)
                for name in names
            }
            settings = self._container.settings
            as_of = AsOf(to_micros(self._container.clock()), settings.zone, settings.policy)
            ends = state_history.ends(as_of, settings.kpi_history_weeks,
                                      settings.kpi_history_months)  # fmt: skip
            past = [e for e in ends if e < as_of.now_us]
            missing = len(state_figures.lacking(
                conn, past, GROUP_BYS, state_figures.key(health_cache.policy_key(as_of)),
                settings.at_risk_below))  # fmt: skip
            policy = kpi_figures.key(health_cache.policy_key(as_of))
            expected = {(p.start_us, p.end_us, g) for g in GROUP_BYS for p in kpi_figures.periods(
                as_of, settings.kpi_history_weeks, settings.kpi_history_months)}  # fmt: skip
            answering = len(expected & kpi_figures.answering(conn, policy, settings.at_risk_below,
                                                             as_of.now_us))  # fmt: skip
            return (done, parked_counts(conn, names), health_cache.counts(conn, as_of),
                    state_history.progress(conn, ends, as_of),
                    (len(past) * len(GROUP_BYS) - missing, missing),
                    (answering, len(expected) - answering))  # fmt: skip


def _states(name: str, documentation: str, counts: dict[str, int]) -> GaugeMetricFamily:
    """A gauge of counts per ``state`` label."""
    gauge = GaugeMetricFamily(name, documentation, labels=["state"])
    for state, n in counts.items():
        gauge.add_metric([state], n)
    return gauge


def _up(name: str, documentation: str, value: object | None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=0 if value is None else 1)


def _lag(done: dict[str, dict[int, int]], ends: dict[int, int]) -> GaugeMetricFamily:
    lag = GaugeMetricFamily(
        "onevoice_projection_lag_records",
        "Records on the log not yet applied by the read model (log end offset minus its live "
        "checkpoint), per partition.",
        labels=["projection", "partition"],
    )
    for name, stored in done.items():
        for partition, end in sorted(ends.items()):
            lag.add_metric([name, str(partition)], max(0, end - stored.get(partition, 0)))
    return lag
