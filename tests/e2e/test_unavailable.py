"""When the log cannot acknowledge a write: 503 + Retry-After, never a 2xx; retries then work."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from services.api.app import create_app
from services.bootstrap import build, migrate
from services.core.adapters.sql import Database
from services.core.adapters.sql_receipts import SqlReceiptStore
from services.core.container import Container
from services.ingest.routes import build_router
from services.ingest.service import IngestService
from tests import backends
from tests.conftest import AUTH, LiveServer, make_settings
from tests.fakes import InMemoryLog
from tests.samples import make_event
from tests.scrape import scrape

FAILURES = "onevoice_log_append_failures_total"


def test_503_with_retry_after_then_the_same_id_is_accepted(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", auth="disabled")  # an app without a key store
    db = Database(settings.resolved_database_url())
    migrate(db)
    log = InMemoryLog()
    log.ensure_topic(settings.topic, 4)
    ingest = IngestService(log, SqlReceiptStore(db), settings.topic, lambda: datetime.now(UTC))
    container = Container(settings, log, db, lambda: datetime.now(UTC), ("AccountTimeline",))
    app = create_app(container, [build_router(ingest, settings.max_batch)])
    body = make_event()
    with LiveServer(app) as base, httpx.Client(base_url=base, headers=AUTH) as http:
        log.fail_appends = True
        down = http.post("/v1/events", json=body)
        assert down.status_code == 503
        assert down.headers["retry-after"] == "1"
        assert down.json()["error"]["code"] == "log_unavailable"
        batch = http.post("/v1/events/batch", json={"events": [make_event(), make_event()]})
        assert batch.status_code == 503
        assert log.all_records(settings.topic) == []

        log.fail_appends = False
        up = http.post("/v1/events", json=body)
        assert up.status_code == 202, up.text
        assert http.post("/v1/events", json=body).json()["status"] == "duplicate"
    assert len(log.all_records(settings.topic)) == 1
    db.dispose()


def test_a_real_broker_that_cannot_take_the_write_gives_503_in_bounded_time(
    kafka_bootstrap: str, pg_url: str, tmp_path: Path
) -> None:
    from kafka import KafkaAdminClient

    settings = make_settings(
        tmp_path / "data", log_backend="kafka", kafka_bootstrap=kafka_bootstrap,
        database_url=pg_url, topic=backends.unique("gone"), kafka_send_timeout_s=2,
        run_projector=False,
    )  # fmt: skip
    services = build(settings)
    with (
        LiveServer(services) as base,
        httpx.Client(base_url=base, timeout=60, headers=AUTH) as http,
    ):
        assert http.post("/v1/events", json=make_event()).status_code == 202
        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        admin.delete_topics([settings.topic])
        admin.close()
        body = make_event()
        failures = scrape(http).value(FAILURES, backend="kafka") or 0
        started = time.monotonic()
        answer = http.post("/v1/events", json=body)
        elapsed = time.monotonic() - started
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"] == "1"
        assert elapsed < 15
        assert scrape(http).value(FAILURES, backend="kafka") == failures + 1
        services.container.log.ensure_topic(settings.topic, settings.partitions)
        for _ in range(20):  # the recreated topic's leaders take a moment to be elected
            retry = http.post("/v1/events", json=body)
            if retry.status_code != 503:
                break
        assert retry.status_code == 202, retry.text


def test_a_database_that_is_gone_gives_503_not_500(pg_url: str, tmp_path: Path) -> None:
    import psycopg

    settings = make_settings(tmp_path / "data", database_url=pg_url, run_projector=False)
    services = build(settings)
    with (
        LiveServer(services) as base,
        httpx.Client(base_url=base, timeout=60, headers=AUTH) as http,
    ):
        assert http.post("/v1/events", json=make_event(account_id="db-gone")).status_code == 202
        server, name = pg_url.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        for answer in (
            http.post("/v1/events", json=make_event(account_id="db-gone")),
            http.post("/v1/events/batch", json={"events": [make_event()]}),
            http.get("/v1/accounts/db-gone/timeline"),
            http.get("/v1/accounts"),
        ):
            assert answer.status_code == 503, answer.text
            assert answer.headers["retry-after"] == "1"
            error = answer.json()["error"]
            assert error["code"] == "store_unavailable"
            # The request id to find the cause in the log, and nothing of the infrastructure.
            assert error["request_id"] == answer.headers["x-request-id"]
            host, port = server.rsplit("@", 1)[1].rsplit(":", 1)
            for secret in (host, port, name, "postgres", "psycopg", "connection"):
                assert secret not in answer.text, (secret, answer.text)
        ready = http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["database"] == "unavailable"
        seen = scrape(http)  # 200, and says what it could not read
        assert seen.value("onevoice_database_up") == 0 and seen.value("onevoice_log_up") == 1
        assert seen.labelled("onevoice_projection_lag_records") == {}
