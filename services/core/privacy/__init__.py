"""A contact's personal data, sealed so that it can be erased from an append-only log.

Crypto-shredding: a log cannot forget, so what it holds of a person is unreadable without a
key that lives only in the database, one key per contact (its *subject*). Erasing the contact
destroys the key; every copy of the sealed data (the log, every view, every replay and rebuild
of them) then reads ``[erased]``.

- **Sealing** (ingest, before the append): a contact's ``name``, ``email`` and ``title``
  (``events.PERSONAL_FIELDS``) become one ``sealed`` value, ``ov1.<subject>.<fields>.<data>``:
  the subject (32 hex digits), which of the fields it holds (``n``, ``e``, ``t``), and AES-256-GCM
  over their JSON (a random 96-bit nonce before the ciphertext, the tag after it, base64url;
  the associated data binds it to the subject). The contact's ``id`` stays in the clear: it is
  the customer system's reference, and the views group by it.
- **Who a contact is**: per account, their id, else their email (NFC, case-folded), else their
  name (``identities``) — the same rule the views group contacts by — with one key each. An
  erasure finds a contact by id or email on the event's account or any related account: a
  contact id, with the records of that contact's emails that carry no id, as long as no other
  id was met with that email; an email, with the id-carrying contact met with it, unless two
  were (then the erasure must name an id).
- **Reading** (``reveal``): an answer's sealed contacts are opened with their keys just before
  it is sent (and before ``access.sensitive`` hides them from a key without
  ``read_sensitive``); a contact whose key is gone reads ``[erased]`` in each field it had.

Nothing here is stored in the clear: the database holds the keys and SHA-256 digests of the
account and identity (``vault``); erasure deletes both.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.core.events import PERSONAL_FIELDS, Contact

VERSION = "ov1"
ERASED = "[erased]"
NONCE_BYTES = 12
LETTERS = {"name": "n", "email": "e", "title": "t"}
FIELDS = {v: k for k, v in LETTERS.items()}


def new_key() -> bytes:
    """A fresh 256-bit AES key."""
    return AESGCM.generate_key(bit_length=256)


def new_subject() -> str:
    """A fresh subject: 128 random bits as 32 hex digits (says nothing about the person)."""
    return uuid.uuid4().hex


def digest(account_id: str, identity: str) -> str:
    """The stored form of one way to recognise a contact on an account."""
    return hashlib.sha256(f"{account_id}\x1f{identity}".encode()).hexdigest()


def folded(text: str) -> str:
    """How emails and names are compared: Unicode NFC, then case-folded."""
    return unicodedata.normalize("NFC", text).casefold()


@dataclass(frozen=True)
class Identity:
    """Who a contact is: ``first``, the digest its key is found by at ingest (on the event's
    account); ``names``, each ``(account_id, kind, digest)`` an erasure may name it by (its id
    and its email, on the event's account and on each related account; kind ``id``, ``email``
    or, for the first of a contact with neither, ``name``)."""

    first: str
    names: frozenset[tuple[str, str, str]]


def identities(accounts: Sequence[str], contact: Contact) -> Identity:
    """``contact``'s identity on an event of ``accounts`` (its account, then related ones)."""
    named = [(kind, value) for kind, value in (
        ("id", None if contact.id is None else f"id:{contact.id}"),
        ("email", None if contact.email is None else f"email:{folded(contact.email)}"),
    ) if value is not None]  # fmt: skip
    kind, primary = named[0] if named else ("name", f"name:{folded(contact.name or '')}")
    first = digest(accounts[0], primary)
    names = {(a, k, digest(a, v)) for a in accounts for k, v in named}
    return Identity(first, frozenset(names | {(accounts[0], kind, first)}))


def seal(contact: Contact, subject: str, key: bytes) -> Contact:
    """``contact`` with its personal data sealed under ``key`` (a contact without any is
    returned as it is)."""
    return Sealer().seal(contact, subject, key)


