"""The composition root: Settings -> adapters -> services. Nothing connects at import time.

This is the one module that may import every layer (core, ingest, projections, api).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from fastapi import FastAPI

from services.api.app import create_app
from services.core.access.first import curl_line, ensure_first_key, warn_disabled
from services.core.access.limits import WriteLimiter
from services.core.access.store import KeyRing
from services.core.adapters import sql_schema
from services.core.adapters.embedded_log import EmbeddedLog
from services.core.adapters.kafka_config import KafkaSecurity
from services.core.adapters.kafka_log import KafkaLog
from services.core.adapters.lazy_log import LazyLog
from services.core.adapters.sql import Database
from services.core.adapters.sql_receipts import SqlReceiptStore
from services.core.container import Container
from services.core.deadletters.store import Filters
from services.core.ports import Clock, EventLog, StoreUnavailable
from services.core.readmodels.timeline import to_micros
from services.core.settings import Settings
from services.core.view_rules import AsOf
from services.ingest.routes import build_router, build_targets_router
from services.ingest.service import IngestService
from services.projections.base import Projection
from services.projections.directory import AccountDirectory
from services.projections.health_refresh import HealthRefresher
from services.projections.leadership import LeadershipLog
from services.projections.onevoice import OneVoiceView
from services.projections.rebuild.engine import Rebuilder
from services.projections.rebuild.worker import RebuildWorker
from services.projections.redrive import Redriver
from services.projections.reports import ReportFacts
from services.projections.runner import ProjectionRunner
from services.projections.timeline import AccountTimeline

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent


def utc_now() -> datetime:
    return datetime.now(UTC)


Role = Literal["all", "ingest", "api", "projector"]
# Creating a topic needs topic-admin rights: only these roles (and `onevoice topics`) ask for it.
TOPIC_CREATORS: frozenset[Role] = frozenset({"all", "ingest"})


def migrate(db: Database) -> None:
    """Bring the read-model database to the newest schema (alembic upgrade head), serialised
    with every other migrating process by one lock (``sql_schema.migrate``)."""
    sql_schema.migrate(db, ROOT / "alembic.ini")


def check_schema(db: Database) -> None:
    """Raise ``sql_schema.SchemaMismatch`` unless the database is at this version's newest
    revision (the message names both revisions and says to run ``onevoice migrate``)."""
    sql_schema.check(db, ROOT / "alembic.ini")


def open_database(settings: Settings) -> Database:
    """The read-model database, its PostgreSQL pool sized by the settings."""
    return Database(
        settings.resolved_database_url(),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )


def kafka_security(settings: Settings) -> KafkaSecurity:
    """The Kafka clients' authentication and TLS settings (already validated by Settings)."""
    return KafkaSecurity(
        protocol=settings.kafka_security_protocol,
        sasl_mechanism=settings.kafka_sasl_mechanism,
        sasl_username=settings.kafka_sasl_username or None,
        sasl_password=settings.kafka_sasl_password.get_secret_value() or None,
        ssl_cafile=settings.kafka_ssl_cafile,
    )


def open_log(settings: Settings) -> EventLog:
    """The event log the settings name, topic untouched (the Kafka adapter connects on use)."""
    if settings.log_backend == "kafka":
        return KafkaLog(
            settings.kafka_bootstrap,
            send_timeout_s=settings.kafka_send_timeout_s,
            session_timeout_s=settings.kafka_session_timeout_s,
            replication_factor=settings.kafka_replication_factor,
            allow_finite_retention=settings.kafka_allow_finite_retention,
            security=kafka_security(settings),
        )
    return EmbeddedLog(settings.embedded_log_path())


def build_log(settings: Settings, *, provision: bool = True) -> EventLog:
    """The event log the settings name, with its topic created or checked (``ensure_topic``:
    topic-admin rights on Kafka), unless ``provision`` is False: then the caller only reads it
    (the same as ``open_log``)."""
    event_log = open_log(settings)
    if provision:
        event_log.ensure_topic(settings.topic, settings.partitions)
    return event_log


def _log_for(settings: Settings, role: Role) -> EventLog:
    if role in TOPIC_CREATORS:
        return build_log(settings)
    if role == "api":
        # The query API reads the database only; the log serves consistency-token checks,
        # which degrade to the bounded wait while it is down: start without it.
        return LazyLog(lambda: open_log(settings))
    return open_log(settings)  # a projector consumes; a missing topic is LogUnavailable there


@dataclass
class Services:
    """Everything one process runs; ``start``/``stop`` manage the projector thread."""

    container: Container
    ingest: IngestService
    runner: ProjectionRunner
    redriver: Redriver
    rebuilder: Rebuilder
    rebuild_worker: RebuildWorker
    health_refresher: HealthRefresher
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start_projector(self) -> None:
        self.redrive_unsupported()
        self.backfill_new()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self.runner.run_forever,
            args=(self._stop,),
            kwargs={"recheck_s": 5.0},
            name="projector",
            daemon=True,
        )
        self._thread.start()
        self.rebuild_worker.start()
        self.health_refresher.start()

    def backfill_new(self) -> None:
        """Start building the read models this release added (the rebuild worker runs it)."""
        try:
            started = self.rebuilder.backfill_new()
        except Exception:
            log.exception("starting the backfill of new read models failed; next start tries")
            return
        if started is not None:
            log.info("backfilling new read models %s (rebuild %s)",
                     ", ".join(started.projections), started.id)  # fmt: skip

    def redrive_unsupported(self) -> None:
        """Re-drive records parked as ``unsupported``: this version may understand them now
        (a rolling upgrade parks a newer producer's events until every projector is new)."""
        try:
            report = self.redriver.redrive(None, Filters(reason="unsupported"))
        except Exception:
            log.exception("re-driving unsupported dead letters failed; next start tries again")
            return
        if report.redriven or report.failed:
            log.info("re-drove unsupported dead letters: %d applied, %d still parked",
                     len(report.redriven), len(report.failed))  # fmt: skip

    def stop_projector(self) -> None:
        self.rebuild_worker.stop()
        self.health_refresher.stop()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def close(self) -> None:
        self.stop_projector()
        self.runner.close()
        self.container.log.close()
        self.container.db.dispose()


