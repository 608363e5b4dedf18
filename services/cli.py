"""``onevoice`` (also ``python -m services``): the services, migrations, topics, replay, demo.

Subcommands: ``run`` (ingest + queries + projector in one process: the embedded default),
``ingest``, ``api``, ``projector`` (the three separately scalable services), ``migrate``,
``topics``, ``replay`` and ``demo``. Every setting comes from ``ONEVOICE_*`` variables.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from services.core.settings import Settings


def _serve(settings: Settings, role: str) -> int:
    import uvicorn

    from services.bootstrap import build, build_app

    services = build(settings)
    app = build_app(services, role)  # type: ignore[arg-type]
    print(f"OneVoice {role} on http://{settings.host}:{settings.port}  (docs: /docs)", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
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
        services.runner.run_forever(stop)
    finally:
        services.close()
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
    demo = sub.add_parser("demo", help="post a realistic multi-department story via the API")
    demo.add_argument("--url", help="base URL (default http://ONEVOICE_HOST:ONEVOICE_PORT)")
    args = parser.parse_args(argv)
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.WARNING)
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
    return _demo(settings, args.url)


if __name__ == "__main__":
    sys.exit(main())
