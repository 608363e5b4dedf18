"""``onevoice contacts erase``: erase a contact's personal data (the same as ``DELETE
/v1/admin/contacts``, for an operator with database and log access; README, Erasure)."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys

from services.core.settings import Settings


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    contacts = sub.add_parser("contacts", help="customer contacts: erase one's personal data")
    action = contacts.add_subparsers(dest="action", required=True)
    erase = action.add_parser(
        "erase", help="destroy a contact's keys: its name, email and title read [erased]"
        " everywhere, replays and rebuilds included; records contact.erased")  # fmt: skip
    erase.add_argument("--account", required=True, help="the account its events name")
    named = erase.add_mutually_exclusive_group(required=True)
    named.add_argument(
        "--email",
        help="the contact's email (any case); '-' reads it from"
        " stdin, which keeps it out of the process list and shell history",
    )
    named.add_argument("--contact-id", help="the contact's id")
    erase.add_argument("--without-id", action="store_true",
                       help="with --email: only the records without a contact id (a shared"
                       " mailbox's)")  # fmt: skip


def run(settings: Settings, args: argparse.Namespace) -> int:
    from services.bootstrap import build
    from services.core.ports import LogUnavailable, StoreUnavailable
    from services.core.privacy.erasure import NothingToErase, erase
    from services.core.privacy.vault import AmbiguousContact

    stdin = sys.stdin.readline() if args.email == "-" and sys.stdin is not None else ""
    email = stdin.strip() if args.email == "-" else args.email
    if email is not None and not (EMAIL.fullmatch(email) and len(email) <= 320):
        print("onevoice contacts erase: --email is not an email address", file=sys.stderr)
        return 2
    if args.without_id and email is None:
        print("onevoice contacts erase: --without-id goes with --email", file=sys.stderr)
        return 2
    try:
        services = build(settings, run_migrations=False, role="api")  # the log opens on append
    except StoreUnavailable as exc:
        print(f"onevoice contacts erase: {exc}", file=sys.stderr)
        return 1
    c = services.container
    try:
        done = erase(c.vault, c.log, settings.topic, c.clock(), args.account, email=email,
                     contact_id=args.contact_id, without_id=args.without_id,
                     recorded_by=f"cli:{_user()}"[:256], source="onevoice-cli")  # fmt: skip
    except NothingToErase:
        named = "email" if email is not None else "contact id"
        print(f"onevoice contacts erase: no sealed contact of account {args.account!r} has"
              f" that {named}: none was posted, it was erased already, or it was posted before"
              " contacts were sealed (README, Erasure)", file=sys.stderr)  # fmt: skip
        return 1
    except AmbiguousContact as exc:
        print(f"onevoice contacts erase: {exc}; erase each by --contact-id, and the records"
              " without an id with --email and --without-id", file=sys.stderr)  # fmt: skip
        return 1
    except (LogUnavailable, StoreUnavailable) as exc:
        print(f"onevoice contacts erase: {exc}; the erasure did not complete: retry",
              file=sys.stderr)  # fmt: skip
        return 1
    finally:
        services.close()
    print(json.dumps(done.as_json(), ensure_ascii=False))
    return 0


EMAIL = re.compile(r"[^@\s]+@[^@\s]+")  # fullmatch; the contract's rule (events.Email)


def _user() -> str:
    """Who ran the command, for ``recorded_by`` (a user without a name: their uid)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
