"""Request ids and the latency metric's labels (services/api/middleware.py), on the real app."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from services.api.app import create_app
from services.api.middleware import route_label
from services.core.adapters.sql import Database
from services.core.container import Container
from services.core.logs import REQUEST_ID, JsonFormatter
from tests.conftest import make_settings
from tests.fakes import InMemoryLog

HEX32 = re.compile(r"[0-9a-f]{32}")
log = logging.getLogger("tests.middleware")
probe = APIRouter()


@probe.get("/probe/{item_id}")
def where(item_id: str) -> dict[str, str | None]:
    """A sync route (run in the thread pool) that logs and tells the id it sees."""
    log.warning("probing %s", item_id)
    return {"request_id": REQUEST_ID.get()}


@probe.get("/boom")
def boom() -> None:
    raise RuntimeError("boom")


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    """The real app on an in-memory log; the database is never touched by these routes."""
    settings = make_settings(tmp_path, auth="disabled")  # keys: tests/e2e/test_access_http.py
    db = Database(settings.resolved_database_url())
    container = Container(settings, InMemoryLog(), db, lambda: datetime.now(UTC), ())
    return create_app(container, [probe])


def call(
    app: FastAPI, path: str, headers: Mapping[str, str | bytes] | None = None
) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path, headers=headers)

    return asyncio.run(run())


def test_a_sane_client_id_is_echoed_and_carried_by_the_logs(app: FastAPI) -> None:
    sane = "Az09._:-" + "x" * 120  # 128 characters, every kind allowed
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(JsonFormatter())
    log.addHandler(handler)
    try:
        answer = call(app, "/probe/7", {"X-Request-Id": sane})
    finally:
        log.removeHandler(handler)
    assert answer.headers["x-request-id"] == sane
    assert answer.json() == {"request_id": sane}
    [line] = lines.getvalue().splitlines()  # logged in the thread pool, formatted there
    assert json.loads(line)["request_id"] == sane
    assert json.loads(line)["message"] == "probing 7"
    assert REQUEST_ID.get() is None  # reset once the request is done


@pytest.mark.parametrize("sent", ["x" * 129, "has space", "a/b", "ünï".encode(), ""])
def test_an_insane_client_id_is_replaced(app: FastAPI, sent: str | bytes) -> None:
    answer = call(app, "/probe/7", {"X-Request-Id": sent})
    assert HEX32.fullmatch(answer.headers["x-request-id"])
    assert answer.json() == {"request_id": answer.headers["x-request-id"]}


def test_without_a_client_id_each_request_gets_a_new_one(app: FastAPI) -> None:
    first, second = call(app, "/probe/1"), call(app, "/probe/2")
    assert HEX32.fullmatch(first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    assert call(app, "/nowhere").headers["x-request-id"] != first.headers["x-request-id"]


def test_an_unexpected_error_answers_500_with_the_id_and_logs_it(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    answer = call(app, "/boom", {"X-Request-Id": "trace-500"})
    assert answer.status_code == 500
    assert answer.json()["error"]["code"] == "internal_error"
    assert answer.headers["x-request-id"] == "trace-500"
    [record] = [r for r in caplog.records if r.getMessage() == "unhandled error"]
    assert record.__dict__["request_id"] == "trace-500"


def test_route_label_is_the_template_never_the_path() -> None:
    route = APIRoute("/v1/accounts/{account_id:path}/timeline", where)
    assert route_label({"route": route}) == "/v1/accounts/{account_id}/timeline"
    assert route_label({}) == "unmatched"
