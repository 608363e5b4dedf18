"""Process-wide logging: one JSON object per line, or plain text for a terminal.

JSON lines carry ``time`` (UTC, RFC 3339 with milliseconds), ``level``, ``logger``,
``message``, ``request_id`` while an HTTP request is handled (``REQUEST_ID``), every field a
call passed with ``extra=`` (``event_id``, ``partition``, ``offset``, ``projection``...) and
``exception`` with the traceback. Text lines are ``time level logger: message`` followed by
the same context as ``key=value``. ``configure`` installs one handler on the root logger, so
uvicorn's loggers (run with ``log_config=None``) write the same format.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

LogFormat = Literal["json", "text"]

REQUEST_ID: ContextVar[str | None] = ContextVar("onevoice_request_id", default=None)
"""The id of the HTTP request being handled in this context (set by the API's middleware)."""

# Attributes every LogRecord has; anything else on a record came from ``extra=`` (except
# uvicorn's ``color_message``: the message again, with terminal colour codes).
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName", "color_message",
}  # fmt: skip
# alembic.runtime.plugins announces each of its plugins at INFO whenever alembic is loaded;
# alembic's own "Running upgrade" lines (alembic.runtime.migration) stay.
_QUIET = {"httpx": logging.WARNING, "kafka": logging.WARNING,
          "alembic.runtime.plugins": logging.WARNING}  # fmt: skip


def context_of(record: logging.LogRecord) -> dict[str, Any]:
    """The record's context: ``request_id`` (from ``extra=`` or ``REQUEST_ID``) and every other
    ``extra=`` field that is not None, in the order given."""
    context = {k: v for k, v in vars(record).items() if k not in _STANDARD and v is not None}
    request_id = context.pop("request_id", None) or REQUEST_ID.get()
    return {"request_id": request_id, **context} if request_id else context


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in messages are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }  # fmt: skip
        out.update(context_of(record))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...`` for a person at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        context = " ".join(f"{k}={v}" for k, v in context_of(record).items())
        return f"{line} {context}" if context else line


def resolve_format(chosen: LogFormat | None, stream: TextIO) -> LogFormat:
    """``chosen``, or when unset: text when ``stream`` is a terminal, else JSON."""
    if chosen is not None:
        return chosen
    return "text" if stream.isatty() else "json"


def configure(level: str, chosen: LogFormat | None, stream: TextIO | None = None) -> LogFormat:
    """Log every logger's records at ``level`` and above to ``stream`` (stderr) in one format;
    replaces any handler the root logger had. Returns the format used."""
    stream = stream or sys.stderr
    used = resolve_format(chosen, stream)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if used == "json" else TextFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for name, quiet in _QUIET.items():
        logging.getLogger(name).setLevel(quiet)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_log = logging.getLogger(name)
        uvicorn_log.handlers.clear()
        uvicorn_log.setLevel(logging.NOTSET)  # the root's level, like every other logger
        uvicorn_log.propagate = True
    return used
