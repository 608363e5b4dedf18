"""``onevoice keys``: create, list and revoke API keys on the database of the settings (the same
as ``/v1/admin/keys``, for an operator with database access: the first key of a deployment, a
lost admin key). ``keys secret`` prints a fresh secret for ``ONEVOICE_BOOTSTRAP_KEY``."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from services.core.settings import Settings


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    keys = sub.add_parser("keys", help="API keys: create, list, revoke (README, Security)")
    action = keys.add_subparsers(dest="action", required=True)
    create = action.add_parser("create", help="make a key; its secret is printed this once")
    create.add_argument("--name", required=True, help="1-64 of a-z 0-9 . _ -; never reused")
    create.add_argument("--write-departments", default="", metavar="D1,D2",
                        help="departments whose events it may post")  # fmt: skip
    create.add_argument(
        "--write-types",
        metavar="T1,T2",
        help="only these event types (default: any of those departments')",
    )
    create.add_argument("--read", action="store_true", help="timelines, views, lists, reports")
    create.add_argument("--read-sensitive", action="store_true",
                        help="read, with contacts' personal data, executive notes and complaint"
                        " text (else replaced by [restricted])")  # fmt: skip
    create.add_argument(
        "--admin", action="store_true", help="rebuilds, dead letters, keys, contact erasure"
    )
    create.add_argument(
        "--write-rate",
        type=float,
        metavar="N",
        help="events/s it may write (default ONEVOICE_WRITE_RATE; 0: no limit)",
    )
    listing = action.add_parser("list", help="every key (never a secret)")
    listing.add_argument("--revoked", action="store_true", help="revoked keys too")
    listing.add_argument("--json", action="store_true", help="print JSON")
    revoke = action.add_parser("revoke", help="revoke a key (refused everywhere within"
                               " ONEVOICE_KEY_CACHE_S seconds)")  # fmt: skip
    revoke.add_argument("name")
    action.add_parser("secret", help="print a fresh secret (for ONEVOICE_BOOTSTRAP_KEY)")


def run(settings: Settings, args: argparse.Namespace) -> int:
    from services.bootstrap import open_database
    from services.core.access import KeyProblem, grant_from, new_secret
    from services.core.access import store as keys
    from services.core.readmodels.timeline import to_micros

    if args.action == "secret":
        print(new_secret())
        return 0
    db = open_database(settings)
    now_us = to_micros(datetime.now(UTC))
    try:
        if args.action == "create":
            types = None if args.write_types is None else _names(args.write_types)
            try:
                grant = grant_from(args.name, _names(args.write_departments), types,
                                   read=args.read, admin=args.admin,
                                   read_sensitive=args.read_sensitive,
                                   write_rate=args.write_rate,
                                   departments=settings.department_list)  # fmt: skip
                with db.transaction() as conn:
                    secret = keys.create(conn, grant, now_us)
            except KeyProblem as exc:
                print(f"onevoice keys create: {exc}", file=sys.stderr)
                return 2
            print(f"created key {grant.name!r} ({', '.join(grant.scopes())}); its secret,"
                  " shown this once:", file=sys.stderr)  # fmt: skip
            print(secret)
            return 0
        if args.action == "list":
            with db.reading() as conn:
                found = [k.as_json() for k in keys.listed(conn, revoked=args.revoked)]
            if args.json:
                print(json.dumps(found, ensure_ascii=False, indent=2))
            for k in [] if args.json else found:
                writes = ",".join(k["write_departments"]) or "-"
                only = ",".join(k["write_types"]) if k["write_types"] is not None else "any"
                print(f"{k['name']:<24} {' '.join(k['scopes']):<16} write={writes} types={only}"
                      f" created={k['created_at']}"
                      + (f" REVOKED={k['revoked_at']}" if k["revoked_at"] else ""))  # fmt: skip
            return 0
        with db.transaction() as conn:
            done = keys.revoke(conn, args.name, now_us)
        if not done:
            print(f"onevoice keys revoke: no active key named {args.name!r}", file=sys.stderr)
            return 1
        print(f"revoked {args.name!r}")
        return 0
    finally:
        db.dispose()


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]
