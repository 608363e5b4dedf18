"""What a key without ``read_sensitive`` may not see, and the one function that hides it.

Sensitive:
- contact personal data: a customer contact's ``name``, ``email`` and ``title`` (under any
  ``contacts`` list or ``contact`` object of an answer), and a ``contact_key`` made of them
  (``email:…``, ``name:…``: a contact without an id);
- executive notes: what a ``leadership.*`` event says it heard (``heard``, ``concerns``,
  ``complaints``, ``learnings``, ``notes``) and its ``summary``, wherever an answer quotes them
  (the event itself, the leadership report, the voice of the customer, the one-voice view);
- complaint text: a complaint ticket's ``subject`` and ``summary`` (an excerpt of a ticket's
  opening that does not say whether it was a complaint is treated as one), a resolution's
  text, cause and prevention, a prevention commitment's text, every text under a key naming
  complaints or recurrences, and the complaint items of reports.

Each such value is replaced by ``RESTRICTED`` (a list keeps its length: each item replaced), so
counts, ids, dates, categories and the shape of every answer stay: the one-voice view still
tells a marketer that a complaint is open, without its words. ``restrict`` returns the answer
and whether it replaced anything (the HTTP layer then says so in ``X-OneVoice-Restricted``).
"""

from __future__ import annotations

from typing import Any

from services.core.privacy import ERASED

RESTRICTED = "[restricted]"
CONTACT_FIELDS = frozenset({"name", "email", "title"})
HEARD_FIELDS = frozenset({"heard", "concerns", "complaints", "learnings"})
"""What an executive heard, or a list of complaints: hidden wherever they appear."""
NOTE_FIELDS = HEARD_FIELDS | {"notes"}
"""Hidden in a notes object (below); a salesperson's ``notes`` elsewhere are not sensitive."""
TEXT_FIELDS = frozenset({"text", "subject", "summary", "description", "detail", "notes",
                         "resolution", "cause", "prevention", "action", "heard", "concerns",
                         "complaints", "learnings"})  # fmt: skip
"""Free-text fields: hidden in a quoting object (``_quotes``), at any depth below it."""
SENSITIVE_KINDS = frozenset({"complaint", "executive_concern", "executive_complaint"})
"""Kinds of report items (the voice of the customer, the leadership report) whose ``text``
quotes a complaint or an executive's notes."""
COMPLAINT_KEYS = ("complaint", "recurrence")
"""A key naming one of these (``open_complaints``, ``recurrences_after_fix``,
``complaints_90d``) holds complaints: every text below it is hidden."""


def restrict(value: Any) -> tuple[Any, bool]:
    """``value`` (plain JSON types) with every sensitive value replaced; whether any was."""
    seen = [False]
    return _walk(value, seen), seen[0]


def _hidden(value: Any, seen: list[bool]) -> Any:
    """Every string in ``value`` replaced, at any depth (lists keep their length)."""
    if isinstance(value, str):
        if value == ERASED:  # nothing left to hide, and a reader may know it was erased
            return value
        seen[0] = seen[0] or value != RESTRICTED
        return RESTRICTED
    if isinstance(value, list):
        return [_hidden(v, seen) for v in value]
    if isinstance(value, dict):
        return {k: _hidden(v, seen) for k, v in value.items()}
    return value


def _quoted(value: Any, seen: list[bool]) -> Any:
    """A quoting subtree: its free-text fields hidden at every depth, contacts too; ids,
    dates, categories and numbers kept."""
    if isinstance(value, list):
        return [_quoted(v, seen) for v in value]
    if not isinstance(value, dict):
        return value
    out = _walk(value, seen)  # contacts and the rest of the rules
    return {k: _hidden(v, seen) if k in TEXT_FIELDS and isinstance(v, str | list)
            else _quoted(v, seen) for k, v in out.items()}  # fmt: skip


def _contact(value: Any, seen: list[bool]) -> Any:
    """A contact (``{"name", "email", "title", ...}``) or an entry about one (``{"contact":
    {...}, "contact_key", ...}``); a bare string in a contact's place is hidden whole."""
    if isinstance(value, str):
        return _hidden(value, seen)
    if not isinstance(value, dict):
        return _walk(value, seen)
    return {k: _hidden(v, seen) if k in CONTACT_FIELDS and isinstance(v, str)
            else _walk({k: v}, seen)[k] for k, v in value.items()}  # fmt: skip


def _walk(value: Any, seen: list[bool]) -> Any:
    if isinstance(value, list):
        return [_walk(v, seen) for v in value]
    if not isinstance(value, dict):
        return value
    if _quotes(value):
        value = {k: _hidden(v, seen) if k in TEXT_FIELDS and isinstance(v, str | list)
                 else v for k, v in value.items()}  # fmt: skip
        quoting = True
    else:
        quoting = False
    out: dict[str, Any] = {}
    for k, v in value.items():
        if k == "contacts" and isinstance(v, list):
            out[k] = [_contact(c, seen) for c in v]
        elif k == "contact" and isinstance(v, dict | str):
            out[k] = _contact(v, seen)
        elif k == "contact_key" and isinstance(v, str) and \
                not v.startswith(("id:", "ref:", RESTRICTED)):  # fmt: skip
            out[k] = _hidden(v, seen)  # "email:…" or "name:…" when the contact had no id
        elif _heard(k) and isinstance(v, str | list):
            out[k] = _quoted(v, seen) if _all_dicts(v) else _hidden(v, seen)
        elif isinstance(v, dict | list) and (quoting or any(w in k for w in COMPLAINT_KEYS)):
            out[k] = _quoted(v, seen)  # a payload, a report group's items, complaint lists
        else:
            out[k] = _walk(v, seen)
    return out


def _all_dicts(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _heard(key: str) -> bool:
    """``concerns``, and ``concerns_90d`` alike (the view's windows)."""
    return key in HEARD_FIELDS or key.split("_", 1)[0] in HEARD_FIELDS


def _quotes(value: dict[str, Any]) -> bool:
    """An object that quotes notes or a complaint as a whole: a ``leadership.*`` event, a
    ticket's opening or resolution (its event, or an excerpt), a complaint ticket's row, a
    prevention (a commitment with its ticket), or a report item of a sensitive kind."""
    kind = value.get("type")
    if isinstance(kind, str) and kind.startswith("leadership."):
        return True
    if kind == "support.ticket_opened":
        # A ticket's event is a complaint's when its payload says so; an excerpt without the
        # payload (an account's last touch) cannot tell, and is treated as one.
        payload = value.get("payload")
        return not isinstance(payload, dict) or payload.get("complaint") is True
    if kind == "support.ticket_resolved":  # its resolution, cause and prevention
        return True
    if value.get("kind") in SENSITIVE_KINDS:
        return True
    prevention = value.get("prevention")  # a commitment made to prevent a complaint's recurrence
    if isinstance(prevention, dict) and "ticket_id" in prevention:
        return True
    return "ticket_id" in value and (value.get("complaint") is True or "text" in value)
