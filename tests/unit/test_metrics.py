"""Metric labels stay bounded, and a scrape never fails (services/core/metrics)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import httpx

from services.api.app import create_app
from services.core.adapters.sql import Database
from services.core.container import Container
from services.core.metrics.collectors import PipelineCollector
from services.core.metrics.definitions import (
    COUNTED,
    event_type_label,
    method_label,
    status_class,
)
from services.core.ports import LogUnavailable
from tests.conftest import make_settings
from tests.fakes import InMemoryLog
from tests.scrape import Scrape


class DownLog(InMemoryLog):
    def end_offsets(self, topic: str) -> dict[int, int]:
        raise LogUnavailable("broker gone")


def test_only_the_contracts_types_become_labels() -> None:
    assert event_type_label({"type": "sales.meeting_held"}) == "sales.meeting_held"
    for raw in ({"type": "made.up"}, {"type": ["sales.meeting_held"]}, {}, [], "x", None):
        assert event_type_label(raw) == "invalid"
    assert [method_label(m) for m in ("GET", "POST", "BREW", "get")] == [
        "GET", "POST", "other", "other",
    ]  # fmt: skip
    assert [status_class(s) for s in (200, 202, 404, 503)] == ["2xx", "2xx", "4xx", "5xx"]


def test_metric_names_follow_the_conventions() -> None:
    for metric in COUNTED:
        [family] = metric.describe()
        assert family.name.startswith("onevoice_")
        # counters get _total when exposed; a histogram names its unit (time, or events)
        suffixes = {"counter": ("",), "histogram": ("_seconds", "_events")}[family.type]
        assert family.name.endswith(suffixes), family.name


def test_a_scrape_with_the_log_and_the_database_down_answers_200(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, auth="disabled")  # no database to hold keys
    db = Database(settings.resolved_database_url())  # never migrated: no tables at all
    container = Container(settings, DownLog(), db, lambda: datetime.now(UTC), ("AccountTimeline",))

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(container))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/metrics")

    before = Scrape(asyncio.run(get()).text)
    answer = asyncio.run(get())
    assert answer.status_code == 200
    seen = Scrape(answer.text)
    assert seen.value("onevoice_log_up") == 0 and seen.value("onevoice_database_up") == 0
    for source in ("log", "database"):
        was = before.value("onevoice_scrape_errors_total", source=source)
        assert seen.value("onevoice_scrape_errors_total", source=source) == was + 1  # type: ignore[operator]
    names = {s.name for s in seen.samples}
    assert "onevoice_projection_lag_records" not in names
    assert "onevoice_dead_letters" not in names
    assert {"onevoice_log_up", "onevoice_database_up"} <= set(PipelineCollector.NAMES)
    db.dispose()
