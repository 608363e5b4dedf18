"""``onevoice`` (also ``python -m services``): the services, migrations, topics, replay, demo.

Subcommands: ``run`` (ingest + queries, and the projector in a child process it supervises:
the embedded default; ``projections/process.py``),
``ingest``, ``api``, ``projector`` (the three separately scalable services), ``migrate``,
``topics``, ``replay`` (offline), ``rebuild`` (online), ``status``,
``dead-letters`` (list | show ID | redrive IDS | redrive --all),
``receipts reset``, ``keys`` (create | list | revoke | secret: ``cli_keys``), ``contacts erase``
(``cli_contacts``) and ``demo``.
Every setting comes from ``ONEVOICE_*`` variables.

Migrations run in one place: ``migrate`` (and ``run``, so that one command starts a fresh
machine), under one lock. ``ingest``, ``api``, ``projector``, ``replay`` and ``rebuild`` only
check the schema and exit with status 1 and the two revisions when it is not this version's.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from services import cli_contacts, cli_keys
from services.core import heap, logs
from services.core.deadletters import REASONS
from services.core.settings import Settings


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError(f"must be between 1 and 64, not {value}")
    return value


def _serve(settings: Settings, role: str) -> int:
    import uvicorn

    from services.bootstrap import build, build_app

    child = role == "all" and settings.run_projector and settings.projector_process
    if child:  # the projector runs in a process of its own (projections/process.py)
        settings = settings.model_copy(update={"run_projector": False})
    # Only `run` migrates (the embedded default starts with one command); the split roles
    # refuse a schema the migrate job has not brought to this version.
    services = build(settings, run_migrations=role == "all", role=role)  # type: ignore[arg-type]
    projector = None
    try:
        if child:
            projector = _child_projector(services)
            # uvicorn shuts down gracefully on SIGTERM, then raises it again with the handler
            # it found: with the default one the process would die before the child is
            # stopped below. This one ends uvicorn.run with status 0 instead.
            signal.signal(signal.SIGTERM, _exit_quietly)
        app = build_app(services, role)  # type: ignore[arg-type]
        heap.freeze_startup()  # full collections then skip the startup heap (core/heap.py)
        print(f"OneVoice {role} on http://{settings.host}:{settings.port}  (docs: /docs)",
              flush=True)  # fmt: skip
        # log_config=None: uvicorn's loggers keep the root handler ``logs.configure`` installed.
        uvicorn.run(app, host=settings.host, port=settings.port, log_config=None)
    finally:
        if projector is not None:
            projector.stop()
    return 0


def _exit_quietly(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def _child_projector(services: Any) -> Any:
    """Start ``run``'s projector process (after the migrations ``build`` ran) and make
    ``/readyz`` report it (``projections/process.py``). Its health port:
    ``ONEVOICE_PROJECTOR_PORT`` when set, else a free one, so that two ``run``s on one machine
    do not collide; its PostgreSQL pool: 4 + 4 unless set (a runner, the refresher, the rebuild
    worker and its probes need no more)."""
    from dataclasses import replace

    from services.projections.process import ProjectorProcess, readyz_probe

    settings = services.container.settings
    env = dict(os.environ)
    if env.get("ONEVOICE_PROJECTOR_PORT", "0") == "0":
        env["ONEVOICE_PROJECTOR_PORT"] = str(_free_port(settings.host))
    env.setdefault("ONEVOICE_DB_POOL_SIZE", "4")
    env.setdefault("ONEVOICE_DB_MAX_OVERFLOW", "4")
    local = "127.0.0.1" if settings.host in ("0.0.0.0", "") else settings.host
    local = "[::1]" if local == "::" else f"[{local}]" if ":" in local else local
    probe = readyz_probe(f"http://{local}:{env['ONEVOICE_PROJECTOR_PORT']}/readyz")
    projector = ProjectorProcess(env, probe=probe)
    services.container = replace(services.container, projector_failure=projector.failure)
    projector.start()
    return projector


def _free_port(host: str) -> int:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _health_server(app: Any, host: str, port: int) -> tuple[Any, threading.Thread, str]:
    """A uvicorn server for ``app`` in a thread (signals stay with the main thread); its
    server, thread and base URL once it listens. ``RuntimeError`` when it cannot start."""
    import uvicorn

    # log_config=None: the root handler's format (``logs.configure``); warnings only, so the
    # probes' access lines stay out.
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="health-http", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"the health server could not listen on {host}:{port}")
        time.sleep(0.01)
    bound = [s.getsockname() for srv in server.servers for s in srv.sockets]
    return server, thread, f"http://{bound[0][0]}:{bound[0][1]}"


def _projector(settings: Settings, parent_pid: int | None = None) -> int:
    from services.bootstrap import build, build_app
    from services.projections.process import exit_with_parent

    services = build(settings, run_migrations=False, role="projector")
    try:
        server, http, base = _health_server(
            build_app(services, "projector"), settings.host, settings.projector_port
        )
    except RuntimeError as exc:
        services.close()
        print(f"projector: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger(__name__).info("signal %d: finishing the current batch", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    recheck_s = None
    if parent_pid is not None:  # run's child: stop when run is gone, even after a kill -9
        exit_with_parent(parent_pid, stop)
        recheck_s = 5.0  # as run's thread did: a checkpoint ahead of the log waits for a fix
    print(f"OneVoice projector in group {settings.projector_group}  (health: {base}/readyz)",
          flush=True)  # fmt: skip
    heap.freeze_startup()
    try:
        services.redrive_unsupported()
        services.backfill_new()
        services.rebuild_worker.start()  # runs rebuilds started over HTTP and backfills
        services.health_refresher.start()  # keeps the health cache ahead of the lists
        services.runner.run_forever(stop, recheck_s=recheck_s)
    finally:
        # The runner has finished its batch; then the health server, then the connections.
        server.should_exit = True
        http.join(timeout=10)
        services.close()
    if services.runner.failure is not None:
        print(f"projector stopped: {services.runner.failure}", file=sys.stderr)
        return 1
    return 0


def _migrate(settings: Settings) -> int:
    from services.bootstrap import migrate, open_database

    db = open_database(settings)
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


def _replay(settings: Settings, timeout_s: float, workers: int) -> int:
    from services.bootstrap import build
    from services.projections import workers as catch_up_workers
    from services.projections.replay import replay

    if workers > 1 and (why_not := catch_up_workers.supported(settings)) is not None:
        print(f"onevoice replay: --workers {workers}: {why_not}", file=sys.stderr)
        return 2
    # A group of its own: it must own every partition, even while projectors still run (the
    # replay's workers share it).
    group = f"{settings.projector_group}-replay"
    own = settings.model_copy(update={"projector_group": group})
    services = build(own, run_migrations=False, role="projector")
    heap.freeze_startup()
    runner, db = services.runner, services.container.db

    def in_workers(timeout: float, progress: Callable[[int, int], None]) -> int:
        done = catch_up_workers.catch_up_in_workers(runner, db, own, workers, timeout, progress)
        if done.failed_children:
            print(f"onevoice replay: {done.failed_children} of {done.workers - 1} worker processes"
                  " failed; the others applied their partitions", file=sys.stderr)  # fmt: skip
        return done.events

    try:
        # Through the workers' catch-up even with one: both count the records up to the log's
        # end as of the start (the runner's own count includes re-deliveries).
        report = replay(runner, db, timeout_s, sys.stderr, in_workers)
    except RuntimeError as exc:
        print(f"onevoice replay: {exc}", file=sys.stderr)
        return 1
    finally:
        services.close()
    print(report.summary())
    return 0


def _catch_up_worker(settings: Settings, args: argparse.Namespace) -> int:
    from services.bootstrap import build
    from services.projections import workers
    from services.projections.process import exit_with_parent

    target = workers.parse_target(args.target)
    stop = threading.Event()
    exit_with_parent(args.parent, stop)
    services = build(settings, run_migrations=False, role="projector")
    heap.freeze_startup()
    try:
        return workers.work(services.runner, services.container.db, target, args.timeout, stop)
    finally:
        services.close()


def _rebuild(settings: Settings, args: argparse.Namespace) -> int:
    import json
    import time

    from services.bootstrap import build
    from services.core.ports import LogUnavailable, StoreUnavailable
    from services.core.rebuilds import RebuildConflict, RebuildStateError, operations, store
    from services.projections.rebuild.engine import RebuildBusy, UnknownProjection
    from services.projections.replay import ProgressBar

    if args.nice > 0 and not (args.cancel or args.rollback):
        # The fold is CPU-bound Python: yield the cores to the services on this machine.
        try:
            os.nice(args.nice)
        except OSError as exc:
            print(f"rebuild: cannot lower the priority ({exc}); running at normal priority",
                  file=sys.stderr)  # fmt: skip
    # An operator's job beside the services: it checks the schema and never creates the topic.
    services = build(settings, run_migrations=False, role="projector")
    db, rebuilder = services.container.db, services.rebuilder
    now_us = time.time_ns() // 1000
    try:
        if args.cancel or args.accept:
            with db.transaction() as conn:
                if args.cancel:
                    rebuild = operations.cancel(conn, args.cancel, now_us)
                else:
                    rebuild = store.accept(conn, args.accept, now_us)
            if args.cancel:
                with db.transaction() as conn:
                    operations.drop_generation(conn, rebuild.projections, rebuild.generation)
                print(f"rebuild {rebuild.id} cancelled; its shadow tables are dropped")
                return 0
            rebuild_id = rebuild.id
        elif args.rollback:
            names = rebuilder.names(_chosen(args))

            def swap() -> dict[str, int]:
                with db.transaction() as conn:
                    return operations.rollback(conn, names, now_us)

            live = operations.retried(swap)
            print("rolled back: " + ", ".join(f"{n} is at generation {g}" for n, g in live.items()))
            return 0
        elif args.resume:
            rebuild_id = args.resume
        else:
            try:
                rebuild_id = rebuilder.start(_chosen(args), accept_diff=args.accept_diff,
                                             keep_old=args.keep_old).id  # fmt: skip
            except RebuildConflict as exc:
                with db.reading() as conn:
                    other = store.get(conn, exc.rebuild_id)
                if other is None or other.state == "diff":
                    raise
                print(f"resuming rebuild {other.id} of {', '.join(other.projections)}",
                      file=sys.stderr)  # fmt: skip
                rebuild_id = other.id
        bar = ProgressBar(sys.stderr)
        last: dict[str, int] = {"done": 0, "total": 0}

        def progress(p: dict[str, object]) -> None:
            last["done"], last["total"] = int(p["events_applied"]), int(p["target"])  # type: ignore[call-overload]
            bar.update(last["done"], last["total"])

        print(f"rebuild {rebuild_id}", file=sys.stderr)
        done = rebuilder.run(rebuild_id, progress)
        bar.finish(last["done"], last["total"])
    except (RebuildConflict, RebuildStateError, RebuildBusy, UnknownProjection) as exc:
        print(f"rebuild: {exc}", file=sys.stderr)
        return 2
    except KeyError as exc:
        print(f"rebuild: no rebuild {exc}", file=sys.stderr)
        return 2
    except (StoreUnavailable, LogUnavailable) as exc:
        print(f"rebuild: {exc}; nothing was changed by this command, try again", file=sys.stderr)
        return 1
    finally:
        services.close()
    summary = (done.report or {}).get("summary", "")
    outcome = {"id": done.id, "state": done.state, "generation": done.generation,
               "verification": summary, "error": done.error}  # fmt: skip
    print(json.dumps(outcome, ensure_ascii=False))
    if done.state == "diff":
        print(f"verification differs; accept with `onevoice rebuild --accept {done.id}` or"
              f" cancel with `onevoice rebuild --cancel {done.id}`", file=sys.stderr)  # fmt: skip
        return 3
    return 0 if done.state == "switched" else 1


def _chosen(args: argparse.Namespace) -> list[str] | None:
    return None if args.all or not args.projection else list(args.projection)


def _status(settings: Settings, as_json: bool) -> int:
    import json
    import time

    from services.bootstrap import build_log
    from services.core.adapters.sql import Database
    from services.core.ports import LogUnavailable
    from services.core.readmodels.status import pipeline_status

    db = Database(settings.resolved_database_url())
    ends: dict[int, int] | None = None
    log_state = "ok"
    try:
        event_log = build_log(settings, provision=False)
        ends = event_log.end_offsets(settings.topic)
        event_log.close()
    except LogUnavailable as exc:
        log_state = f"unavailable: {exc}"
    from services.bootstrap import projections

    with db.reading() as conn:
        items = pipeline_status(conn, [p.name for p in projections()], settings.topic, ends,
                                time.time_ns() // 1000, settings.stall_after_s)  # fmt: skip
    db.dispose()
    if as_json:
        print(json.dumps({"topic": settings.topic, "log": log_state, "projections": items}))
        return 0
    print(f"topic {settings.topic}  log {log_state}")
    for item in items:
        lag = "?" if item["lag"] is None else item["lag"]
        print(f"{item['name']:<17} generation {item['generation']:<3} {item['state']:<10}"
              f" lag {lag:<8} parked {item['dead_letters']['total']:<5}"
              f" last applied {item['last_applied_at'] or '-'}"
              + (f"  rebuild {item['rebuild']}" if item["rebuild"] else ""))  # fmt: skip
        shown = [p for p in item["partitions"] if p["checkpoint"] or p["end"]]
        if len(shown) < len(item["partitions"]):
            print(f"    ({len(item['partitions']) - len(shown)} empty partitions not shown)")
        for part in shown:
            end = "?" if part["end"] is None else part["end"]
            print(f"    partition {part['partition']:>3}: checkpoint {part['checkpoint']:<10}"
                  f" end {end:<10} lag {'?' if part['lag'] is None else part['lag']}")  # fmt: skip
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
    from services.bootstrap import open_database
    from services.core.adapters.sql_receipts import SqlReceiptStore

    db = open_database(settings)
    try:
        forgotten = SqlReceiptStore(db).reset()
    finally:
        db.dispose()
    print(f"forgot {forgotten} ingest receipts")
    return 0


def _demo(settings: Settings, url: str | None, key_file: str | None) -> int:
    from pathlib import Path

    from services.core.access.first import KEY_FILE
    from services.demo import load_demo

    path = Path(key_file) if key_file else settings.data_dir / KEY_FILE
    key = settings.api_key.get_secret_value().strip()
    if not key:
        try:
            key = path.read_text(encoding="utf-8").strip().splitlines()[-1].strip()
        except (OSError, IndexError):
            print(f"no API key: {path} is missing (the first `make run` writes it) and"
                  " ONEVOICE_API_KEY is not set", file=sys.stderr)  # fmt: skip
            return 1
        shown = f"$(tail -n 1 {path.resolve()})"
    else:
        shown = "$ONEVOICE_API_KEY"
    return load_demo(url or f"http://{settings.host}:{settings.port}", key, shown)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="onevoice", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="ingest + query API, and the projector in a child process")
    sub.add_parser("ingest", help="the ingest HTTP service (POST /v1/events...)")
    sub.add_parser("api", help="the query HTTP service (timelines, events)")
    projector = sub.add_parser(
        "projector",
        help="a projector process (joins the consumer group; /healthz and /readyz on"
        " ONEVOICE_PROJECTOR_PORT)",
    )
    projector.add_argument("--exit-with-parent", type=int, metavar="PID",
                           help="stop (finishing the batch) once process PID is no longer this"
                           " one's parent: how `run` starts its projector")  # fmt: skip
    sub.add_parser("migrate", help="apply database migrations (serialised by a lock)")
    sub.add_parser("topics", help="create the topic (infinite retention) if missing")
    replay = sub.add_parser(
        "replay",
        help="the OFFLINE path: empty every read model and rebuild it from offset 0 (first"
        " start, disaster recovery); views are empty while it runs - use `rebuild` on a"
        " serving system",
    )
    replay.add_argument("--timeout", type=float, default=3600, help="give up after N seconds")
    replay.add_argument("--workers", type=_positive, default=1, metavar="N",
                        help="refill with N processes sharing the partitions (Kafka and"
                        " PostgreSQL only; default 1): about one per core")  # fmt: skip
    worker = sub.add_parser(
        "catch-up-worker", help="(started by `replay --workers`) one more member of its consumer"
        " group until every read model reaches --target",
    )  # fmt: skip
    worker.add_argument("--target", required=True, help='JSON {"partition": end offset}')
    worker.add_argument("--timeout", type=float, required=True)
    worker.add_argument("--parent", type=int, required=True, metavar="PID",
                        help="stop when this process is gone")  # fmt: skip
    rebuild = sub.add_parser(
        "rebuild", help="rebuild read models into a new generation while the live ones keep"
        " serving; verify against them and switch atomically",
    )  # fmt: skip
    rebuild.add_argument(
        "--projection",
        action="append",
        metavar="NAME",
        help="a read model to rebuild (repeatable; default: every one)",
    )
    rebuild.add_argument("--all", action="store_true", help="every read model (the default)")
    rebuild.add_argument(
        "--accept-diff", action="store_true", help="switch even when verification finds differences"
    )
    rebuild.add_argument(
        "--keep-old", action="store_true", help="keep the replaced generation for --rollback"
    )
    rebuild.add_argument(
        "--nice",
        type=int,
        default=10,
        choices=range(20),
        metavar="0-19",
        help="lower this process's CPU priority by N (default 10) so the"
        " services sharing the machine keep their latency; 0 to keep it",
    )
    action = rebuild.add_mutually_exclusive_group()
    action.add_argument("--resume", metavar="ID", help="resume an interrupted rebuild")
    action.add_argument("--accept", metavar="ID", help="accept a rebuild's diff and switch")
    action.add_argument("--cancel", metavar="ID", help="cancel a rebuild, drop its shadow")
    action.add_argument("--rollback", action="store_true",
                         help="return to the generation a --keep-old rebuild kept")  # fmt: skip
    status = sub.add_parser("status", help="per read model: generation, state, lag per partition")
    status.add_argument("--json", action="store_true", help="print JSON")
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
    cli_keys.add_parser(sub)
    cli_contacts.add_parser(sub)
    demo = sub.add_parser("demo", help="post a realistic multi-department story via the API")
    demo.add_argument("--url", help="base URL (default http://ONEVOICE_HOST:ONEVOICE_PORT)")
    demo.add_argument("--key-file", help="the API key's file (default <ONEVOICE_DATA_DIR>/"
                      "admin.key; or ONEVOICE_API_KEY)")  # fmt: skip
    args = parser.parse_args(argv)
    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    from services.core.adapters.sql_schema import SchemaMismatch

    try:
        return _dispatch(args, settings)
    except SchemaMismatch as exc:
        print(f"onevoice {args.command}: {exc}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    command = args.command
    if command in ("run", "ingest", "api"):
        return _serve(settings, "all" if command == "run" else command)
    if command == "projector":
        return _projector(settings, args.exit_with_parent)
    if command == "migrate":
        return _migrate(settings)
    if command == "topics":
        return _topics(settings)
    if command == "replay":
        return _replay(settings, args.timeout, args.workers)
    if command == "catch-up-worker":
        return _catch_up_worker(settings, args)
    if command == "rebuild":
        if args.all and args.projection:
            print("onevoice rebuild: give --all or --projection, not both", file=sys.stderr)
            return 2
        return _rebuild(settings, args)
    if command == "status":
        return _status(settings, args.json)
    if command == "dead-letters":
        return _dead_letters(settings, args)
    if command == "receipts":
        return _receipts_reset(settings)
    if command == "keys":
        return cli_keys.run(settings, args)
    if command == "contacts":
        return cli_contacts.run(settings, args)
    return _demo(settings, args.url, args.key_file)


if __name__ == "__main__":
    sys.exit(main())
