"""Rebuild progress and live generations, read from the database when ``/metrics`` is scraped."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from services.core.container import Container
from services.core.readmodels import generations
from services.core.rebuilds import STATES, store

log = logging.getLogger(__name__)

_PROGRESS = (
    ("onevoice_rebuild_events_applied", "events_applied",
     "Events the rebuild's shadow generation has applied (of its target)."),
    ("onevoice_rebuild_target_events", "target",
     "Events the shadow must apply to reach the live generation's positions."),
    ("onevoice_rebuild_events_per_second", "events_per_s", "The rebuild's current rate."),
    ("onevoice_rebuild_eta_seconds", "eta_s", "Estimated seconds until the shadow catches up."),
    ("onevoice_rebuild_live_paused_seconds", "live_paused_s",
     "How long the rebuild has paused the live projector (final catch-up and verification)."),
)  # fmt: skip


class RebuildCollector:
    """- ``onevoice_projection_generation{projection}``: the live generation of each read model
    (0 while a read model added by a release waits for its backfill);
    - ``onevoice_rebuilds{state}``: rebuilds per state, all time;
    - per open rebuild (running, verifying, diff) ``{rebuild, state}``: events applied, target,
      events/s, ETA seconds, live paused seconds (``onevoice_rebuild_*``).

    Never raises: when the database cannot be read it yields nothing (the pipeline collector
    counts that scrape's failure)."""

    NAMES = ("onevoice_projection_generation", "onevoice_rebuilds",
             *(name for name, _, _ in _PROGRESS))  # fmt: skip

    def __init__(self, container: Container) -> None:
        self._container = container

    def collect(self) -> Iterator[Metric]:
        try:
            with self._container.db.reading() as conn:
                live = generations.active(conn, self._container.projections)
                counts = store.state_counts(conn)
                open_ones = store.open_rebuilds(conn)
        except Exception as exc:
            # The pipeline collector reads the same database in the same scrape and counts the
            # failure (onevoice_database_up, onevoice_scrape_errors_total): not twice.
            log.warning("metrics: rebuilds unavailable: %s", str(exc).split("\n", 1)[0])
            return
        generation = GaugeMetricFamily("onevoice_projection_generation",
                                       "The live generation of each read model.",
                                       labels=["projection"])  # fmt: skip
        for name, (active, _) in live.items():
            generation.add_metric([name], active)
        yield generation
        by_state = GaugeMetricFamily("onevoice_rebuilds", "Rebuilds per state, all time.",
                                     labels=["state"])  # fmt: skip
        for state in STATES:
            by_state.add_metric([state], int(counts.get(state, 0)))
        yield by_state
        for name, key, documentation in _PROGRESS:
            family = GaugeMetricFamily(name, documentation, labels=["rebuild", "state"])
            for rebuild in open_ones:
                value = rebuild.progress.get(key)
                if isinstance(value, int | float):
                    family.add_metric([rebuild.id, rebuild.state], float(value))
            yield family
