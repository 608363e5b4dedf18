"""The contact keys and every query on them (``privacy``): seal at ingest, open on read, find
and destroy on erasure.

Tables: ``contact_keys`` (a subject, its AES key, the digest of who it is — unique, so two
ingest processes meeting a new contact at once agree on one key), ``contact_identities``
(every digest an erasure may name the subject by, with its account and kind) and
``contact_erasures`` (erasures recorded in the log whose keys are not destroyed yet). Nothing
else about a contact is stored.

A key is committed before any event sealed with it is appended (``seal``), so every sealed
value in the log has had its key; erasure deletes both rows of its subjects (``destroy``), then
asks the database to drop the deleted rows from its files (``scrub``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    ForeignKey,
    String,
    Table,
    Text,
    any_,
    bindparam,
    cast,
    delete,
    select,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError

from services.core import privacy
from services.core.adapters.sql import Database, id_chunks, insert_ignore
from services.core.events import EnvelopeBase
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
    # A foreign key: an ingest adding identities to a subject an erasure is deleting fails
    # (and retries with a new key) instead of leaving rows behind the erasure.
    Column(
        "subject",
        String(32),
        ForeignKey("contact_keys.subject", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
    Column("account_id", String(128), nullable=False),
    Column("kind", String(8), nullable=False),  # id, email, name
)
SHARED = Table(
    "contact_shared_emails",
    METADATA,
    Column("digest", String(64), primary_key=True),
)
"""Emails (digests, with the account) met with more than one contact id: a shared mailbox.
Kept through erasures, so an erasure by such an email is refused even after one of the ids
was erased (it would otherwise take the other's)."""
ERASURES = Table(
    "contact_erasures",
    METADATA,
    Column("event_id", String(36), primary_key=True),
    Column("subjects", Text, nullable=False),  # JSON list
    Column("created_us", BigInteger, nullable=False),
)
"""Erasures recorded in the log whose keys are not destroyed yet (``settle``)."""
_CHUNK = 500
_CHECKPOINT_TRIES = 10  # at most ~2.5 s in all


class AmbiguousContact(LookupError):
    """The email was met with more than one contact id: the erasure must name the id."""

    def __init__(self, ids: int) -> None:
        super().__init__(f"{ids} contacts with different ids were recorded with that email")
        self.ids = ids


class _KeyCache:
    """Keys read for answers, per process, for ``ttl_s`` seconds (also a key found gone),
    least recently used first out past ``size``."""

    def __init__(self, ttl_s: float, size: int = 50_000) -> None:
        self.ttl_s = ttl_s
        self.size = size
        self._items: OrderedDict[str, tuple[float, bytes | None]] = OrderedDict()
        self._lock = threading.Lock()

    def known(self, subjects: Sequence[str]) -> tuple[dict[str, bytes | None], list[str]]:
        now = time.monotonic()
        found: dict[str, bytes | None] = {}
        with self._lock:
            for s in subjects:
                item = self._items.get(s)
                if item is not None and item[0] > now:
                    found[s] = item[1]
                    self._items.move_to_end(s)
        return found, [s for s in subjects if s not in found]

    def keep(self, keys: dict[str, bytes | None]) -> None:
        now = time.monotonic()
        until = now + self.ttl_s
        with self._lock:
            for s, key in keys.items():
                held = self._items.get(s)
                if held is not None and held[1] is None and held[0] > now:
                    continue  # gone (an erasure's tombstone): a read that raced it is stale
                self._items[s] = (until, key)
                self._items.move_to_end(s)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def forget(self, subjects: Collection[str]) -> None:
        """Remember ``subjects`` as gone (subjects are never reused)."""
        until = time.monotonic() + self.ttl_s
        with self._lock:
            for s in subjects:
                self._items[s] = (until, None)
                self._items.move_to_end(s)


class ContactVault:
    """Seals contacts (ingest), opens them (reads), finds and destroys them (erasure).

    ``cache_s``: how long a process keeps a key it read for answers (0: never). An erasure is
    seen at once by the process that made it, and by every other process within it (like a
    revoked API key: ``ONEVOICE_KEY_CACHE_S``). Sealing never uses it."""

    def __init__(self, db: Database, now_us: Callable[[], int], cache_s: float = 0) -> None:
        self.db = db
        self._now_us = now_us
        self._cache = _KeyCache(cache_s) if cache_s > 0 else None

    def seal(self, events: Sequence[EnvelopeBase]) -> list[EnvelopeBase]:
        """``events`` with every contact's personal data sealed under its subject's key
        (created, and committed, for a contact met for the first time). Raises
        ``StoreUnavailable`` when the database is down: nothing may then be appended."""
        found: dict[tuple[int, int], privacy.Identity] = {}
        memo: dict[tuple[tuple[str, ...], str | None, str | None, str | None],
                   privacy.Identity] = {}  # fmt: skip
        for i, e in enumerate(events):
            for j, c in enumerate(e.contacts):
                if c.personal:
                    seen = (tuple(_accounts(e)), c.id, c.email, c.name)
                    if seen not in memo:
                        memo[seen] = privacy.identities(seen[0], c)
                    found[i, j] = memo[seen]
        if not found:
            return list(events)
        keys = self._keys_for(memo.values())
        sealer = privacy.Sealer()
        out = []
        for i, event in enumerate(events):
            sealed = [c if (i, j) not in found else
                      sealer.seal(c, *keys[found[i, j].first]) for j, c in
                      enumerate(event.contacts)]  # fmt: skip
            out.append(event if sealed == event.contacts else
                       event.model_copy(update={"contacts": sealed}))  # fmt: skip
        return out

    def _keys_for(self, wanted: Iterable[privacy.Identity]) -> dict[str, tuple[str, bytes]]:
        names: dict[str, set[tuple[str, str, str]]] = {}
        for identity in wanted:
            names.setdefault(identity.first, set()).update(identity.names)
        firsts = sorted(names)  # one order for every writer: no deadlock between two
        with self.db.reading() as conn:
            keys = _by_identity(conn, firsts)
            known = _known(conn, {d for ns in names.values() for _, _, d in ns})
        if len(keys) == len(firsts) and all(
            (d, keys[f][0]) in known for f, ns in names.items() for _, _, d in ns
        ):
            return keys  # the usual case: a read, no write lock
        for attempt in range(3):
            try:
                return self._write_keys(firsts, names, known)
            except IntegrityError:  # an erasure deleted a subject under us: read again
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _write_keys(
        self, firsts: list[str], names: dict[str, set[tuple[str, str, str]]],
        known: set[tuple[str, str]],
    ) -> dict[str, tuple[str, bytes]]:  # fmt: skip
        """``known``: the (digest, subject) identity rows read before; those of a subject
        still found here are not written again (an erasure deletes a subject's key and its
        identities in one transaction). So a known contact of a batch that creates another's
        key is sealed as the read-only path seals it: under the key found, which an erasure
        committing right after may destroy (that event's contact then reads as erased)."""
        with self.db.transaction() as conn:
            # Read again in the transaction: a key an erasure destroyed since the read above
            # is replaced (no identity row is written for a gone subject).
            keys = _by_identity(conn, firsts)
            missing = [first for first in firsts if first not in keys]
            insert_ignore(conn, KEYS, [
                {"subject": privacy.new_subject(), "identity": first,
                 "key": privacy.new_key().hex(), "created_us": self._now_us()}
                for first in missing
            ])  # fmt: skip
            keys.update(_by_identity(conn, missing))  # ours, or a concurrent ingest's
            new = {first: sorted((a, k, d) for a, k, d in names[first]
                                 if (d, keys[first][0]) not in known)
                   for first in firsts}  # fmt: skip
            insert_ignore(conn, IDENTITIES, [
                {"digest": d, "subject": keys[first][0], "account_id": a, "kind": k}
                for first in firsts for a, k, d in new[first]
            ])  # fmt: skip
            # Only a contact with an id can make an email shared (a second id meeting it),
            # and only when one of its rows is new (else nothing about it changed).
            emails = {(a, d) for first, ns in names.items() if new[first]
                      and any(k == "id" for _, k, _ in ns)
                      for a, k, d in ns if k == "email"}  # fmt: skip
            _lock_mailboxes(conn, emails)
            insert_ignore(conn, SHARED, [{"digest": d} for d in _shared_now(conn, emails)])
        return keys

    def keys(self, subjects: Collection[str]) -> dict[str, bytes]:
        """The keys of those ``subjects`` that still have one (for answers: cached)."""
        if self._cache is None:
            return self._read(subjects)
        known, missing = self._cache.known(sorted(subjects))
        if missing:
            read = self._read(missing)
            fresh: dict[str, bytes | None] = {s: read.get(s) for s in missing}
            self._cache.keep(fresh)
            known.update(fresh)
        return {s: k for s, k in known.items() if k is not None}

    def _read(self, subjects: Collection[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        wanted = sorted(subjects)
        with self.db.reading() as conn:
            for i in range(0, len(wanted), _CHUNK):
                rows = conn.execute(select(KEYS.c.subject, KEYS.c.key)
                                    .where(KEYS.c.subject.in_(wanted[i:i + _CHUNK])))  # fmt: skip
                found.update({r.subject: bytes.fromhex(r.key) for r in rows})
        return found

    def find(self, account_id: str, *, email: str | None = None,
             contact_id: str | None = None, without_id: bool = False) -> list[str]:  # fmt: skip
        """The subjects an erasure of this contact of ``account_id`` (the account of its
        events, or a related one) destroys.

        By ``contact_id``: that contact's, and those of the records of its emails that carry
        no id — unless another contact id was met with that email (a shared mailbox: those
        records may be the other's). By ``email`` (any case): every record with that email,
        the id-carrying contact met with it included; ``AmbiguousContact`` when more than one
        contact id was (name the id instead). By ``email`` ``without_id``: only the records
        with that email that carry no id (a shared mailbox's writer without an id; never an
        id-carrying contact)."""
        if email is not None:
            named = privacy.digest(account_id, f"email:{privacy.folded(email)}")
        else:
            named = privacy.digest(account_id, f"id:{contact_id}")
        with self.db.reading() as conn:
            holders = _holders(conn, {named})
            if email is not None and without_id:
                with_id = {r.subject for r in _rows(conn, holders) if r.kind == "id"}
                return _alive(conn, holders - with_id)
            if email is not None:
                ids = _ids(conn, account_id, holders)
                if len(ids) > 1 or _shared(conn, {named}):
                    raise AmbiguousContact(max(len(ids), 2))
                return _alive(conn, holders)
            found = set(holders)
            emails = {r.digest for r in _rows(conn, holders)
                      if r.kind == "email" and r.account_id == account_id}  # fmt: skip
            shared = _shared(conn, emails)
            for address in sorted(emails - shared):
                sharing = _holders(conn, {address})
                if _ids(conn, account_id, sharing) <= {named}:
                    found |= sharing
            return _alive(conn, found)

    def pending(self, event_ids: Sequence[str], subjects: Sequence[str]) -> None:
        """Before an erasure's events are appended: what each will destroy (``settle``)."""
        with self.db.transaction() as conn:
            insert_ignore(conn, ERASURES, [
                {"event_id": e, "subjects": json.dumps(sorted(subjects)),
                 "created_us": self._now_us()} for e in event_ids
            ])  # fmt: skip

    def destroy(self, subjects: Collection[str], settles: Sequence[str] = ()) -> int:
        """Delete the keys (and identities) of ``subjects`` and the pending erasures
        ``settles``; then scrub the files. How many keys were deleted."""
        if self._cache is not None:
            self._cache.forget(subjects)
        with self.db.transaction() as conn:
            count = destroy(conn, subjects)
            if settles:
                conn.execute(delete(ERASURES).where(ERASURES.c.event_id.in_(list(settles))))
        if self._cache is not None:
            self._cache.forget(subjects)  # tombstones now: a read racing the delete is refused
        self.scrub()
        return count

    def scrub(self) -> None:
        """Ask the database to drop deleted rows from its files now: ``VACUUM`` on PostgreSQL
        (old row versions otherwise stay in the table's pages until autovacuum; the bytes of
        freed space and the WAL keep them until overwritten: README, Erasure), a WAL
        checkpoint on SQLite, retried while readers hold it (the deletion overwrote the rows:
        ``destroy``). Best effort: the keys are deleted either way."""
        try:
            if self.db.dialect == "postgresql":
                with self.db.engine.connect().execution_options(
                        isolation_level="AUTOCOMMIT") as conn:  # fmt: skip
                    conn.execute(text(f"VACUUM {KEYS.name}, {IDENTITIES.name}"))
                return
            for _ in range(_CHECKPOINT_TRIES):
                with self.db.engine.connect() as conn:
                    # A checkpoint waits for every reader and writer: briefly, not the pool's
                    # usual timeout (the pooled connection gets its own back).
                    usual = int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0)
                    conn.exec_driver_sql("PRAGMA busy_timeout = 200")
                    try:
                        busy = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").first()
                    finally:
                        conn.exec_driver_sql(f"PRAGMA busy_timeout = {usual}")
                if busy is None or not busy[0]:
                    return
                time.sleep(0.05)
            log.warning("erased keys deleted and overwritten in the database file; the SQLite"
                        " WAL stayed busy, so its old frames stay in the -wal file until it is"
                        " reused or truncated")  # fmt: skip
        except Exception as exc:
            log.warning("erased keys deleted; scrubbing the database files failed: %s", exc)


def settle(conn: Connection, event_ids: Sequence[str]) -> int:
    """In ``conn``'s transaction (the timeline projection folding ``contact.erased``
    records): destroy what the pending erasures ``event_ids`` named, if the request that
    recorded them did not finish. Only the database says what a record destroys, so a record
    written to the topic by anyone else destroys nothing. How many keys were deleted."""
    rows = conn.execute(select(ERASURES.c.event_id, ERASURES.c.subjects)
                        .where(ERASURES.c.event_id.in_(list(event_ids)))).all()  # fmt: skip
    if not rows:
        return 0
    count = destroy(conn, {s for r in rows for s in json.loads(r.subjects)})
    conn.execute(delete(ERASURES).where(ERASURES.c.event_id.in_([r.event_id for r in rows])))
    return count


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


def _accounts(event: EnvelopeBase) -> list[str]:
    return list(dict.fromkeys((event.account_id, *event.related_account_ids)))


def _by_identity(conn: Connection, firsts: list[str]) -> dict[str, tuple[str, bytes]]:
    found: dict[str, tuple[str, bytes]] = {}
    for chunk in id_chunks(conn, firsts, _CHUNK):
        rows = conn.execute(_BY_IDENTITY[conn.dialect.name == "postgresql"], {"ids": chunk})
        found.update({r.identity: (r.subject, bytes.fromhex(r.key)) for r in rows})
    return found


def _any_of(column: Any, name: str) -> tuple[Any, Any]:
    """(SQLite: ``column IN`` an expanding list; PostgreSQL: ``column = ANY`` one array
    parameter, all ids at once — an IN list of hundreds of placeholders is a new statement
    text for every count, which psycopg parses again in Python: py-spy, batch ingest)."""
    return (column.in_(bindparam(name, expanding=True)),
            column == any_(cast(bindparam(name), postgresql.ARRAY(Text))))  # fmt: skip


# Built once: every POST with a personal contact runs them. [False]: SQLite, [True]: PostgreSQL.
_BY_IDENTITY = tuple(select(KEYS.c.identity, KEYS.c.subject, KEYS.c.key).where(w)
                     for w in _any_of(KEYS.c.identity, "ids"))  # fmt: skip
_KNOWN = tuple(select(IDENTITIES.c.digest, IDENTITIES.c.subject).where(w)
               for w in _any_of(IDENTITIES.c.digest, "digests"))  # fmt: skip


def _known(conn: Connection, digests: set[str]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for chunk in id_chunks(conn, sorted(digests), _CHUNK):
        rows = conn.execute(_KNOWN[conn.dialect.name == "postgresql"], {"digests": chunk})
        found.update((r.digest, r.subject) for r in rows)
    return found


def _holders(conn: Connection, digests: set[str]) -> set[str]:
    """The subjects recorded with any of ``digests``."""
    return {subject for _, subject in _known(conn, digests)}


def _rows(conn: Connection, subjects: set[str]) -> list[Any]:
    found: list[Any] = []
    wanted = sorted(subjects)
    for i in range(0, len(wanted), _CHUNK):
        chunk = wanted[i : i + _CHUNK]
        found += conn.execute(select(IDENTITIES).where(IDENTITIES.c.subject.in_(chunk))).all()
    return found


def _ids(conn: Connection, account_id: str, subjects: set[str]) -> set[str]:
    """The digests of the contact ids ``subjects`` were recorded with on ``account_id``."""
    return {r.digest for r in _rows(conn, subjects)
            if r.kind == "id" and r.account_id == account_id}  # fmt: skip


def _lock_mailboxes(conn: Connection, emails: set[tuple[str, str]]) -> None:
    """PostgreSQL: one transaction at a time checks a mailbox, until it commits. Two ingests
    meeting one email with two new contact ids at once would otherwise each see only its own
    uncommitted row and neither record the mailbox as shared; now the second reads after the
    first committed (READ COMMITTED: each statement sees what committed before it). Taken in
    one order (sorted keys), after this transaction's own identity rows. SQLite runs one
    writer at a time already."""
    if conn.dialect.name != "postgresql" or not emails:
        return
    keys = sorted({int(d[:8], 16) - 2**31 for _, d in emails})  # a digest's first 32 bits
    conn.execute(_LOCK_MAILBOXES, {"cls": _MAILBOX_LOCKS, "keys": keys})


# pg_advisory_xact_lock(int4, int4): its own key space (the bigint locks elsewhere are another).
_MAILBOX_LOCKS = 0x4F56_4D42  # "OVMB"
_LOCK_MAILBOXES = text(
    "SELECT pg_advisory_xact_lock(:cls, k) FROM unnest(CAST(:keys AS integer[])) AS k"
)


def _shared_now(conn: Connection, emails: set[tuple[str, str]]) -> list[str]:
    """Those of ``emails`` (account, digest) recorded with more than one contact id of their
    account: two queries, whatever their number."""
    if not emails:
        return []
    holders: dict[str, set[str]] = {}
    for digest, subject in _known(conn, {d for _, d in emails}):
        holders.setdefault(digest, set()).add(subject)
    ids: dict[str, set[tuple[str, str]]] = {}  # subject -> its (account, id digest)
    for r in _rows(conn, {s for ss in holders.values() for s in ss}):
        if r.kind == "id":
            ids.setdefault(r.subject, set()).add((r.account_id, r.digest))
    return sorted(d for a, d in emails if len({i for s in holders.get(d, ()) for acc, i
                                              in ids.get(s, ()) if acc == a}) > 1)  # fmt: skip


def _shared(conn: Connection, digests: set[str]) -> set[str]:
    """Those of ``digests`` that are shared mailboxes (``SHARED``)."""
    if not digests:
        return set()
    rows = conn.execute(select(SHARED.c.digest).where(SHARED.c.digest.in_(sorted(digests))))
    return set(rows.scalars())


def _alive(conn: Connection, subjects: set[str]) -> list[str]:
    if not subjects:
        return []
    rows = conn.execute(select(KEYS.c.subject).where(KEYS.c.subject.in_(sorted(subjects))))
    return sorted(rows.scalars())
