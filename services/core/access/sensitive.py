"""What a key without ``read_sensitive`` may not see, and the one function that hides it.

Sensitive:
- contact personal data: a customer contact's ``name``, ``email`` and ``title`` (under any
  ``contacts`` list or ``contact`` object of an answer), and a ``contact_key`` made of them
  (``email:…``, ``name:…``: a contact without an id);
- executive notes: what a ``leadership.*`` event says it heard (``heard``, ``concerns``,
  ``complaints``, ``learnings``, ``notes``) and its ``summary``, wherever an answer quotes them
  (the event itself, the leadership report, the voice of the customer, the one-voice view);
- complaint text: a complaint ticket's ``subject``, ``description`` and ``summary`` (an excerpt
  of a ticket's opening that does not say whether it was a complaint is treated as one), and
  the complaint items of reports.

Each such value is replaced by ``RESTRICTED`` (a list keeps its length: each item replaced), so
counts, ids, dates, categories and the shape of every answer stay: the one-voice view still
tells a marketer that a complaint is open, without its words. ``restrict`` returns the answer
and whether it replaced anything (the HTTP layer then says so in ``X-OneVoice-Restricted``).
"""

from __future__ import annotations

from typing import Any

RESTRICTED = "[restricted]"
CONTACT_FIELDS = frozenset({"name", "email", "title"})
HEARD_FIELDS = frozenset({"heard", "concerns", "complaints", "learnings"})
"""What an executive heard, or a list of complaints: hidden wherever they appear."""
NOTE_FIELDS = HEARD_FIELDS | {"notes"}
"""Hidden in a notes object (below); a salesperson's ``notes`` elsewhere are not sensitive."""
TEXT_FIELDS = frozenset({"text", "subject", "summary", "description", "detail"})
SENSITIVE_KINDS = frozenset({"complaint", "executive_concern", "executive_complaint"})
"""Kinds of report items (the voice of the customer, the leadership report) whose ``text``
quotes a complaint or an executive's notes."""


def restrict(value: Any) -> tuple[Any, bool]:
    """``value`` (plain JSON types) with every sensitive value replaced; whether any was."""
    seen = [False]
    return _walk(value, seen), seen[0]


def _hidden(value: Any, seen: list[bool]) -> Any:
    """A text (or a list of texts) replaced; anything else as it is."""
    if isinstance(value, str):
        seen[0] = seen[0] or value != RESTRICTED
        return RESTRICTED
    if isinstance(value, list):
        return [_hidden(v, seen) if isinstance(v, str) else _walk_texts(v, seen) for v in value]
    if isinstance(value, dict):
        return _walk_texts(value, seen)
    return value


def _walk_texts(value: Any, seen: list[bool]) -> Any:
    """A quoted item (``{"text", "event_id", ...}``) or a notes event's payload: its text and
    note fields replaced."""
    if not isinstance(value, dict):
        return _walk(value, seen)
    return {k: _hidden(v, seen) if k in TEXT_FIELDS | NOTE_FIELDS and isinstance(v, str | list)
            else _walk(v, seen) for k, v in value.items()}  # fmt: skip


def _contact(value: Any, seen: list[bool]) -> Any:
    """A contact (``{"name", "email", "title", ...}``) or an entry about one (``{"contact":
    {...}, "contact_key", ...}``)."""
    if not isinstance(value, dict):
        return _walk(value, seen)
    return {k: _hidden(v, seen) if k in CONTACT_FIELDS and isinstance(v, str)
            else _walk({k: v}, seen)[k] for k, v in value.items()}  # fmt: skip


def _walk(value: Any, seen: list[bool]) -> Any:
    if isinstance(value, list):
        return [_walk(v, seen) for v in value]
    if not isinstance(value, dict):
        return value
    notes = _is_notes(value)
    out: dict[str, Any] = {}
    for k, v in value.items():
        if k == "contacts" and isinstance(v, list):
            out[k] = [_contact(c, seen) for c in v]
        elif k == "contact" and isinstance(v, dict):
            out[k] = _contact(v, seen)
        elif k == "contact_key" and isinstance(v, str) and not v.startswith(("id:", RESTRICTED)):
            out[k] = _hidden(v, seen)  # "email:…" or "name:…" when the contact had no id
        elif _heard(k) and isinstance(v, str | list):
            out[k] = _hidden(v, seen)
        elif k == "payload" and isinstance(v, dict) and notes:
            out[k] = _walk_texts(v, seen)
        elif k in TEXT_FIELDS | NOTE_FIELDS and notes and isinstance(v, str | list):
            out[k] = _hidden(v, seen)
        elif k == "items" and notes and isinstance(v, list):  # a report group's quotes
            out[k] = [_walk_texts(i, seen) for i in v]
        else:
            out[k] = _walk(v, seen)
    return out


def _heard(key: str) -> bool:
    """``concerns``, and ``concerns_90d`` alike (the view's windows)."""
    return key in HEARD_FIELDS or key.split("_", 1)[0] in HEARD_FIELDS


def _is_notes(value: dict[str, Any]) -> bool:
    """An object that quotes notes or a complaint as a whole: a ``leadership.*`` event, a
    complaint ticket's event or row, or a report item of a sensitive kind."""
    kind = value.get("type")
    if isinstance(kind, str) and kind.startswith("leadership."):
        return True
    if kind == "support.ticket_opened":
        # A ticket's event is a complaint's when its payload says so; an excerpt without the
        # payload (an account's last touch) cannot tell, and is treated as one.
        payload = value.get("payload")
        return not isinstance(payload, dict) or payload.get("complaint") is True
    if value.get("kind") in SENSITIVE_KINDS:
        return True
    return value.get("complaint") is True and "ticket_id" in value
