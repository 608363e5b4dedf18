"""The SQL store: one SQLAlchemy engine for SQLite (embedded) or PostgreSQL (production).

Contract: ``Database.transaction()`` yields a connection whose writes commit together or not at
all; ``insert_ignore`` adds rows whose primary key is new and silently skips the rest, on both
dialects, in one statement per call (``bulk_insert`` builds such statements, upserts included).
"""

from __future__ import annotations

import collections
import functools
import json
import keyword
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    Text,
    any_,
    bindparam,
    cast,
    column,
    create_engine,
    event,
    func,
    literal_column,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from services.core.ports import LogUnavailable, StoreUnavailable

# PostgreSQL error classes that say "not now", whatever the data: connection (08), transaction
# rollback (40: serialization, deadlock), insufficient resources (53), lock not available
# (55P03, 55006), operator intervention (57: shutdown, statement timeout), system error (58).
_TRANSIENT_SQLSTATE = ("08", "40", "53", "55P03", "55006", "57", "58")
# SQLite primary result codes of the same kind: BUSY, LOCKED, NOMEM, IOERR, FULL, CANTOPEN,
# PROTOCOL.
_TRANSIENT_SQLITE = {5, 6, 7, 10, 13, 14, 15}


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    state = getattr(orig, "sqlstate", None)
    return state if isinstance(state, str) else None


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` says the database or the log cannot do the work right now (lost
    connection, server down or out of resources, lock or serialization conflicts, timeouts):
    such work is retried, never blamed on a record. Judged by PostgreSQL's SQLSTATE and SQLite's
    result code where the driver gives one, else by the error's class."""
    if isinstance(exc, StoreUnavailable | LogUnavailable | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    state = _sqlstate(exc)
    if state is not None:
        return state.startswith(_TRANSIENT_SQLSTATE)
    code = getattr(getattr(exc, "orig", None), "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in _TRANSIENT_SQLITE
    return isinstance(exc, OperationalError | InterfaceError | DisconnectionError | PoolTimeout)


def is_lock_timeout(exc: BaseException) -> bool:
    """True for PostgreSQL's lock_not_available (55P03), also when wrapped (``StoreUnavailable``
    raised from it): a statement under ``lock_timeout`` gave up waiting for a lock."""
    cause: BaseException | None = exc
    while cause is not None:
        if _sqlstate(cause) == "55P03":
            return True
        cause = cause.__cause__
    return False


def is_systemic(exc: BaseException) -> bool:
    """True when ``exc`` says the database does not fit the code (a missing table or column, a
    missing privilege): no record is to blame, so none may be parked for it."""
    state = _sqlstate(exc)
    if state is not None:
        return state.startswith(("42", "0A"))
    message = str(getattr(exc, "orig", "") or "")
    return isinstance(exc, DBAPIError) and message.startswith(("no such table", "no such column"))


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # Views are derived from the log and committed with their checkpoint, so a crash can only
    # roll both back together: NORMAL keeps them consistent without an fsync per commit.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # Writers take the lock at BEGIN so they queue instead of failing mid-way; readers don't.
    immediate = conn.get_execution_options().get("write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """Owns the engine; hands out transactions.

    On PostgreSQL the process holds at most ``pool_size + max_overflow`` connections (SQLite
    has no server to share, and keeps SQLAlchemy's defaults)."""

    def __init__(self, url: str, *, pool_size: int = 20, max_overflow: int = 20) -> None:
        self.url = url
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        options: dict[str, Any] = {"pool_pre_ping": True}
        if url.startswith("postgresql"):
            # Sized per role (every replica's pool counts against the server's max_connections);
            # a custom plan per query, since psycopg's auto-prepared statements otherwise
            # switch to a generic plan that scans a large account's whole timeline; and no JIT:
            # every query here runs in milliseconds, and a report's per-signal subqueries look
            # costly enough to the planner that it compiled them (38 ms of JIT for a 18 ms query).
            options.update(
                pool_size=pool_size, max_overflow=max_overflow,
                connect_args={"options": "-c plan_cache_mode=force_custom_plan -c jit=off"},
            )  # fmt: skip
        self.engine: Engine = create_engine(url, **options)
        if self.engine.dialect.name == "sqlite":
            # pysqlite's own transaction handling is off so BEGIN IMMEDIATE is ours to issue.
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(
                self.engine,
                "connect",
                lambda dbapi_conn, _r: setattr(dbapi_conn, "isolation_level", None),
            )
            event.listen(self.engine, "begin", _sqlite_begin)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A connection in one transaction: committed on success, rolled back on error.

        Connection-level failures surface as ``StoreUnavailable`` (``is_transient``); other
        database errors propagate as they are.
        """
        try:
            with self.engine.connect().execution_options(write=True) as conn, conn.begin():
                yield conn
        except OperationalError as exc:
            if not is_transient(exc):
                raise
            raise StoreUnavailable(f"database: {exc.orig or exc}") from exc

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection for reads in one snapshot (no write lock is taken on SQLite).

        Every statement of the connection sees the same committed state: SQLite's WAL read
        transaction; REPEATABLE READ on PostgreSQL, so a view assembled from several tables
        reflects one set of projection checkpoints.
        """
        try:
            conn_cm = self.engine.connect()
            if self.dialect == "postgresql":
                conn_cm = conn_cm.execution_options(isolation_level="REPEATABLE READ")
            with conn_cm as conn:
                yield conn
        except OperationalError as exc:
            if not is_transient(exc):
                raise
            raise StoreUnavailable(f"database: {exc.orig or exc}") from exc

    def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            with self.reading() as conn:
                conn.execute(text("SELECT 1"))
        except (SQLAlchemyError, StoreUnavailable):
            return False
        return True

    def analyze(self) -> None:
        """Refresh the planner's statistics (after a bulk rebuild); a no-op on SQLite."""
        if self.dialect == "postgresql":
            with self.transaction() as conn:
                conn.execute(text("ANALYZE"))

    def dispose(self) -> None:
        self.engine.dispose()


def bulk_insert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> tuple[Any, Any]:
    """An INSERT of ``rows`` (all with the same keys) and the parameters to execute it with.

    Returns the dialect's ``Insert`` so the caller can add ``on_conflict_do_nothing()`` or
    ``on_conflict_do_update(...)`` (with ``stmt.excluded``), then ``conn.execute(stmt, params)``.
    PostgreSQL: ONE ``INSERT ... SELECT * FROM json_to_recordset(<the rows as one JSON text>)``,
    whatever the number of rows — measured several times cheaper than an executemany (which
    PostgreSQL runs as one statement per row) and than array parameters (which psycopg escapes
    element by element in Python). SQLite (in-process): an executemany. An upsert must not name
    one key twice in ``rows`` (PostgreSQL refuses to update a row twice in one statement).
    The statement is built once per dialect, table and set of columns (``_insert``).
    """
    columns = tuple(rows[0])
    dialect = conn.dialect.name
    if dialect != "postgresql":
        return _insert(dialect, table, columns), list(rows)
    params = {"rows": json.dumps(rows, ensure_ascii=False, separators=(",", ":"))}
    return _insert(dialect, table, columns), params


def bulk_insert_for(dialect: str, table: Table, columns: Sequence[str]) -> Any:
    """``bulk_insert``'s statement for rows with these ``columns``, without rows: for callers
    that build their own statement on it once (``functools.cache``) and execute it with the
    parameters ``bulk_insert`` returns."""
    return _insert(dialect, table, tuple(columns))


# Statements are immutable: each one built here is reused by every call of its shape. Building
# them per call (``excluded`` aliases, ``on_conflict`` clauses) and generating their cache keys
# was a fifth of the projector's time per batch (py-spy, single-event batches).
_SHAPES = 4096


@functools.lru_cache(maxsize=_SHAPES)
def _insert(dialect: str, table: Table, columns: tuple[str, ...]) -> Any:
    if dialect != "postgresql":
        return sqlite_insert(table)
    source: Any = select(*(literal_column(f'u."{c}"') for c in columns)).select_from(
        text(f"json_to_recordset(CAST(:rows AS json)) AS u({_pg_record(table, columns)})")
    )
    return pg_insert(table).from_select(list(columns), source)


@functools.lru_cache(maxsize=_SHAPES)
def _ignoring(dialect: str, table: Table, columns: tuple[str, ...],
              returning: tuple[str, ...]) -> Any:  # fmt: skip
    stmt = _insert(dialect, table, columns).on_conflict_do_nothing()
    return stmt.returning(*(table.c[c] for c in returning)) if returning else stmt


@functools.lru_cache(maxsize=_SHAPES)
def _newer(dialect: str, table: Table, columns: tuple[str, ...], keys: tuple[str, ...],
           sort: tuple[str, ...], update: tuple[str, ...], returning: str | None,
           oldest: bool) -> Any:  # fmt: skip
    stmt = _insert(dialect, table, columns)
    new = stmt.excluded
    stored, arriving = tuple_(*(table.c[c] for c in sort)), tuple_(*(new[c] for c in sort))
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c[k] for k in keys],
        set_={c: new[c] for c in update},
        where=or_(table.c[sort[0]].is_(None),
                  stored > arriving if oldest else stored < arriving),
    )  # fmt: skip
    return stmt if returning is None else stmt.returning(table.c[returning])


def insert_ignore(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows``; rows whose primary key already exists are skipped (``bulk_insert``)."""
    if rows:
        _, params = bulk_insert(conn, table, rows)
        conn.execute(_ignoring(conn.dialect.name, table, tuple(rows[0]), ()), params)


def insert_new(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], key: str
) -> set[Any]:
    """Like ``insert_ignore``, and return the ``key`` values of the rows actually inserted."""
    if not rows:
        return set()
    _, params = bulk_insert(conn, table, rows)
    stmt = _ignoring(conn.dialect.name, table, tuple(rows[0]), (key,))
    return set(conn.execute(stmt, params).scalars())


def insert_new_keys(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> set[tuple[Any, ...]]:
    """Like ``insert_new`` for a key of several columns: the ``keys`` values (a tuple each) of
    the rows actually inserted."""
    if not rows:
        return set()
    _, params = bulk_insert(conn, table, rows)
    stmt = _ignoring(conn.dialect.name, table, tuple(rows[0]), tuple(keys))
    return {tuple(r) for r in conn.execute(stmt, params)}


def upsert_newer(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], *, keys: Sequence[str],
    sort: Sequence[str], update: Sequence[str], returning: str | None = None,
    oldest: bool = False,
) -> list[Any]:  # fmt: skip
    """Insert ``rows``; where a row with the same ``keys`` exists, overwrite its ``update``
    columns only when the stored ``sort`` columns are NULL or sort before the new row's — the
    newest by sort key wins (with ``oldest``: the oldest), whatever the order rows arrive in.
    One statement (``bulk_insert``); ``rows`` must not repeat a key. Returns the
    ``returning`` column of the rows inserted or changed, when asked."""
    if not rows:
        return []
    # In key order, so two projectors upserting overlapping rows lock them in the same order
    # (in arrival order they deadlocked now and then: retried, but wasted work).
    rows = sorted(rows, key=lambda row: tuple(row[k] for k in keys))
    _, params = bulk_insert(conn, table, rows)
    stmt = _newer(conn.dialect.name, table, tuple(rows[0]), tuple(keys), tuple(sort),
                  tuple(update), returning, oldest)  # fmt: skip
    if returning is None:
        conn.execute(stmt, params)
        return []
    return list(conn.execute(stmt, params).scalars())


def id_chunks(conn: Connection, ids: Sequence[str], size: int = 500) -> Iterator[list[str]]:
    """``ids`` in lists ``among`` takes: all at once on PostgreSQL, ``size`` at a time on SQLite
    (its bound-variable limit)."""
    if conn.dialect.name == "postgresql":
        if ids:
            yield list(ids)
        return
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def among(conn: Connection, column: Any, ids: Sequence[str]) -> Any:
    """``column`` is one of ``ids``: on PostgreSQL one array parameter (``= ANY``), which
    psycopg sends as it is, where an IN list of many placeholders costs Python time per id;
    elsewhere an IN list (give it ``id_chunks``)."""
    if conn.dialect.name == "postgresql":
        return column == any_(cast(bindparam(None, list(ids), expanding=False),
                                   postgresql.ARRAY(Text)))  # fmt: skip
    return column.in_(list(ids))


def json_rows(conn: Connection, columns: Sequence[tuple[str, Any]],
              rows: Sequence[Sequence[Any]], name: str = "j") -> Any:  # fmt: skip
    """``rows`` as a CTE with ``columns`` (name, SQL type), sent as ONE JSON parameter
    whatever their number: ``json_to_recordset`` on PostgreSQL, ``json_each`` on SQLite
    (neither has a bound-variable limit to chunk for, nor a statement text per count)."""
    names = [n for n, _ in columns]
    payload = json.dumps([dict(zip(names, r, strict=True)) for r in rows], ensure_ascii=False,
                         allow_nan=False)  # fmt: skip
    if conn.dialect.name == "postgresql":
        found = func.json_to_recordset(cast(bindparam(None, payload, type_=Text),
                                            postgresql.JSON))  # fmt: skip
        derived = found.table_valued(*(column(n, t) for n, t in columns)).render_derived(
            name=name, with_types=True)  # fmt: skip
        return select(*(derived.c[n] for n in names)).cte(name)
    each = func.json_each(bindparam(None, payload, type_=Text)).table_valued("value")
    return select(*(cast(func.json_extract(each.c.value, f'$."{n}"'), t).label(n)
                    for n, t in columns)).select_from(each).cte(name)  # fmt: skip


def pg_record(table: Table, columns: Sequence[str]) -> str:
    """The column definition list of ``json_to_recordset(...) AS u(<this>)`` for ``columns``
    of ``table``, with the table's own PostgreSQL types."""
    return _pg_record(table, columns)


def _pg_record(table: Table, columns: Sequence[str]) -> str:
    key = (table.name, *columns)
    found = _PG_RECORDS.get(key)
    if found is None:
        found = _PG_RECORDS[key] = ", ".join(
            f'"{c}" {table.c[c].type.compile(dialect=_PG)}' for c in columns
        )
    return found


_PG = postgresql.dialect()  # type: ignore[no-untyped-call]
_PG_RECORDS: dict[tuple[str, ...], str] = {}


def read_together(
    conn: Connection, statements: Sequence[tuple[Any, dict[str, Any]]]
) -> list[list[Any]]:
    """The rows of each SELECT of ``statements`` (statement, parameters), in order, inside
    ``conn``'s transaction (begun here when none is). On PostgreSQL every statement is sent
    before the first answer is awaited (psycopg's pipeline mode): one round trip, two when the
    transaction's BEGIN goes first. Elsewhere they run one after another. Either way a row is a
    tuple whose columns are also attributes, named as SQLAlchemy names them (so they must be
    Python identifiers, not keywords, not starting with "_": checked; and distinct, or SQLite's
    rows refuse the ambiguous name); errors are SQLAlchemy's, as from ``conn.execute``, and a
    lost connection is invalidated."""
    shapes = [_shape(statement) for statement, _ in statements]
    if conn.dialect.name != "postgresql":
        return [list(conn.execute(s, p).all()) for s, p in statements]
    import psycopg

    sent = [_compiled(s, conn.dialect).construct_expanded_state(p) for s, p in statements]
    if not conn.in_transaction():
        conn.begin()  # as conn.execute would: SQLAlchemy ends it (and the raw one) on close
    raw = conn.connection.driver_connection
    try:
        cursors = []
        with raw.pipeline():  # type: ignore[union-attr]
            for state, shape in zip(sent, shapes, strict=True):
                cursor = raw.cursor(row_factory=shape.maker)  # type: ignore[union-attr]
                cursor.execute(state.statement, state.parameters)
                cursors.append(cursor)
        found = []
        for cursor in cursors:
            found.append(cursor.fetchall())
            cursor.close()
        return found
    except psycopg.Error as exc:
        gone = bool(conn.dialect.is_disconnect(exc, raw, None))  # type: ignore[arg-type]
        # Which statement failed is in the error's own message (the pipeline answers at once).
        together = "; ".join(state.statement for state in sent)
        error = DBAPIError.instance(together, None, exc, psycopg.Error,
                                    connection_invalidated=gone)  # fmt: skip
        if gone:
            conn.invalidate()
        raise error from exc


@functools.lru_cache(maxsize=512)
def _compiled(statement: Any, dialect: Any) -> Any:
    """``statement`` compiled for ``dialect``, once per statement object while it is among the
    512 most recently used (give ``read_together`` statements built once per shape)."""
    return statement.compile(dialect=dialect)


class _Shape:
    """The rows of one statement: a named tuple of its columns' SQLAlchemy keys."""

    def __init__(self, names: list[str]) -> None:
        bad = [n for n in names if not n.isidentifier() or keyword.iskeyword(n) or n[0] == "_"]
        if bad:
            raise ValueError(f"read_together needs plain column names, got {bad} of {names}")
        self.row: Any = collections.namedtuple("Row", names)  # type: ignore[misc]

    def maker(self, _cursor: Any) -> Any:
        """psycopg's row factory: the values of a row as this shape's named tuple."""
        return self.row._make


@functools.lru_cache(maxsize=512)
def _shape(statement: Any) -> _Shape:
    return _Shape(list(statement.selected_columns.keys()))