def projections() -> list[Projection]:
    """Every read model, in the order the runner applies them within a batch."""
    return [AccountTimeline(), AccountDirectory(), LeadershipLog(), OneVoiceView(), ReportFacts()]


def build(
    settings: Settings, clock: Clock = utc_now, *, run_migrations: bool = True, role: Role = "all"
) -> Services:
    """Wire adapters and services from settings for one role.

    ``run_migrations=True`` (the default, and ``onevoice run``) migrates the database first;
    ``False`` only checks that it is at this version's schema and raises
    ``sql_schema.SchemaMismatch`` otherwise (the ingest, api and projector roles: migrations
    run in one place). ``role`` decides what touches the log at start: ``all`` and ``ingest``
    create or check the topic, ``projector`` opens the log without creating anything, and
    ``api`` does not open it until a consistency token needs it.
    """
    db = open_database(settings)
    try:
        if run_migrations:
            migrate(db)
        else:
            check_schema(db)
        event_log = _log_for(settings, role)
    except BaseException:
        db.dispose()
        raise
    runner = ProjectionRunner(
        event_log, db, settings.topic, projections(),
        group=settings.projector_group, batch_size=settings.projector_batch,
        batch_bytes=settings.projector_batch_bytes, idle_s=settings.projector_idle_s,
    )  # fmt: skip
    redriver = Redriver(db, runner.projections)
    rebuilder = Rebuilder(
        event_log, db, settings.topic, projections(), group=settings.projector_group,
        batch_size=settings.projector_batch, batch_bytes=settings.projector_batch_bytes,
        idle_s=settings.projector_idle_s,
    )  # fmt: skip
    container = Container(
        settings, event_log, db, clock, tuple(p.name for p in runner.projections),
        redrive=redriver.redrive, projector_failure=lambda: runner.failure,
        keys=KeyRing(db, settings.key_cache_s) if settings.auth == "keys" else None,
    )  # fmt: skip
    ingest = IngestService(
        event_log, SqlReceiptStore(db), settings.topic, clock,
        timedelta(seconds=settings.max_future_s), settings.max_fanout,
        settings.department_list, settings.executive_title_rule, container.vault,
    )  # fmt: skip
    refresher = HealthRefresher(db, lambda: as_of_now(settings, clock),
                                idle_s=settings.health_refresh_s,
                                history=(settings.kpi_history_weeks,
                                         settings.kpi_history_months),
                                at_risk_below=settings.at_risk_below)  # fmt: skip
    return Services(container, ingest, runner, redriver, rebuilder, RebuildWorker(rebuilder),
                    refresher)  # fmt: skip


def first_key(services: Services) -> None:
    """At the start of a serving process: the first API key when there is none
    (``access.first``), and where to find it."""
    c = services.container
    try:
        path = ensure_first_key(c.db, c.settings, to_micros(c.clock()))
    except StoreUnavailable as exc:  # serve (503 while it is down); the next start registers it
        log.warning("the first API key was not checked (database unavailable: %s)", exc)
        return
    if path is not None:
        print(f"OneVoice: the first API key (every scope) is in {path}\n  try: "
              f"{curl_line(path, c.settings)}", flush=True)  # fmt: skip


def as_of_now(settings: Settings, clock: Clock) -> AsOf:
    """Now by ``clock``, in the business time zone, under the configured rules."""
    return AsOf(to_micros(clock()), settings.zone, settings.policy)


def build_redriver(settings: Settings) -> Redriver:
    """A re-driver on the settings' database, for the CLI (no log connection needed)."""
    return Redriver(open_database(settings), projections())


def build_app(services: Services, role: Role = "all") -> FastAPI:
    """An HTTP app for one role; its ``/readyz`` needs what that role needs.

    ``all``: ingest + queries (+ the projector thread when ``run_projector``), the embedded
    single-process default; needs the database and the log. ``ingest``: only the write
    endpoints; database and log. ``api``: only the reads; the database only. ``projector``:
    only what every app serves (health, schemas); database and log, and 503 once the runner
    stopped for good. The projector's app neither starts the runner nor closes ``services``:
    its caller runs the runner beside the server and closes them in order.
    """
    settings = services.container.settings
    container = replace(services.container, log_required=role != "api")
    takes_writes = role in ("all", "ingest")
    starts: list[Callable[[], None]] = [services.ingest.check_receipts] if takes_writes else []
    if role != "projector":  # it serves the health probes (and metrics) only
        starts.insert(0, lambda: first_key(services))
    elif settings.auth == "disabled":
        starts.insert(0, warn_disabled)  # its /metrics is open then
    if role == "all" and settings.run_projector:
        starts.append(services.start_projector)
    limiter = WriteLimiter(settings.write_rate, settings.max_batch)
    routers = [build_router(services.ingest, settings.max_batch, limiter,
                            settings.max_body_bytes),
               build_targets_router(services.ingest, limiter)] if takes_writes else []  # fmt: skip
    return create_app(
        container,
        extra_routers=routers,
        on_startup=starts,
        on_shutdown=[services.close] if role != "projector" else [],
        serve_queries=role in ("all", "api"),
    )
