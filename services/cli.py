"""``onevoice`` (also ``python -m services``): the services, migrations, topics, replay, demo.

Subcommands: ``run`` (ingest + queries + projector in one process: the embedded default),
``ingest``, ``api``, ``projector`` (the three separately scalable services), ``migrate``,
``topics``, ``replay``, ``dead-letters`` (list | show ID | redrive IDS | redrive --all),
``receipts reset`` and ``demo``. Every setting comes from ``ONEVOICE_*`` variables.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from services.core import logs
from services.core.deadletters import REASONS
from services.core.settings import Settings


def _serve(settings: Settings, role: str) -> int:
    import uvicorn

    from services.bootstrap import build, build_app

    services = build(settings)
    app = build_app(services, role)  # type: ignore[arg-type]
    print(f"OneVoice {role} on http://{settings.host}:{settings.port}  (docs: /docs)", flush=True)
    # log_config=None: uvicorn's loggers keep the root handler ``logs.configure`` installed.
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None)
    return 0


def _projector(settings: Settings) -> int:
    from services.bootstrap import build

    services = build(settings)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger(__name__).info("signal %d: finishing the current batch", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"OneVoice projector in group {settings.projector_group}", flush=True)
    try:
        services.redrive_unsupported()
        services.runner.run_forever(stop)
    finally:
        services.close()
    if services.runner.failure is not None:
        print(f"projector stopped: {services.runner.failure}", file=sys.stderr)
        return 1
    return 0


def _migrate(settings: Settings) -> int:
    from services.bootstrap import migrate
    from services.core.adapters.sql import Database

    db = Database(settings.resolved_database_url())
    migrate(db)
    db.dispose()
    print("database is at the newest schema")
    return 0


def _topics(settings: Settings) -> int:
    from services.bootstrap import build_log

    event_log = build_log(settings)
    partitions = event_log.ensure_topic(settings.topic, settings.partitions)
    event_log.close()
    print(f"topic {settings.topic}: {partitions} partitions, infinite retention")
    return 0


def _replay(settings: Settings, timeout_s: float) -> int:
    from services.bootstrap import build
    from services.projections.replay import replay

    # A group of its own: it must own every partition, even while projectors still run.
    group = f"{settings.projector_group}-replay"
    services = build(settings.model_copy(update={"projector_group": group}))
    try:
        report = replay(services.runner, services.container.db, timeout_s, sys.stderr)
    finally:
        services.close()
    print(report.summary())
    return 0


def _dead_letters(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from services.bootstrap import build_redriver
    from services.core.deadletters import store

    redriver = build_redriver(settings)
    try:
        if args.action == "list":
            state = None if args.state == "all" else args.state
            with redriver.db.reading() as conn:
                items, _ = store.list_page(
                    conn, store.Filters(args.projection, args.reason, state), None, args.limit
                )
                counts = store.parked_counts(conn, [])
            for item in items:
                print(f"{item['id']:>8}  {item['projection']:<16} {item['partition']:>3}@"
                      f"{item['offset']:<10} {item['reason']:<11} x{item['attempts']:<3}"
                      f" {item['last_seen']}  {item['error']['class']}: "
                      f"{item['error']['message'][:80]}")  # fmt: skip
            print(f"parked: {json.dumps(counts)}")
            return 0
        if args.action == "show":
            with redriver.db.reading() as conn:
                row = store.get(conn, args.id)
            if row is None:
                print(f"no dead letter {args.id}", file=sys.stderr)
                return 1
            print(json.dumps(store.detail(row), ensure_ascii=False, indent=2))
            return 0
        if not args.ids and not args.all:
            print("redrive: give dead-letter ids or --all", file=sys.stderr)
            return 2
        filters = store.Filters(args.projection, args.reason) if args.all else None
        report = redriver.redrive(args.ids or None, filters)
        print(json.dumps(report.as_json(), ensure_ascii=False))
        return 0 if not report.failed else 1
    finally:
        redriver.db.dispose()


def _receipts_reset(settings: Settings) -> int:
    from services.core.adapters.sql import Database
    from services.core.adapters.sql_receipts import SqlReceiptStore

    db = Database(settings.resolved_database_url())
    try:
        forgotten = SqlReceiptStore(db).reset()
    finally:
        db.dispose()
    print(f"forgot {forgotten} ingest receipts")
    return 0


def _demo(settings: Settings, url: str | None) -> int:
    from services.demo import load_demo

    return load_demo(url or f"http://{settings.host}:{settings.port}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="onevoice", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="ingest + query API + projector in one process")
    sub.add_parser("ingest", help="the ingest HTTP service (POST /v1/events...)")
    sub.add_parser("api", help="the query HTTP service (timelines, events)")
    sub.add_parser("projector", help="a projector process (joins the consumer group)")
    sub.add_parser("migrate", help="apply database migrations")
    sub.add_parser("topics", help="create the topic (infinite retention) if missing")
    replay = sub.add_parser("replay", help="rebuild every read model from offset 0")
    replay.add_argument("--timeout", type=float, default=3600, help="give up after N seconds")
    dead = sub.add_parser("dead-letters", help="list, show and re-drive parked records")
    dead_sub = dead.add_subparsers(dest="action", required=True)
    listing = dead_sub.add_parser("list", help="parked records, oldest first")
    show = dead_sub.add_parser("show", help="one dead letter with its raw value")
    show.add_argument("id", type=int)
    redrive = dead_sub.add_parser("redrive", help="apply parked records again")
    redrive.add_argument("ids", type=int, nargs="*", help="dead-letter ids")
    redrive.add_argument("--all", action="store_true", help="every parked record (filtered)")
    for cmd in (listing, redrive):
        cmd.add_argument("--projection", help="only this read model's (e.g. OneVoiceView)")
        cmd.add_argument("--reason", choices=REASONS, help="only records parked for this reason")
    listing.add_argument("--state", choices=("parked", "redriven", "all"), default="parked")
    listing.add_argument("--limit", type=int, default=100)
    receipts = sub.add_parser("receipts", help="ingest's idempotency receipts")
    receipts.add_subparsers(dest="action", required=True).add_parser(
        "reset", help="forget every receipt (only after the log was replaced on purpose)"
    )
    demo = sub.add_parser("demo", help="post a realistic multi-department story via the API")
    demo.add_argument("--url", help="base URL (default http://ONEVOICE_HOST:ONEVOICE_PORT)")
    args = parser.parse_args(argv)
    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    command = args.command
    if command in ("run", "ingest", "api"):
        return _serve(settings, "all" if command == "run" else command)
    if command == "projector":
        return _projector(settings)
    if command == "migrate":
        return _migrate(settings)
    if command == "topics":
        return _topics(settings)
    if command == "replay":
        return _replay(settings, args.timeout)
    if command == "dead-letters":
        return _dead_letters(settings, args)
    if command == "receipts":
        return _receipts_reset(settings)
    return _demo(settings, args.url)


if __name__ == "__main__":
    sys.exit(main())
