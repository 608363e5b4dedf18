"""Who may do what: API keys and the grant each one carries.

Every request but the health probes and the API's own description carries a key:
``Authorization: Bearer <key>``. A key is 256 random bits (``new_secret``), shown once when it
is created; the database keeps only its SHA-256 (``digest``; ``access.store``), which is enough
for a secret that cannot be guessed, and lets a lookup be one indexed read.

A key's ``Grant`` says what it may do:

- **write** events whose ``actor.department`` is one of ``write_departments`` and, when
  ``write_types`` is set, whose ``type`` is one of them (``write_refusal``);
- **read** timelines, views, lists and reports (``read``), with contacts' personal data,
  executive notes and complaint text replaced by a marker unless ``read_sensitive``
  (``access.sensitive``);
- **admin**: rebuilds, rollbacks, dead letters and keys (``admin``);
- and how many events per second it may write (``write_rate``; ``access.limits``).

The name of the key an event came through is recorded with it (``recorded_by``).
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from services.core.events import EVENT_TYPES, department_of_type

SECRET_PREFIX = "ov_"
"""Every key starts with it, so a leaked key is easy to recognise (secret scanners)."""
SECRET_BYTES = 32  # 256 bits
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")  # fullmatch: "$" would let "name\n" by
SECRET = re.compile(r"ov_[A-Za-z0-9_-]{43,86}")
"""What a key looks like (``new_secret``; fullmatch): anything else is refused unread."""
NAME_RULE = "1 to 64 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit"
SCOPES = ("write", "read", "read-sensitive", "admin")
ANY_DEPARTMENT = "*"
"""In a key's write departments: every configured department, also ones added later."""


def new_secret() -> str:
    """A fresh key: the prefix and 256 random bits, URL-safe base64."""
    return SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def digest(secret: str) -> str:
    """What the database keeps of a key."""
    return hashlib.sha256(secret.encode()).hexdigest()


def bearer(header: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header, or None."""
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


@dataclass(frozen=True)
class Grant:
    """What one key may do (see the module docstring)."""

    name: str
    write_departments: frozenset[str] = frozenset()
    write_types: frozenset[str] | None = None  # None: any type of those departments
    read: bool = False
    admin: bool = False
    read_sensitive: bool = False  # ``access.sensitive``: contacts, executive notes, complaints
    write_rate: float | None = None  # events/s; None: ONEVOICE_WRITE_RATE (access.limits)

    @classmethod
    def everything(cls, name: str) -> Grant:
        """Every scope, every department configured now or later (the first key;
        ``ONEVOICE_AUTH=disabled``)."""
        return cls(
            name, frozenset({ANY_DEPARTMENT}), None, read=True, admin=True, read_sensitive=True
        )

    @property
    def writes(self) -> bool:
        return bool(self.write_departments)

    def write_refusal(self, department: str, event_type: str) -> tuple[str, str] | None:
        """``(field, problem)`` when this key may not write an event of ``department`` and
        ``event_type``; None when it may."""
        if department not in self.write_departments and \
                ANY_DEPARTMENT not in self.write_departments:  # fmt: skip
            allowed = ", ".join(sorted(self.write_departments)) or "none"
            return "actor.department", (
                f"the key {self.name!r} may not write events of department {department!r}"
                f" (it may write: {allowed})"
            )
        if self.write_types is not None and event_type not in self.write_types:
            allowed = ", ".join(sorted(self.write_types)) or "none"
            return "type", (
                f"the key {self.name!r} may not write events of type {event_type!r}"
                f" (it may write: {allowed})"
            )
        return None

    def scopes(self) -> list[str]:
        held = (self.writes, self.read, self.read_sensitive, self.admin)
        return [s for s, has in zip(SCOPES, held, strict=True) if has]


class KeyProblem(ValueError):
    """A key cannot be created as asked: ``field`` names the input, the message says why."""

    def __init__(self, message: str, field: str = "name") -> None:
        super().__init__(message)
        self.field = field


def grant_from(name: str, write_departments: Iterable[str] = (),
               write_types: Iterable[str] | None = None, *, read: bool = False,
               admin: bool = False, read_sensitive: bool = False,
               write_rate: float | None = None, departments: Sequence[str]) -> Grant:  # fmt: skip
    """A checked grant: configured ``departments`` only, known event types only, each of a
    department the key may write (any other could never be written), at least one scope.
    Raises ``KeyProblem``."""
    if not NAME.fullmatch(name):
        raise KeyProblem(f"key name {name!r}: must be {NAME_RULE}")
    wanted = frozenset(write_departments)
    unknown = sorted(wanted - set(departments) - {ANY_DEPARTMENT})
    if unknown:
        raise KeyProblem(f"not configured departments: {', '.join(unknown)} (configured:"
                         f" {', '.join(departments)})", "write_departments")  # fmt: skip
    types = None if write_types is None else frozenset(write_types)
    if types is not None:
        if not types:
            raise KeyProblem("write types: name at least one, or leave them out (any type of"
                             " the departments)", "write_types")  # fmt: skip
        if not wanted:
            raise KeyProblem("write types need write departments", "write_types")
        bad = sorted(t for t in types if t not in EVENT_TYPES)
        if bad:
            raise KeyProblem(f"not event types: {', '.join(bad)}", "write_types")
        foreign = [] if ANY_DEPARTMENT in wanted else sorted(
            t for t in types if department_of_type(t) not in (None, *wanted))  # fmt: skip
        if foreign:
            raise KeyProblem(f"types of departments the key may not write: {', '.join(foreign)}",
                             "write_types")  # fmt: skip
    read = read or read_sensitive  # sensitive fields are read with the rest
    if not (wanted or read or admin):
        raise KeyProblem("a key needs a scope: write departments, read or admin", "scopes")
    if write_rate is not None and not (0 <= write_rate <= 1_000_000 and math.isfinite(write_rate)):
        raise KeyProblem("write rate: events per second from 0 (no limit) to 1000000",
                         "write_rate")  # fmt: skip
    return Grant(
        name,
        wanted,
        types,
        read=read,
        admin=admin,
        read_sensitive=read_sensitive,
        write_rate=write_rate,
    )
