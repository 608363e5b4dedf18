"""``GET /metrics``: the Prometheus scrape endpoint, served by every role."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Request, Response
from prometheus_client.registry import Collector

from services.core.metrics.exposition import render

router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(request: Request) -> Response:
    """Every OneVoice metric in the Prometheus text format (OpenMetrics when the scraper's
    `Accept` asks for it); see the README's metrics table. Always 200: a source that cannot be
    read (log, database) is reported in `onevoice_log_up` / `onevoice_database_up` and
    `onevoice_scrape_errors_total`, and the samples that need it are left out."""
    scraped: Sequence[Collector] = request.app.state.metric_collectors
    body, content_type = render(request.headers.get("accept"), scraped)
    return Response(body, media_type=content_type)
