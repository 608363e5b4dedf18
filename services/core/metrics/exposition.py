"""The answer to a scrape: every counted metric plus the scrape-time collectors, in the format
the scraper asked for (Prometheus text by default, OpenMetrics when its Accept header says so).

Single process (the default): the counted metrics are prometheus_client's default registry,
which also holds the process's own ``process_*`` and ``python_*`` metrics. Several worker
processes of one role: set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory, writable by every
worker, before they start; each worker then writes its values there and a scrape of any of them
answers the sum over all workers (prometheus_client's ``MultiProcessCollector``; histograms and
counters add up). Empty the directory when the role restarts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class _Chain:
    def __init__(self, collectors: Sequence[Collector]) -> None:
        self._collectors = collectors

    def collect(self) -> Iterator[Metric]:
        for collector in self._collectors:
            yield from collector.collect()


def counted() -> Collector:
    """The counted metrics of this process, or of every worker in multiprocess mode."""
    if not os.environ.get(MULTIPROC_ENV):
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def render(accept: str | None, scraped: Iterable[Collector]) -> tuple[bytes, str]:
    """``(body, content type)`` of one scrape: ``scraped`` (collectors that read their sources
    now) first — so a source error they count shows in this very scrape — then ``counted()``."""
    encode, content_type = choose_encoder(accept or "")
    return encode(_Chain([*scraped, counted()])), content_type
