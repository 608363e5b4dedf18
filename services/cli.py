"""``onevoice`` (also ``python -m services``): run the service, migrate, load the demo."""

from __future__ import annotations

import argparse
import logging
import sys

from services.core.settings import Settings


def _run(settings: Settings) -> int:
    import uvicorn

    from services.bootstrap import build, build_app

    services = build(settings)
    app = build_app(services)
    print(f"OneVoice on http://{settings.host}:{settings.port}  (docs: /docs)", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
    return 0


def _migrate(settings: Settings) -> int:
    from services.bootstrap import migrate
    from services.core.adapters.sql import Database

    db = Database(settings.resolved_database_url())
    migrate(db)
    db.dispose()
    print("database is at the newest schema")
    return 0


def _demo(settings: Settings, url: str | None) -> int:
    from services.demo import load_demo

    return load_demo(url or f"http://{settings.host}:{settings.port}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="onevoice", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="ingest + query API + projector in one process (embedded log)")
    sub.add_parser("migrate", help="apply database migrations")
    demo = sub.add_parser("demo", help="post a realistic multi-department story via the API")
    demo.add_argument("--url", help="base URL (default http://ONEVOICE_HOST:ONEVOICE_PORT)")
    args = parser.parse_args(argv)
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.command == "run":
        return _run(settings)
    if args.command == "migrate":
        return _migrate(settings)
    return _demo(settings, args.url)


if __name__ == "__main__":
    sys.exit(main())
