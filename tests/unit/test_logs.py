"""Log lines (services/core/logs.py): JSON fields, text mode, the format setting."""

from __future__ import annotations

import io
import json
import logging
import os
import re
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from services.core import logs
from services.core.settings import Settings


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def emit(formatter: logging.Formatter, *args: object, **kwargs: object) -> str:
    """What ``formatter`` makes of one ``log.warning(*args, **kwargs)`` call."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("onevoice.test")
    logger.addHandler(handler)
    try:
        logger.warning(*args, **kwargs)  # type: ignore[arg-type]
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


@pytest.fixture
def request_id() -> Iterator[str]:
    token = logs.REQUEST_ID.set("req-7")
    yield "req-7"
    logs.REQUEST_ID.reset(token)


def test_json_line_has_the_fields_and_the_context(request_id: str) -> None:
    context = {"event_id": "e-1", "partition": 3, "offset": 17, "reason": None}
    line = emit(logs.JsonFormatter(), "parked %s\nnext line", "x", extra=context)
    assert line.count("\n") == 1  # one object per line: the message's newline is escaped
    record = json.loads(line)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record.pop("time"))
    assert record == {
        "level": "WARNING", "logger": "onevoice.test", "message": "parked x\nnext line",
        "request_id": "req-7", "event_id": "e-1", "partition": 3, "offset": 17,
    }  # fmt: skip


def test_json_line_without_a_request_carries_no_request_id_and_keeps_the_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        line = emit(logs.JsonFormatter(), "failed", exc_info=True)
    record = json.loads(line)
    assert set(record) == {"time", "level", "logger", "message", "exception"}
    assert record["exception"].startswith("Traceback")
    assert record["exception"].endswith("ValueError: boom")


def test_an_explicit_request_id_wins_over_the_context(request_id: str) -> None:
    record = json.loads(emit(logs.JsonFormatter(), "late", extra={"request_id": "req-9"}))
    assert record["request_id"] == "req-9"


def test_text_line_is_plain_with_the_context_as_key_values(request_id: str) -> None:
    line = emit(logs.TextFormatter(), "parked %d", 1, extra={"partition": 3, "offset": 17})
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING onevoice.test: parked 1"
        r" request_id=req-7 partition=3 offset=17\n",
        line,
    ), line


def test_text_line_outside_a_request_has_no_context() -> None:
    assert emit(logs.TextFormatter(), "plain").endswith(" WARNING onevoice.test: plain\n")


def test_format_defaults_to_text_on_a_terminal_and_json_elsewhere() -> None:
    assert logs.resolve_format(None, Terminal()) == "text"
    assert logs.resolve_format(None, io.StringIO()) == "json"
    assert logs.resolve_format("json", Terminal()) == "json"
    assert logs.resolve_format("text", io.StringIO()) == "text"


def test_the_setting_takes_json_or_text_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("ONEVOICE_")]:
        monkeypatch.delenv(name)
    assert Settings().log_format is None
    monkeypatch.setenv("ONEVOICE_LOG_FORMAT", "text")
    assert Settings().log_format == "text"
    monkeypatch.setenv("ONEVOICE_LOG_FORMAT", "xml")
    with pytest.raises(ValidationError, match="log_format"):
        Settings()


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Put the root logger and uvicorn's back as they were: ``configure`` replaces them."""
    names = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "kafka")
    touched = [logging.getLogger(name) for name in names]
    saved = [(lg.handlers[:], lg.level, lg.propagate) for lg in touched]
    # As an earlier uvicorn.Config(log_level="warning") in this process leaves them:
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    yield
    for lg, (handlers, level, propagate) in zip(touched, saved, strict=True):
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate


def test_configure_sends_every_logger_uvicorns_too_through_one_format(root_logging: None) -> None:
    stream = io.StringIO()
    assert logs.configure("INFO", None, stream) == "json"
    logging.getLogger("uvicorn.access").info('%s - "%s %s"', "127.0.0.1:5", "GET", "/healthz")
    logging.getLogger("services.test").debug("below the level")
    logging.getLogger("kafka.conn").info("quieted")
    logging.getLogger("uvicorn.error").info("Started %d", 7, extra={"color_message": "\x1b[36m"})
    access, started = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (access["logger"], access["level"]) == ("uvicorn.access", "INFO")
    assert access["message"] == '127.0.0.1:5 - "GET /healthz"'
    assert set(started) == {"time", "level", "logger", "message"}  # no colour codes
