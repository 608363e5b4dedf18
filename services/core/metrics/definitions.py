"""The metrics a process counts as things happen (counters and histograms).

Every name follows the Prometheus conventions: ``onevoice_`` prefix, ``_total`` for counters,
base units (``_seconds``). Labels are bounded: an event type a client sent is a label only when
it is one of the contract's types (``event_type_label``), a method only when it is a standard
one, a route only as its template.

When ``PROMETHEUS_MULTIPROC_DIR`` is set before this module is first imported, prometheus_client
keeps these values in files of that directory, one per process, and ``exposition`` adds them up
(several workers of one role answer one scrape with the sum of all of them).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Histogram, disable_created_metrics

from services.core.events import LOGGED_TYPES

# A `_created` timestamp beside every counter and histogram doubles the series; Prometheus
# does not need it (it sees counter resets by itself).
disable_created_metrics()  # type: ignore[no-untyped-call]

_KNOWN_TYPES = frozenset(LOGGED_TYPES)
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

INGEST_EVENTS = Counter(
    "onevoice_ingest_events_total",
    "Events submitted to ingest, by outcome (accepted, duplicate, conflict, rejected, "
    "unavailable) and event type ('invalid' when the type is not one of the contract's).",
    ["status", "type"],
)
INGEST_GROUP_EVENTS = Histogram(
    "onevoice_ingest_group_events",
    "Single POSTs (POST /v1/events) submitted together in one group commit, per group: 1 "
    "when a request found none in flight. The sum counts every single POST once.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 500),
)
HTTP_REQUEST_DURATION = Histogram(
    "onevoice_http_request_duration_seconds",
    "Time from receiving a request to the end of its response, by route template "
    "('unmatched' when no route matched), method and status class (2xx, 4xx...).",
    ["route", "method", "status"],
)
PROJECTION_BATCH_DURATION = Histogram(
    "onevoice_projection_batch_duration_seconds",
    "Time to apply one batch to every read model and commit it with its checkpoints.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
PROJECTION_EVENTS = Counter(
    "onevoice_projection_events_total",
    "Events a read model applied (committed), re-deliveries and later copies not counted.",
    ["projection"],
)
PROJECTION_RECORDS_PARKED = Counter(
    "onevoice_projection_records_parked_total",
    "Log records a read model parked as dead letters (committed), by reason.",
    ["projection", "reason"],
)
LOG_APPEND_FAILURES = Counter(
    "onevoice_log_append_failures_total",
    "Appends to the event log that failed (the client got 503), by log backend.",
    ["backend"],
)
LOG_CONSUMER_RESTARTS = Counter(
    "onevoice_log_consumer_restarts_total",
    "Log consumers replaced by a new client, by reason ('stalled': an assigned partition "
    "stayed at one position below the log's end across two checks 5 s apart, and no poll "
    "in between returned anything).",
    ["reason"],
)
SCRAPE_ERRORS = Counter(
    "onevoice_scrape_errors_total",
    "Scrapes of /metrics that could not read a source (log or database); the samples that "
    "need it were left out of that scrape.",
    ["source"],
)

HEALTH_EVALUATIONS = Counter(
    "onevoice_health_evaluations_total",
    "Accounts whose health was evaluated, by who: the refresher keeping the health cache "
    "ahead ('refresher'), or a read that found the account's cached row stale ('read').",
    ["by"],
)

COUNTED = (INGEST_EVENTS, INGEST_GROUP_EVENTS, HTTP_REQUEST_DURATION, PROJECTION_BATCH_DURATION,
           PROJECTION_EVENTS, PROJECTION_RECORDS_PARKED, LOG_APPEND_FAILURES, LOG_CONSUMER_RESTARTS,
           SCRAPE_ERRORS, HEALTH_EVALUATIONS)  # fmt: skip
"""Every metric of this module (the README's metrics table names each one)."""


def event_type_label(raw: Any) -> str:
    """The ``type`` of a submitted item when it is one of the contract's types, else
    ``"invalid"`` (a client must not be able to mint label values)."""
    kind = raw.get("type") if isinstance(raw, dict) else None
    return kind if isinstance(kind, str) and kind in _KNOWN_TYPES else "invalid"


def method_label(method: str) -> str:
    """``method`` when it is a standard HTTP method, else ``"other"``."""
    return method if method in HTTP_METHODS else "other"


def status_class(status: int) -> str:
    """``"2xx"`` for 200..299 and so on."""
    return f"{status // 100}xx"
