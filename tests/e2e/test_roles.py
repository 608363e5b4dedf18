"""Readiness per role: the query API needs only the database, ingest and the projector need the
log too, and the projector process serves its own /healthz and /readyz."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.bootstrap import Services, build, build_app, first_key, migrate, open_database
from services.core.consistency import STALE_HEADER, TOKEN_HEADER, token_for
from services.core.ports import LogUnavailable
from services.core.rebuilds import store
from services.core.settings import Settings
from tests.conftest import AUTH, LiveServer, make_settings
from tests.e2e.test_process import free_port
from tests.samples import make_event

ROOT = Path(__file__).resolve().parents[2]
READ_MODELS = (
    "AccountTimeline",
    "AccountDirectory",
    "LeadershipLog",
    "OneVoiceView",
    "ReportFacts",
)


def get(app: Any, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """One request through the ASGI app (no lifespan: nothing starts or closes)."""

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://role") as client:
            return await client.get(path, headers=headers)

    return asyncio.run(call())


def kafka_down_settings(tmp_path: Path) -> Settings:
    """Kafka on a loopback port nothing listens on; SQLite read models, already migrated."""
    settings = make_settings(
        tmp_path / "data", log_backend="kafka", kafka_bootstrap=f"127.0.0.1:{free_port()}",
        kafka_send_timeout_s=1, consistency_wait_s=0.1,
    )  # fmt: skip
    db = open_database(settings)
    migrate(db)
    db.dispose()
    return settings


def test_the_api_role_starts_and_stays_ready_while_kafka_is_down(tmp_path: Path) -> None:
    # Read models filled through the embedded log; then the same database behind a dead broker.
    written = make_settings(tmp_path / "data", run_projector=False)
    writer = build(written)
    [result] = writer.ingest.submit([make_event(account_id="acme-kr", summary="kept")])
    assert result.position is not None
    assert writer.runner.catch_up(30) == 1
    writer.close()
    token = token_for([result.position])
    settings = kafka_down_settings(tmp_path)

    services = build(settings, run_migrations=False, role="api")  # no topic, no connection
    with (
        LiveServer(build_app(services, "api")) as base,
        httpx.Client(base_url=base, headers=AUTH) as http,
    ):
        ready = http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {
            "database": "ok",
            "log": "not needed by this role",
            "projections": {name: {"dead_letters": {"total": 0}} for name in READ_MODELS},
            "status": "ready",
        }
        path = "/v1/accounts/acme-kr/timeline"
        assert [i["summary"] for i in http.get(path).json()["items"]] == ["kept"]
        # The token's check against the log's end cannot run: the checkpoints decide alone.
        seen = http.get(path, headers={TOKEN_HEADER: token})
        assert seen.status_code == 200, seen.text
        assert STALE_HEADER.lower() not in seen.headers
        assert [i["summary"] for i in seen.json()["items"]] == ["kept"]
        ahead = http.get(path, headers={TOKEN_HEADER: "v1.0-999"})
        assert ahead.status_code == 200, ahead.text
        assert ahead.headers[STALE_HEADER] == "true"  # waited its bounded time


def test_the_ingest_role_needs_the_log(tmp_path: Path) -> None:
    settings = kafka_down_settings(tmp_path)
    with pytest.raises(LogUnavailable, match="Unable to bootstrap"):
        build(settings, run_migrations=False, role="ingest")  # it would create the topic
    services = build(settings, run_migrations=False, role="api")
    try:
        ready = get(build_app(services, "ingest"), "/readyz")
        assert ready.status_code == 503, ready.text
        assert ready.json()["database"] == "ok"
        assert ready.json()["log"] == "unavailable"  # the cause (brokers) is in the log only
        assert ready.json()["status"] == "unavailable"
        # The same database and log, as the query API: ready.
        assert get(build_app(services, "api"), "/readyz").status_code == 200
    finally:
        services.close()


def ingested(tmp_path: Path, count: int) -> Settings:
    """Embedded settings whose log holds ``count`` events no projector has applied yet."""
    settings = make_settings(tmp_path / "data", run_projector=False)
    writer = build(settings)  # `run`'s start: migrates and creates the topic
    try:
        results = writer.ingest.submit([make_event(account_id=f"lag-{i}") for i in range(count)])
        assert [r.status for r in results] == ["accepted"] * count
    finally:
        writer.close()
    return settings


def test_the_projector_role_reports_lag_and_is_unready_once_stopped(tmp_path: Path) -> None:
    settings = ingested(tmp_path, 5)
    services: Services = build(settings, run_migrations=False, role="projector")
    try:
        app = build_app(services, "projector")
        ready = get(app, "/readyz")
        assert ready.status_code == 200, ready.text
        assert {name: p["lag"] for name, p in ready.json()["projections"].items()} == dict.fromkeys(
            READ_MODELS, 5
        )
        assert get(app, "/healthz").json() == {"status": "ok"}
        # Not a query API: nothing but the probes answers without a key, and no key is known.
        assert get(app, "/v1/accounts/lag-0/timeline", AUTH).status_code == 401

        services.runner.failure = "checkpoint 9 of partition 0 is past the log's end (3)"
        stalled = get(app, "/readyz")
        assert stalled.status_code == 503, stalled.text
        # The cause may quote the database: it is in the projector's log, not on an open path.
        assert stalled.json()["projector"] == "stopped"
        assert stalled.json()["status"] == "unavailable"
    finally:
        services.close()


def wait_caught_up(base: str, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0].decode()
        try:
            answer = httpx.get(f"{base}/readyz", timeout=2)
        except httpx.TransportError:
            time.sleep(0.05)
            continue
        body: dict[str, Any] = answer.json()
        lags = {p["lag"] for p in body["projections"].values()}
        if answer.status_code == 200 and lags == {0}:
            return body
        time.sleep(0.05)
    raise AssertionError("the projector did not catch up")


def rebuilt_by_the_process(settings: Settings) -> str:
    """A rebuild started as the API starts one (a row) is run by the projector process's
    rebuild worker; its final state."""
    db = open_database(settings)
    try:
        with db.transaction() as conn:
            rebuild = store.create(conn, ["OneVoiceView"], accept_diff=False, keep_old=False,
                                   now_us=time.time_ns() // 1000)  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            with db.reading() as conn:
                found = store.get(conn, rebuild.id)
            assert found is not None
            if found.state not in ("running", "verifying") or time.monotonic() > deadline:
                return found.state
            time.sleep(0.1)
    finally:
        db.dispose()


@pytest.mark.slow
def test_the_projector_process_serves_readyz_and_stops_on_sigterm(tmp_path: Path) -> None:
    settings = ingested(tmp_path, 3)
    port = free_port()
    env = {**os.environ, "ONEVOICE_DATA_DIR": str(settings.data_dir),
           "ONEVOICE_PROJECTOR_PORT": str(port), "ONEVOICE_PARTITIONS": "4"}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "services", "projector"], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        body = wait_caught_up(f"http://127.0.0.1:{port}", proc)
        assert body["log"] == "ok" and body["database"] == "ok"
        assert set(body["projections"]) == set(READ_MODELS)
        assert rebuilt_by_the_process(settings) == "switched"
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 0, output
    assert f"(health: http://127.0.0.1:{port}/readyz)" in output
    reread = build(settings, run_migrations=False, role="api")
    try:
        first_key(reread)  # what the app's start does (no lifespan here): the test key
        timeline = get(build_app(reread, "api"), "/v1/accounts/lag-2/timeline", AUTH).json()
        assert len(timeline["items"]) == 1
    finally:
        reread.close()
