"""Catalog v1 as it was before the whole-company contract (issue 10): a fixed log of events of
every v1 type and what every reader made of it, so later releases can prove old events still
project identically.

Two yardsticks, each a log (``*_log.jsonl``: partition, offset, event body) and what the readers
returned at ``NOW`` (``*_readers.json``), computed by the code of commit 6631fdb. Never regenerate
them from newer code. ``catalog_v1`` (``python -m tests.compat.catalog_v1 --write`` on that
commit) holds the fold property test's story; ``catalog_v1b`` the same story generator with
meetings, emails, deal stages and success reviews in place of offers and CSAT. Together they
cover every v1 type except the marketing signals ``marketing.event_attended`` and
``marketing.content_engaged``, whose views change on purpose: they open handoffs now.
"""

from __future__ import annotations

import json
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from services.bootstrap import migrate, projections
from services.core.adapters.sql import Database
from services.core.codec import StoredEvent
from services.core.events import parse_event
from services.core.readmodels import (
    account_health,
    accounts,
    coverage,
    feed,
    health_cache,
    leadership,
    timeline,
    view,
)
from services.core.readmodels.timeline import to_micros
from services.core.view_rules import AsOf

HERE = Path(__file__).parent
LOG = HERE / "catalog_v1_log.jsonl"
READERS = HERE / "catalog_v1_readers.json"
YARDSTICKS = ("catalog_v1", "catalog_v1b")
NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
ZONES = ("UTC", "Asia/Seoul")


def load_log(name: str = "catalog_v1") -> list[StoredEvent]:
    records = []
    for line in (HERE / f"{name}_log.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        event = parse_event(r["event"])
        records.append(StoredEvent(event, str(event.event_id), r["partition"], r["offset"], NOW))
    return records


def fold(db: Database, records: list[StoredEvent]) -> None:
    views = projections()
    with db.transaction() as conn:
        for projection in views:
            projection.clear(conn)
        for projection in views:
            projection.apply(conn, records)
        health_cache.touch_all(conn)  # as the runner marks what it applied


def read_everything(db: Database, records: list[StoredEvent]) -> dict[str, Any]:
    """What every reader answers at ``NOW`` in each zone."""
    account_ids = sorted({a for r in records for a in (r.event.account_id,
                                                       *r.event.related_account_ids)})  # fmt: skip
    people = sorted({r.event.actor.id for r in records})
    found: dict[str, Any] = {}
    with db.reading() as conn:
        for zone in ZONES:
            as_of = AsOf(to_micros(NOW), ZoneInfo(zone))
            out: dict[str, Any] = {}
            out["views"] = {a: view.read_view(conn, a, as_of) for a in account_ids}
            out["rolled_up"] = view.read_view(conn, account_ids[0], as_of,
                                              children=account_ids[1:])  # fmt: skip
            for sort in ("last_touch", "name", "health"):
                query = accounts.AccountQuery(sort=sort, limit=500)  # type: ignore[arg-type]
                out[f"accounts_{sort}"] = account_health.read_accounts(
                    conn, query, as_of, at_risk=None, below=60)[0]  # fmt: skip
            out["coverage"] = coverage.read_coverage(conn, as_of, 500)
            found[zone] = out
        found["leadership"] = leadership.read_report(
            conn, to_micros(NOW - timedelta(days=365)), to_micros(NOW + timedelta(days=30))
        )
        found["feeds"] = {p: feed.read_feed(conn, feed.FeedQuery(p, 0, 500)) for p in people}
        found["timelines"] = {
            a: timeline.read_page(conn, timeline.TimelineQuery(a, limit=500)).items
            for a in account_ids
        }
    return json.loads(json.dumps(found, ensure_ascii=False, sort_keys=True))


def _write() -> None:  # pragma: no cover - run once, by hand
    from tests.integration.test_view_fold import history

    lines = []
    for seed in (1, 2):
        for partition, records in enumerate(history(seed)):
            for r in records:
                lines.append(json.dumps({
                    "partition": partition + 4 * (seed - 1), "offset": r.offset,
                    "event": json.loads(r.event.model_dump_json(exclude_none=True)),
                }, ensure_ascii=False, sort_keys=True))  # fmt: skip
    LOG.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{tmp}/golden.sqlite3")
        migrate(db)
        records = load_log()
        fold(db, records)
        READERS.write_text(json.dumps(read_everything(db, records), ensure_ascii=False,
                                      sort_keys=True) + "\n", encoding="utf-8")  # fmt: skip
        db.dispose()


if __name__ == "__main__" and "--write" in sys.argv:
    _write()
