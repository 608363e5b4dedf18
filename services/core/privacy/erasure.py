"""Erasing a contact's personal data (``privacy``): the one operation behind
``DELETE /v1/admin/contacts`` and ``onevoice contacts erase``.

Order, and why: find the contact's subjects; note in the database what the erasure's events
will destroy (``vault.pending``); append the ``contact.erased`` events naming them (the log
records that the erasure happened, and who asked: ``recorded_by``); then destroy the keys and
the note together. A failure after the append leaves the note, and the timeline projection
destroys what it names when it folds the event (``vault.settle``: only a note the database
holds destroys anything, so a record someone else writes to the topic cannot); a failure
before the append destroys nothing (retry). The event never holds the email it was asked by,
only the contact id when the request named one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.core import codec
from services.core.events import parse_event
from services.core.ports import EventLog, OutgoingRecord
from services.core.privacy.vault import ContactVault

MAX_SUBJECTS = 1000
"""Subjects per ``contact.erased`` event (more are recorded in several)."""


class NothingToErase(LookupError):
    """No sealed contact of that account was recorded with that email or id."""


@dataclass(frozen=True)
class Erased:
    """``subjects``: how many keys the erasure destroyed (this call, or the projector folding
    its event first); ``events``: the ``contact.erased`` events with their positions."""

    account_id: str
    subjects: int
    events: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return {"account_id": self.account_id, "subjects": self.subjects, "events": self.events}


def erase(
    vault: ContactVault, log: EventLog, topic: str, now: datetime, account_id: str, *,
    email: str | None = None, contact_id: str | None = None, without_id: bool = False,
    recorded_by: str,
    source: str = "erasure", actor: dict[str, Any] | None = None,
    departments: Sequence[str] | None = None,
) -> Erased:  # fmt: skip
    """Erase the contact of ``account_id`` named by ``email`` or ``contact_id`` (exactly one).
    Raises ``NothingToErase``, ``AmbiguousContact`` (an email met with several contact ids),
    ``LogUnavailable`` or ``StoreUnavailable`` (nothing destroyed before the event is
    durable), or ``pydantic.ValidationError`` for a bad ``actor`` (``departments``: the
    configured ones)."""
    if (email is None) == (contact_id is None):
        raise ValueError("name the contact by email or by contact id, not both")
    subjects = vault.find(account_id, email=email, contact_id=contact_id,
                          without_id=without_id)  # fmt: skip
    if not subjects:
        raise NothingToErase(account_id)
    records: list[OutgoingRecord] = []
    events: list[dict[str, Any]] = []
    for i in range(0, len(subjects), MAX_SUBJECTS):
        payload: dict[str, Any] = {
            "subjects": subjects[i : i + MAX_SUBJECTS],
            "requested_by": "email" if email else "contact_id",
        }
        if contact_id is not None:
            payload["contact_id"] = contact_id
        body: dict[str, Any] = {"type": "contact.erased", "account_id": account_id,
                                "occurred_at": now.isoformat(), "source": source,
                                "payload": payload}  # fmt: skip
        if actor is not None:
            body["actor"] = actor
        event = parse_event(body, departments).model_copy(
            update={"event_id": uuid.uuid4(), "recorded_at": now, "recorded_by": recorded_by}
        )
        records.append(codec.encode(event))
        events.append({"event_id": str(event.event_id)})
    ids = [e["event_id"] for e in events]
    vault.pending(ids, subjects)
    positions = log.append(topic, records)
    for found, (partition, offset) in zip(events, positions, strict=True):
        found["position"] = {"partition": partition, "offset": offset}
    vault.destroy(subjects, settles=ids)
    return Erased(account_id, len(subjects), events)
