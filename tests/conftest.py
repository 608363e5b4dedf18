"""Shared fixtures: settings on a temp dir, a running single-process app, waiting helpers."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from services.bootstrap import Services, build, build_app
from services.core.settings import Settings
from tests import backends

# pytest captures INFO (pyproject): OneVoice's own lines explain a failure; these libraries'
# INFO lines would bury them.
for _chatty in ("kafka", "alembic", "httpx", "httpcore"):
    logging.getLogger(_chatty).setLevel(logging.WARNING)


TEST_KEY = "ov_test-key-of-every-scope-0123456789abcdefghijklmn"
"""Every test app's first key (``ONEVOICE_BOOTSTRAP_KEY``): every scope."""
AUTH = {"Authorization": f"Bearer {TEST_KEY}"}


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a test: embedded log + SQLite under ``data_dir``, few partitions,
    ``TEST_KEY`` as the first key (send ``AUTH``), no write rate limit (tests of the limit set
    one)."""
    # Three kept period ends, not nine: every app's refresher fills the state history in the
    # background (tests that need more ends give them their own refresher).
    values: dict[str, Any] = {"data_dir": data_dir, "partitions": 4, "projector_idle_s": 0.05,
                              "kpi_history_weeks": 2, "kpi_history_months": 1,
                              "bootstrap_key": TEST_KEY, "write_rate": 0}  # fmt: skip
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def kafka_listeners() -> Iterator[dict[str, str]]:
    """One broker for the session; see ``backends.kafka_listeners``."""
    with backends.workdir("kafka") as workdir, backends.kafka_listeners(workdir) as listeners:
        yield listeners


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_listeners: dict[str, str]) -> str:
    """The broker's plaintext listener."""
    return kafka_listeners["BOOTSTRAP"]


@pytest.fixture(scope="session")
def kafka_sasl_bootstrap(kafka_listeners: dict[str, str]) -> str:
    """The same broker's SASL_PLAINTEXT listener: mechanism PLAIN, ``backends.SASL_USERNAME``."""
    if not kafka_listeners["SASL_BOOTSTRAP"]:
        backends.unavailable(
            "no SASL listener: ONEVOICE_TEST_KAFKA_BOOTSTRAP is set without"
            " ONEVOICE_TEST_KAFKA_SASL_BOOTSTRAP"
        )
    return kafka_listeners["SASL_BOOTSTRAP"]


@pytest.fixture(scope="session")
def kafka_data_dir(kafka_listeners: dict[str, str]) -> Path:
    """The folder holding the session broker's data (its log segments), to search it."""
    if not kafka_listeners["DIR"]:
        backends.unavailable("the broker's files are not here: ONEVOICE_TEST_KAFKA_BOOTSTRAP")
    return Path(kafka_listeners["DIR"])


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    with backends.workdir("pg") as workdir, backends.postgres_server(workdir) as url:
        yield url


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test."""
    with backends.fresh_database(pg_server) as url:
        yield url


BACKENDS = ["embedded", "kafka"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Runs a test once per backend: embedded log + SQLite, and Kafka + PostgreSQL."""
    return str(request.param)


@pytest.fixture
def settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    if backend == "embedded":
        return make_settings(tmp_path / "data")
    return make_settings(
        tmp_path / "data",
        log_backend="kafka",
        kafka_bootstrap=request.getfixturevalue("kafka_bootstrap"),
        database_url=request.getfixturevalue("pg_url"),
        topic=backends.unique("onevoice.test"),
        projector_group=backends.unique("projector"),
    )


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    built = build(settings)
    yield built
    built.close()


class LiveServer:
    """A real uvicorn server in a thread on a free loopback port (lifespan included)."""

    def __init__(self, app: Services | FastAPI) -> None:
        if isinstance(app, Services):
            app = build_app(app)
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            assert self.thread.is_alive(), "uvicorn exited during startup"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        (sock,) = [s for server in self.server.servers for s in server.sockets]
        host, port = sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture
def client(services: Services) -> Iterator[httpx.Client]:
    """The whole single-process app (ingest, queries, projector thread) over real HTTP."""
    with LiveServer(services) as base_url, \
            httpx.Client(base_url=base_url, timeout=30, headers=AUTH) as http:  # fmt: skip
        yield http


def wait_projected(services: Services, *answers: dict[str, Any], timeout_s: float = 60) -> None:
    """Block until the projector applied every position in the given ingest answers.

    Accepts single-event answers and batch answers; fails the test on timeout.
    """
    positions: dict[int, int] = {}
    for answer in answers:
        for item in answer.get("items", [answer]):
            pos = item.get("position")
            if pos is not None:
                p, o = pos["partition"], pos["offset"]
                positions[p] = max(positions.get(p, -1), o)
    assert services.runner.wait_for(positions, timeout_s), (
        f"not projected: {positions}; runner: {services.runner.diagnostics()}"
    )


def _needs_real_servers(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    # "backend", or a module-scoped fixture parametrized over BACKENDS (tests/e2e/test_api_fuzz.py)
    if callspec is not None and any(v == "kafka" for v in callspec.params.values()):
        return True
    fixtures = set(getattr(item, "fixturenames", ()))
    return (
        bool(fixtures & {"kafka_bootstrap", "pg_server", "pg_url"})
        or item.get_closest_marker("slow") is not None
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``make test-fast`` (ONEVOICE_TEST_FAST=1): leave out every test that needs Kafka,
    PostgreSQL or a subprocess, so the edit-test loop takes seconds. CI runs everything."""
    if os.environ.get("ONEVOICE_TEST_FAST") != "1":
        return
    kept = [item for item in items if not _needs_real_servers(item)]
    config.hook.pytest_deselected(items=[i for i in items if i not in kept])
    items[:] = kept
