"""Which database errors are retried (transient), blamed on nobody (systemic), or blamed on the
records being applied (everything else: bisected and parked)."""

from __future__ import annotations

import sqlite3

import psycopg.errors as pg
import pytest
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, ProgrammingError

from services.core.adapters.sql import is_systemic, is_transient
from services.core.ports import LogUnavailable, StoreUnavailable


def wrap(kind: type[Exception], orig: Exception) -> Exception:
    return kind("INSERT ...", {}, orig)  # type: ignore[call-arg]


def sqlite_error(code: int, message: str) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code
    return error


@pytest.mark.parametrize(
    ("error", "transient", "systemic"),
    [
        (wrap(OperationalError, pg.SerializationFailure()), True, False),
        (wrap(OperationalError, pg.DeadlockDetected()), True, False),
        (wrap(OperationalError, pg.AdminShutdown()), True, False),
        (wrap(OperationalError, pg.QueryCanceled()), True, False),
        (wrap(OperationalError, pg.DiskFull()), True, False),
        (wrap(OperationalError, pg.LockNotAvailable()), True, False),
        # an index row too big for its page: the record's fault, an OperationalError all the same
        (wrap(OperationalError, pg.ProgramLimitExceeded()), False, False),
        (wrap(DataError, pg.StringDataRightTruncation()), False, False),
        (wrap(IntegrityError, pg.UniqueViolation()), False, False),
        (wrap(ProgrammingError, pg.UndefinedTable()), False, True),
        (wrap(ProgrammingError, pg.UndefinedColumn()), False, True),
        (wrap(ProgrammingError, pg.InsufficientPrivilege()), False, True),
        (wrap(OperationalError, pg.OperationalError("connection refused")), True, False),
        (wrap(OperationalError, sqlite_error(5, "database is locked")), True, False),
        (wrap(OperationalError, sqlite_error(10, "disk I/O error")), True, False),
        (wrap(OperationalError, sqlite_error(1, "no such table: t")), False, True),
        (wrap(OperationalError, sqlite_error(18, "string or blob too big")), False, False),
        (StoreUnavailable("down"), True, False),
        (LogUnavailable("down"), True, False),
        (ValueError("a record the fold cannot handle"), False, False),
        (OverflowError("date value out of range"), False, False),
    ],
)  # fmt: skip
def test_error_classes(error: Exception, transient: bool, systemic: bool) -> None:
    assert (is_transient(error), is_systemic(error)) == (transient, systemic)
