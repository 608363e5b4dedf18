"""The API keys table and every query on it; ``KeyRing``: the lookup each request makes.

A key is never deleted: revoking stamps ``revoked_us`` (so its name stays taken and the list
shows who had access until when). Only the key's digest is stored (``access.digest``).
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Float,
    String,
    Table,
    Text,
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from services.core.access import NAME, NAME_RULE, SECRET, Grant, KeyProblem, digest, new_secret
from services.core.adapters.sql import Database
from services.core.readmodels.schema import METADATA
from services.core.view_rules import iso

KEYS = Table(
    "api_keys",
    METADATA,
    Column("name", String(64), primary_key=True),
    Column("digest", String(64), nullable=False, unique=True),
    Column("write_departments", Text, nullable=False),  # JSON list
    Column("write_types", Text, nullable=True),  # JSON list; NULL: any type
    Column("can_read", Boolean, nullable=False),
    Column("can_admin", Boolean, nullable=False),
    Column("can_read_sensitive", Boolean, nullable=False, server_default="0"),
    Column("write_rate", Float, nullable=True),  # events/s; NULL: ONEVOICE_WRITE_RATE
    Column("created_us", BigInteger, nullable=False),
    Column("revoked_us", BigInteger, nullable=True),
)


@dataclass(frozen=True)
class KeyInfo:
    """A key as ``list`` shows it (never its secret)."""

    grant: Grant
    created_us: int
    revoked_us: int | None

    def as_json(self) -> dict[str, Any]:
        g = self.grant
        return {
            "name": g.name, "scopes": g.scopes(),
            "write_departments": sorted(g.write_departments),
            "write_types": None if g.write_types is None else sorted(g.write_types),
            "read": g.read, "read_sensitive": g.read_sensitive, "admin": g.admin,
            "write_rate": g.write_rate,
            "created_at": iso(self.created_us),
            "revoked_at": None if self.revoked_us is None else iso(self.revoked_us),
        }  # fmt: skip


def _grant(row: Any) -> Grant:
    types = None if row.write_types is None else frozenset(json.loads(row.write_types))
    return Grant(row.name, frozenset(json.loads(row.write_departments)), types,
                 read=bool(row.can_read), admin=bool(row.can_admin),
                 read_sensitive=bool(row.can_read_sensitive),
                 write_rate=row.write_rate)  # fmt: skip


def create(conn: Connection, grant: Grant, now_us: int, secret: str | None = None) -> str:
    """Store a key for ``grant`` and return its secret (a new one unless ``secret`` is given:
    ``ONEVOICE_BOOTSTRAP_KEY``). Raises ``KeyProblem`` for a bad or taken name."""
    if not NAME.fullmatch(grant.name):
        raise KeyProblem(f"key name {grant.name!r}: must be {NAME_RULE}")
    if conn.execute(select(KEYS.c.name).where(KEYS.c.name == grant.name)).first() is not None:
        raise KeyProblem(f"a key named {grant.name!r} exists (names are never reused)")
    secret = secret or new_secret()
    types = None if grant.write_types is None else json.dumps(sorted(grant.write_types))
    try:
        with conn.begin_nested():
            conn.execute(KEYS.insert().values(
                name=grant.name, digest=digest(secret),
                write_departments=json.dumps(sorted(grant.write_departments)),
                write_types=types, can_read=grant.read, can_admin=grant.admin,
                can_read_sensitive=grant.read_sensitive,
                write_rate=grant.write_rate,
                created_us=now_us, revoked_us=None))  # fmt: skip
    except IntegrityError:  # the same name or secret, at the same moment
        raise KeyProblem(f"a key named {grant.name!r} exists, or that secret is in use") from None
    return secret


def revoke(conn: Connection, name: str, now_us: int) -> bool:
    """Revoke the key ``name``; False when there is no active key of that name."""
    result = conn.execute(update(KEYS).where(KEYS.c.name == name, KEYS.c.revoked_us.is_(None))
                          .values(revoked_us=now_us))  # fmt: skip
    return bool(result.rowcount)


def listed(conn: Connection, *, revoked: bool = True) -> list[KeyInfo]:
    """Every key by name (with ``revoked``: revoked ones too)."""
    stmt = select(KEYS).order_by(KEYS.c.name)
    if not revoked:
        stmt = stmt.where(KEYS.c.revoked_us.is_(None))
    return [KeyInfo(_grant(r), int(r.created_us), r.revoked_us) for r in conn.execute(stmt)]


def made(conn: Connection) -> int:
    """How many keys were ever made (revoked ones too)."""
    return int(conn.execute(select(func.count()).select_from(KEYS)).scalar_one())


def active(conn: Connection) -> int:
    """How many keys are not revoked."""
    stmt = select(func.count()).select_from(KEYS).where(KEYS.c.revoked_us.is_(None))
    return int(conn.execute(stmt).scalar_one())


def find(conn: Connection, secret: str) -> Grant | None:
    """The grant of an active key, or None."""
    row = conn.execute(select(KEYS).where(KEYS.c.digest == digest(secret),
                                          KEYS.c.revoked_us.is_(None))).first()  # fmt: skip
    return None if row is None else _grant(row)


class KeyRing:
    """Looks keys up for requests, remembering each answer for ``ttl_s`` seconds (a revoked
    key stops working within that time on every process; an unknown key is asked again after
    it too, so a new key works at once)."""

    def __init__(self, db: Database, ttl_s: float, max_entries: int = 10_000) -> None:
        self._db = db
        self._ttl_s = ttl_s
        self._max = max_entries
        self._seen: OrderedDict[str, tuple[float, Grant | None]] = OrderedDict()  # LRU
        self._lock = threading.Lock()

    def remembered(self, secret: str) -> Grant | Literal[False] | None:
        """The answer ``grant`` gave within ``ttl_s``, or False (ask ``grant``: it may block
        on the database); None at once for what cannot be a key."""
        if not SECRET.fullmatch(secret):
            return None
        with self._lock:
            seen = self._seen.get(digest(secret))
        return seen[1] if seen is not None and seen[0] > time.monotonic() else False

    def grant(self, secret: str) -> Grant | None:
        """The grant of an active key, or None (unknown or revoked). Raises
        ``StoreUnavailable`` when the database cannot answer."""
        if not SECRET.fullmatch(secret):
            return None  # no database read for what cannot be a key
        key = digest(secret)
        now = time.monotonic()
        with self._lock:
            seen = self._seen.get(key)
        if seen is not None and seen[0] > now:
            return seen[1]
        with self._db.reading() as conn:
            found = find(conn, secret)
        with self._lock:
            self._seen[key] = (now + self._ttl_s, found)
            self._seen.move_to_end(key)
            while len(self._seen) > self._max:  # the least recently looked up go first
                self._seen.popitem(last=False)
        return found

    def forget(self) -> None:
        """Drop every remembered answer (after this process revoked a key)."""
        with self._lock:
            self._seen.clear()