class Sealer:
    """Seals the contacts of one batch: a cipher made once per key, and one sealed value per
    distinct contact (the same person twice in a batch seals to the same text: its subject
    already says they are one)."""

    def __init__(self) -> None:
        self._ciphers: dict[str, AESGCM] = {}
        self._done: dict[tuple[str, str | None, str | None, str | None, str | None], Contact]
        self._done = {}

    def seal(self, contact: Contact, subject: str, key: bytes) -> Contact:
        """``seal``."""
        memo = (subject, contact.id, contact.name, contact.email, contact.title)
        done = self._done.get(memo)
        if done is not None:
            return done
        fields = {f: getattr(contact, f) for f in PERSONAL_FIELDS if getattr(contact, f)}
        if not fields:
            return contact
        cipher = self._ciphers.get(subject)
        if cipher is None:
            cipher = self._ciphers[subject] = AESGCM(key)
        nonce = os.urandom(NONCE_BYTES)
        plain = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()
        letters = "".join(LETTERS[f] for f in fields)
        sealed = cipher.encrypt(nonce, plain, _bound(subject, letters))
        data = base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode()
        made = Contact(id=contact.id, sealed=f"{VERSION}.{subject}.{letters}.{data}")
        self._done[memo] = made
        return made


def parts(sealed: str) -> tuple[str, list[str]] | None:
    """The subject and field names of a sealed value; None when it is not one."""
    pieces = sealed.split(".")
    if len(pieces) != 4 or pieces[0] != VERSION or len(pieces[1]) != 32:
        return None
    names = [FIELDS.get(letter) for letter in pieces[2]]
    if not names or None in names:
        return None
    return pieces[1], [n for n in names if n is not None]


def opened(sealed: str, key: bytes | None) -> dict[str, Any]:
    """The fields a sealed value holds; each ``ERASED`` when ``key`` is None (destroyed) or
    does not open it."""
    found = parts(sealed)
    if found is None:
        return {}
    return Openers({} if key is None else {found[0]: key}).open(sealed)


class Openers:
    """Opens sealed values with the keys of an answer (a cipher made once per key)."""

    def __init__(self, keys: dict[str, bytes]) -> None:
        self._keys = keys
        self._ciphers: dict[str, AESGCM] = {}

    def open(self, sealed: str) -> dict[str, Any]:
        """``opened`` (``{}`` for a value that is not a sealed one)."""
        found = parts(sealed)
        if found is None:
            return {}
        plain = self._plain(sealed, found[0])
        if plain is None:
            return dict.fromkeys(found[1], ERASED)
        fields: dict[str, Any] = json.loads(plain)
        return {n: fields.get(n) for n in found[1]}

    def members(self, sealed: str) -> bytes | None:
        """The JSON members the sealed value stands for (``"name":"…","email":"…"``, the
        text that was sealed without its braces), or each field ``ERASED``; None when it is
        not a sealed value."""
        found = parts(sealed)
        if found is None:
            return None
        plain = self._plain(sealed, found[0])
        if plain is None:
            return ",".join(f'"{n}":"{ERASED}"' for n in found[1]).encode()
        return plain[1:-1]

    def _plain(self, sealed: str, subject: str) -> bytes | None:
        """The sealed JSON text; None when its key is gone or does not open it."""
        key = self._keys.get(subject)
        if key is None:
            return None
        cipher = self._ciphers.get(subject)
        if cipher is None:
            cipher = self._ciphers[subject] = AESGCM(key)
        try:
            letters, data = sealed.split(".", 3)[2:]
            raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
            plain: bytes = cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:],
                                          _bound(subject, letters))  # fmt: skip
            return plain
        except (InvalidTag, ValueError):
            return None


def _bound(subject: str, letters: str) -> bytes:
    """The associated data: a sealed value opens only under its subject and field list."""
    return f"{VERSION}.{subject}.{letters}".encode()
