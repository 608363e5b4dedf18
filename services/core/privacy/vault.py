"""The contact keys and every query on them (``privacy``): seal at ingest, open on read, find
and destroy on erasure.

Two tables: ``contact_keys`` (a subject, its AES key, the digest of who it is — unique, so two
ingest processes meeting a new contact at once agree on one key) and ``contact_identities``
(every digest an erasure may name the subject by). Nothing else about a contact is stored.

A key is committed before any event sealed with it is appended (``seal``), so every sealed
value in the log has had its key; erasure deletes both rows of its subjects (``destroy``), then
asks the database to drop the deleted rows from its files (``scrub``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    String,
    Table,
    delete,
    select,
    text,
)

from services.core import privacy
from services.core.adapters.sql import Database, insert_ignore
from services.core.events import Contact, EnvelopeBase
from services.core.readmodels.schema import METADATA

log = logging.getLogger(__name__)

KEYS = Table(
    "contact_keys",
    METADATA,
    Column("subject", String(32), primary_key=True),
    Column("identity", String(64), nullable=False, unique=True),
    Column("key", String(64), nullable=False),  # hex
    Column("created_us", BigInteger, nullable=False),
)
IDENTITIES = Table(
    "contact_identities",
    METADATA,
    Column("digest", String(64), primary_key=True),
    Column("subject", String(32), primary_key=True, index=True),
)
_CHUNK = 500


class ContactVault:
    """Seals contacts (ingest), opens them (reads), finds and destroys them (erasure)."""

    def __init__(self, db: Database, now_us: Callable[[], int]) -> None:
        self.db = db
        self._now_us = now_us

    def seal(self, events: Sequence[EnvelopeBase]) -> list[EnvelopeBase]:
        """``events`` with every contact's personal data sealed under its subject's key
        (created, and committed, for a contact met for the first time). Raises
        ``StoreUnavailable`` when the database is down: nothing may then be appended."""
        wanted: dict[str, set[str]] = {}
        for event in events:
            for contact in event.contacts:
                if contact.personal:
                    first, ids = privacy.identities(event.account_id, contact)
                    wanted.setdefault(first, set()).update(ids)
        if not wanted:
            return list(events)
        keys = self._keys_for(wanted)
        out = []
        for event in events:
            if not any(c.personal for c in event.contacts):
                out.append(event)
                continue
            contacts = [_sealed(event.account_id, c, keys) for c in event.contacts]
            out.append(event.model_copy(update={"contacts": contacts}))
        return out

    def _keys_for(self, wanted: dict[str, set[str]]) -> dict[str, tuple[str, bytes]]:
        with self.db.reading() as conn:
            keys = _by_identity(conn, list(wanted))
            known = _known(conn, {d for ds in wanted.values() for d in ds})
        new_ids = [{"digest": d, "subject": keys[first][0]} for first, ds in wanted.items()
                   if first in keys for d in ds if (d, keys[first][0]) not in known]  # fmt: skip
        if len(keys) == len(wanted) and not new_ids:
            return keys  # the usual case: a read, no write lock
        with self.db.transaction() as conn:
            missing = [first for first in wanted if first not in keys]
            insert_ignore(conn, KEYS, [
                {"subject": privacy.new_subject(), "identity": first,
                 "key": privacy.new_key().hex(),
                 "created_us": self._now_us()} for first in missing
            ])  # fmt: skip
            keys.update(_by_identity(conn, missing))  # ours, or a concurrent ingest's
            insert_ignore(conn, IDENTITIES, [
                {"digest": d, "subject": keys[first][0]}
                for first, ds in wanted.items() for d in sorted(ds)
            ])  # fmt: skip
        return keys

    def keys(self, subjects: Collection[str]) -> dict[str, bytes]:
        """The keys of those ``subjects`` that still have one."""
        found: dict[str, bytes] = {}
        wanted = sorted(subjects)
        with self.db.reading() as conn:
            for i in range(0, len(wanted), _CHUNK):
                rows = conn.execute(select(KEYS.c.subject, KEYS.c.key)
                                    .where(KEYS.c.subject.in_(wanted[i:i + _CHUNK])))  # fmt: skip
                found.update({r.subject: bytes.fromhex(r.key) for r in rows})
        return found

    def find(self, account_id: str, *, email: str | None = None,
             contact_id: str | None = None) -> list[str]:  # fmt: skip
        """The subjects an erasure of this contact of ``account_id`` destroys: those recorded
        with that email (case-insensitive) or id, and those sharing an id or email with one of
        them (a contact met once by id and email, once by email alone, is one person)."""
        named = f"email:{email.casefold()}" if email is not None else f"id:{contact_id}"
        with self.db.reading() as conn:
            subjects = _subjects(conn, {privacy.digest(account_id, named)})
            if subjects:
                linked = conn.execute(
                    select(IDENTITIES.c.digest).where(IDENTITIES.c.subject.in_(subjects))
                ).scalars()
                subjects |= _subjects(conn, set(linked))
            alive = conn.execute(select(KEYS.c.subject).where(KEYS.c.subject.in_(subjects)))
            return sorted(alive.scalars())

    def destroy(self, subjects: Collection[str]) -> int:
        """Delete the keys (and identities) of ``subjects``; how many keys were deleted."""
        with self.db.transaction() as conn:
            count = destroy(conn, subjects)
        self.scrub()
        return count

    def scrub(self) -> None:
        """Ask the database to drop deleted rows from its files now: ``VACUUM`` on PostgreSQL
        (old row versions otherwise stay in the table's pages until autovacuum), a WAL
        checkpoint on SQLite (the deletion overwrote the rows: ``destroy``). Best effort:
        backups and PostgreSQL's WAL archive keep what they copied (README, Erasure)."""
        try:
            if self.db.dialect == "postgresql":
                with self.db.engine.connect().execution_options(
                        isolation_level="AUTOCOMMIT") as conn:  # fmt: skip
                    conn.execute(text(f"VACUUM {KEYS.name}, {IDENTITIES.name}"))
            else:
                with self.db.engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        except Exception as exc:
            log.warning("erased keys deleted; scrubbing the database files failed: %s", exc)


def destroy(conn: Connection, subjects: Collection[str]) -> int:
    """In ``conn``'s transaction: delete the keys and identities of ``subjects`` (SQLite
    overwrites the deleted rows: ``secure_delete``); how many keys were deleted."""
    wanted = sorted(subjects)
    if not wanted:
        return 0
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA secure_delete = ON")
    count = 0
    for i in range(0, len(wanted), _CHUNK):
        chunk = wanted[i : i + _CHUNK]
        conn.execute(delete(IDENTITIES).where(IDENTITIES.c.subject.in_(chunk)))
        count += conn.execute(delete(KEYS).where(KEYS.c.subject.in_(chunk))).rowcount
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA secure_delete = OFF")  # the pooled connection's default
    return count


def _sealed(account_id: str, contact: Contact, keys: dict[str, tuple[str, bytes]]) -> Contact:
    if not contact.personal:
        return contact
    subject, key = keys[privacy.identities(account_id, contact)[0]]
    return privacy.seal(contact, subject, key)


def _by_identity(conn: Connection, firsts: list[str]) -> dict[str, tuple[str, bytes]]:
    found: dict[str, tuple[str, bytes]] = {}
    for i in range(0, len(firsts), _CHUNK):
        rows = conn.execute(select(KEYS.c.identity, KEYS.c.subject, KEYS.c.key)
                            .where(KEYS.c.identity.in_(firsts[i:i + _CHUNK])))  # fmt: skip
        found.update({r.identity: (r.subject, bytes.fromhex(r.key)) for r in rows})
    return found


def _known(conn: Connection, digests: set[str]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    wanted = sorted(digests)
    for i in range(0, len(wanted), _CHUNK):
        rows = conn.execute(select(IDENTITIES.c.digest, IDENTITIES.c.subject)
                            .where(IDENTITIES.c.digest.in_(wanted[i:i + _CHUNK])))  # fmt: skip
        found.update((r.digest, r.subject) for r in rows)
    return found


def _subjects(conn: Connection, digests: set[str]) -> set[str]:
    return {subject for _, subject in _known(conn, digests)}


def keys_of(value: Any) -> set[str]:
    """Every subject sealed somewhere in ``value`` (plain JSON types)."""
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            sealed = item.get("sealed")
            if isinstance(sealed, str):
                named = privacy.parts(sealed)
                if named is not None:
                    found.add(named[0])
            stack.extend(v for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, dict | list))
    return found
