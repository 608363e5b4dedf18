"""The composition root: Settings -> adapters -> services. Nothing connects at import time.

This is the one module that may import every layer (core, ingest, projections, api).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config
from fastapi import FastAPI

from services.api.app import create_app
from services.core.adapters.embedded_log import EmbeddedLog
from services.core.adapters.kafka_config import KafkaSecurity
from services.core.adapters.kafka_log import KafkaLog
from services.core.adapters.sql import Database
from services.core.adapters.sql_receipts import SqlReceiptStore
from services.core.container import Container
from services.core.deadletters.store import Filters
from services.core.ports import Clock, EventLog
from services.core.settings import Settings
from services.ingest.routes import build_router
from services.ingest.service import IngestService
from services.projections.base import Projection
from services.projections.directory import AccountDirectory
from services.projections.leadership import LeadershipLog
from services.projections.onevoice import OneVoiceView
from services.projections.rebuild.engine import Rebuilder
from services.projections.rebuild.worker import RebuildWorker
from services.projections.redrive import Redriver
from services.projections.runner import ProjectionRunner
from services.projections.timeline import AccountTimeline

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent


def utc_now() -> datetime:
    return datetime.now(UTC)


def migrate(db: Database) -> None:
    """Bring the read-model database to the newest schema (alembic upgrade head)."""
    config = Config(str(ROOT / "alembic.ini"))
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def kafka_security(settings: Settings) -> KafkaSecurity:
    """The Kafka clients' authentication and TLS settings (already validated by Settings)."""
    return KafkaSecurity(
        protocol=settings.kafka_security_protocol,
        sasl_mechanism=settings.kafka_sasl_mechanism,
        sasl_username=settings.kafka_sasl_username or None,
        sasl_password=settings.kafka_sasl_password.get_secret_value() or None,
        ssl_cafile=settings.kafka_ssl_cafile,
    )


def build_log(settings: Settings, *, provision: bool = True) -> EventLog:
    """The event log the settings name, with its topic provisioned (unless ``provision`` is
    False: then the caller only reads it)."""
    event_log: EventLog
    if settings.log_backend == "kafka":
        event_log = KafkaLog(
            settings.kafka_bootstrap,
            send_timeout_s=settings.kafka_send_timeout_s,
            replication_factor=settings.kafka_replication_factor,
            allow_finite_retention=settings.kafka_allow_finite_retention,
            security=kafka_security(settings),
        )
    else:
        event_log = EmbeddedLog(settings.embedded_log_path())
    if provision:
        event_log.ensure_topic(settings.topic, settings.partitions)
    return event_log


@dataclass
class Services:
    """Everything one process runs; ``start``/``stop`` manage the projector thread."""

    container: Container
    ingest: IngestService
    runner: ProjectionRunner
    redriver: Redriver
    rebuilder: Rebuilder
    rebuild_worker: RebuildWorker
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start_projector(self) -> None:
        self.redrive_unsupported()
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
    return [AccountTimeline(), AccountDirectory(), LeadershipLog(), OneVoiceView()]


def build(settings: Settings, clock: Clock = utc_now, *, run_migrations: bool = True) -> Services:
    """Wire adapters and services from settings (migrating the database first by default)."""
    db = Database(settings.resolved_database_url())
    if run_migrations:
        migrate(db)
    event_log = build_log(settings)
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
    )  # fmt: skip
    ingest = IngestService(
        event_log, SqlReceiptStore(db), settings.topic, clock,
        timedelta(seconds=settings.max_future_s), settings.max_fanout,
    )  # fmt: skip
    return Services(container, ingest, runner, redriver, rebuilder, RebuildWorker(rebuilder))


def build_redriver(settings: Settings) -> Redriver:
    """A re-driver on the settings' database, for the CLI (no log connection needed)."""
    return Redriver(Database(settings.resolved_database_url()), projections())


Role = Literal["all", "ingest", "api"]


def build_app(services: Services, role: Role = "all") -> FastAPI:
    """An HTTP app for one role.

    ``all``: ingest + queries (+ the projector thread when ``run_projector``), the embedded
    single-process default. ``ingest``: only the write endpoints. ``api``: only the reads.
    """
    settings = services.container.settings
    starts: list[Callable[[], None]] = [services.ingest.check_receipts] if role != "api" else []
    if role == "all" and settings.run_projector:
        starts.append(services.start_projector)
    routers = [build_router(services.ingest, settings.max_batch)] if role != "api" else []
    return create_app(
        services.container,
        extra_routers=routers,
        on_startup=starts,
        on_shutdown=[services.close],
        serve_queries=role != "ingest",
    )
