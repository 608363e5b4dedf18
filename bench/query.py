"""Timeline query latency on the large account: over HTTP (uvicorn) and in-process (the floor).

The HTTP figure is a full round trip from an httpx client to the ``api`` server process
(routing, validation, SQL, JSON), one request at a time after a warm-up. The in-process figure
runs the same ``read_page`` against the same database without HTTP.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg

from bench.base import AUTH
from services.core.adapters.sql import Database
from services.core.readmodels import timeline

KOREAN_TERM = "청구"  # "billing": in support summaries and subjects


@dataclass(frozen=True)
class Variant:
    name: str
    params: dict[str, Any]


def variants(base_url: str, account: str) -> list[Variant]:
    """Plain page, department, types, Korean q=, a since window, and the second page."""
    since = (datetime.now(UTC) - timedelta(days=90)).isoformat(timespec="seconds")
    out = [
        Variant("plain", {"limit": 50}),
        Variant("department", {"limit": 50, "department": "support,leadership"}),
        Variant("type", {"limit": 50, "type": "sales.meeting_held,support.ticket_opened"}),
        Variant("q_korean", {"limit": 50, "q": KOREAN_TERM}),
        Variant("since_90d", {"limit": 50, "since": since}),
    ]
    first = httpx.get(
        f"{base_url}/v1/accounts/{account}/timeline", params={"limit": 50}, headers=AUTH
    )
    first.raise_for_status()
    cursor = first.json()["next_cursor"]
    if cursor is not None:
        out.append(Variant("page_2", {"limit": 50, "cursor": cursor}))
    return out


def http_latency(
    base_url: str, account: str, chosen: list[Variant], reps: int, warmup: int
) -> dict[str, list[float]]:
    """Milliseconds per request, per variant (variants interleaved to share conditions)."""
    out: dict[str, list[float]] = {v.name: [] for v in chosen}
    path = f"/v1/accounts/{account}/timeline"
    with httpx.Client(base_url=base_url, timeout=30, headers=AUTH) as http:
        for round_no in range(warmup + reps):
            for variant in chosen:
                t0 = time.perf_counter()
                answer = http.get(path, params=variant.params)
                took = (time.perf_counter() - t0) * 1000
                answer.raise_for_status()
                if round_no >= warmup:
                    out[variant.name].append(took)
    return out


def analyze(db_url: str) -> None:
    """ANALYZE the timeline tables (autovacuum does the same after enough changes)."""
    plain = db_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"ANALYZE {timeline.PREFIX}_events, {timeline.PREFIX}_entries")


def _query(account: str, params: dict[str, Any]) -> timeline.TimelineQuery:
    def split(key: str) -> list[str]:
        return str(params[key]).split(",") if key in params else []

    since = params.get("since")
    cursor = params.get("cursor")
    return timeline.TimelineQuery(
        account_id=account, departments=split("department"), types=split("type"),
        since=datetime.fromisoformat(since) if since else None, q=params.get("q"),
        limit=int(params["limit"]),
        after=timeline.decode_cursor(cursor) if cursor else None,
    )  # fmt: skip


def inprocess_latency(
    db: Database, account: str, chosen: list[Variant], reps: int, warmup: int
) -> dict[str, list[float]]:
    """The same pages through ``account_known`` + ``read_page`` directly (no HTTP)."""
    out: dict[str, list[float]] = {v.name: [] for v in chosen}
    for round_no in range(warmup + reps):
        for variant in chosen:
            query = _query(account, variant.params)
            t0 = time.perf_counter()
            with db.reading() as conn:
                assert timeline.account_known(conn, account)
                page = timeline.read_page(conn, query)
            took = (time.perf_counter() - t0) * 1000
            assert page.items
            if round_no >= warmup:
                out[variant.name].append(took)
    return out
