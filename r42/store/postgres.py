"""The store on PostgreSQL (setting `database_url`, R42_DATABASE_URL): a connection pool per
process, the same numbered migrations as SQLite (translated by r42.store.dialect), and connection
objects that behave like sqlite3's for the store modules (`conn.execute(sql, params).fetchone()`).

psycopg and psycopg_pool are imported only here, and only when database_url is set. A write
transaction holds one pooled connection; a read outside one borrows a connection per statement.
PostgreSQL's errors become StoreError one-liners that name host, port and database, never the
password; a unique violation is raised as sqlite3.IntegrityError so store code catches one type.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence
from urllib.parse import urlsplit

from r42.errors import ConfigError
from r42.store.dialect import SUPPORT_SQL, SUPPORT_VERSION, numbered, to_postgres, to_postgres_ddl

MIGRATION_LOCK = 0x72343221  # pg_advisory_lock key: one server migrates at a time
CONNECT_TIMEOUT_S = 5
POOL_MAX = 16  # connections per process; a write transaction or a read statement holds one briefly
POOL_WAIT_S = 10  # then a StoreError: a request fails rather than hang while PostgreSQL is away


def shown(url: str) -> str:
    """A PostgreSQL URL as it may be printed: host, port and database, never user or password."""
    parts = urlsplit(url)
    return f"postgresql://{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"


def _store_error(url: str, exc: BaseException, doing: str) -> ConfigError:
    from r42.store.db import StoreError

    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return StoreError(
        f"PostgreSQL at {shown(url)} {doing}: {first_line.replace(url, shown(url))}",
        "check database_url (R42_DATABASE_URL) and that PostgreSQL runs",
    )


def _import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        from r42.store.db import StoreError

        raise StoreError(
            "database_url is set but the psycopg package is not installed", "pip install 'r42[team]'"
        ) from None
    return psycopg


@contextmanager
def connection_of_its_own(url: str, doing: str) -> Iterator[Any]:
    """A psycopg connection to `url` outside the pool (autocommit), for a migration or a copy; its
    errors become StoreError one-liners ("PostgreSQL at ... {doing}: ...")."""
    psycopg = _import_psycopg()
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            yield conn
    except psycopg.Error as exc:
        raise _store_error(url, exc, doing) from None


def _configure(conn: Any) -> None:
    """Types as SQLite's Python module returns them: numeric (sum of integers, avg) as int or float,
    Python bools stored as 0/1 (the schema has no boolean columns), a NaN stored as NULL."""
    from psycopg.adapt import Loader
    from psycopg.types.numeric import FloatDumper as psycopg_float_dumper
    from psycopg.types.numeric import IntDumper

    class NumericLoader(Loader):
        def load(self, data: Any) -> Any:
            text = bytes(data).decode()
            return float(text) if "." in text or "e" in text.lower() or "N" in text else int(text)

    class FloatDumper(psycopg_float_dumper):
        def dump(self, obj: float) -> Any:
            return None if obj != obj else super().dump(obj)  # NaN is NULL, as SQLite stores it

    conn.adapters.register_loader("numeric", NumericLoader)
    conn.adapters.register_dumper(bool, IntDumper)
    conn.adapters.register_dumper(float, FloatDumper)


class Result:
    """A finished statement's rows, read like a sqlite3 cursor."""

    def __init__(self, rows: list[tuple], rowcount: int) -> None:
        self._rows = rows
        self._next = 0
        self._rowcount = rowcount

    def _arrive(self) -> None:
        """Wait for the statement's result (here: it came with the statement)."""

    @property
    def rowcount(self) -> int:
        self._arrive()
        return self._rowcount

    def fetchone(self) -> tuple | None:
        self._arrive()
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchall(self) -> list[tuple]:
        self._arrive()
        rows, self._next = self._rows[self._next :], len(self._rows)
        return rows

    def __iter__(self) -> Iterator[tuple]:
        return iter(self.fetchall())


class PendingResult(Result):
    """A statement sent in pipeline mode: its result is read when first asked for, which syncs the
    pipeline (one round trip for every statement sent so far). Unread, it costs no round trip."""

    def __init__(self, cursor: Any, pipeline: Any, url: str) -> None:
        super().__init__([], -1)
        self._cursor: Any = cursor
        self._pipeline = pipeline
        self._url = url

    def _arrive(self) -> None:
        cursor, self._cursor = self._cursor, None
        if cursor is None:
            return
        with _statement_errors(self._url):
            if cursor.pgresult is None:
                self._pipeline.sync()
            self._rows = cursor.fetchall() if cursor.description is not None else []
            self._rowcount = cursor.rowcount


@contextmanager
def _statement_errors(url: str) -> Iterator[None]:
    """A unique violation as sqlite3.IntegrityError (what store code catches), any other error as
    a StoreError one-liner."""
    psycopg = _import_psycopg()
    try:
        yield
    except psycopg.errors.UniqueViolation as exc:
        raise sqlite3.IntegrityError(str(exc).splitlines()[0]) from None
    except psycopg.Error as exc:
        raise _store_error(url, exc, "failed") from None


RAW_ABOVE = 50  # psycopg caches its parse of a statement's placeholders up to this many parameters


def _run(raw: Any, sql: str, params: Any, url: str, pipeline: Any = None) -> Result:
    values = _params(params)
    if isinstance(values, tuple) and len(values) > RAW_ABOVE:  # a multi-row INSERT of a batch
        query, cursor_of = numbered(to_postgres(sql)), _import_psycopg().RawCursor
        return _send(raw, url, pipeline, lambda cursor: cursor.execute(query, values), cursor_of)
    return _send(raw, url, pipeline, lambda cursor: cursor.execute(to_postgres(sql), values))


def _send(raw: Any, url: str, pipeline: Any, run: Callable[[Any], None], cursor_of: Any = None) -> Result:
    """`run(cursor)` on a new cursor (made by `cursor_of(raw)`, else the connection's default);
    in pipeline mode its result is read when asked for (and the cursor stays open until then)."""
    cursor = raw.cursor() if cursor_of is None else cursor_of(raw)
    if pipeline is not None:
        with _statement_errors(url):
            run(cursor)
        return PendingResult(cursor, pipeline, url)
    with _statement_errors(url), cursor:
        run(cursor)
        rows = cursor.fetchall() if cursor.description is not None else []
        return Result(rows, cursor.rowcount)


def _params(params: Any) -> Any:
    return params if isinstance(params, dict) else tuple(params or ())


class Connection:
    """One pooled connection inside a transaction, with sqlite3.Connection's execute methods.

    With a `pipeline` (psycopg's pipeline mode: the log writer's batches), statements are sent
    without waiting for their results; a batch of rows then costs a round trip or two, not one per
    statement. A result is waited for only when read (PendingResult), and an error may surface
    there or at the end of the pipeline instead of at its own statement: the whole transaction
    fails either way."""

    backend = "postgresql"

    def __init__(self, raw: Any, url: str, pipeline: Any = None) -> None:
        self.raw = raw
        self.url = url
        self.pipeline = pipeline

    def execute(self, sql: str, params: Any = ()) -> Result:
        return _run(self.raw, sql, params, self.url, self.pipeline)

    def executemany(self, sql: str, rows: Sequence[Any]) -> Result:
        params = [_params(row) for row in rows]  # in pipeline mode it rides the pipeline: no sync of its own
        return _send(self.raw, self.url, self.pipeline, lambda cursor: cursor.executemany(to_postgres(sql), params))

    @contextmanager
    def transaction(self) -> Iterator["Connection"]:
        """A savepoint inside this transaction (db.transaction on a connection already writing)."""
        with self.raw.transaction():
            yield self

    def lock(self, name: str, number: int = 0) -> None:
        """Serialise this transaction with every other one that locks the same name (until commit)."""
        self.execute("SELECT pg_advisory_xact_lock(hashtext(?), ?)", (name, number))


class Reader:
    """Reads outside a transaction: each statement borrows a pooled connection (autocommit)."""

    backend = "postgresql"

    def __init__(self, store: "Store") -> None:
        self.store = store

    def execute(self, sql: str, params: Any = ()) -> Result:
        with self.store.borrow() as raw:
            return _run(raw, sql, params, self.store.url)

    def executemany(self, sql: str, rows: Sequence[Any]) -> Result:
        with self.store.transaction() as conn:
            return conn.executemany(sql, rows)

    def transaction(self) -> Any:
        return self.store.transaction()


class Store:
    """The pool of one process for one database_url; migrated when first opened."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pool: Any = None
        self.reader = Reader(self)  # one object: callers remember things per connection (keys.authenticate_cached)
        self.listening: dict[str, Any] = {}  # channel -> its listener's connection (None between connections)
        self.closed = threading.Event()

    def open(self) -> None:
        _import_psycopg()
        try:
            from psycopg_pool import ConnectionPool
        except ImportError:
            from r42.store.db import StoreError

            raise StoreError(
                "database_url is set but the psycopg_pool package is not installed", "pip install 'r42[team]'"
            ) from None
        with connection_of_its_own(self.url, "cannot be used") as conn:
            migrate(conn, self.url)
        self.pool = ConnectionPool(
            self.url,
            min_size=1,
            max_size=POOL_MAX,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
            configure=_configure,
            open=True,
            name="r42",
        )

    @contextmanager
    def borrow(self) -> Iterator[Any]:
        psycopg = _import_psycopg()
        from psycopg_pool import PoolTimeout

        try:
            with self.pool.connection(timeout=POOL_WAIT_S) as raw:
                yield raw
        except (PoolTimeout, psycopg.OperationalError) as exc:
            raise _store_error(self.url, exc, "cannot be reached") from None

    @contextmanager
    def transaction(self, pipelined: bool = False) -> Iterator[Connection]:
        """A write transaction on one pooled connection; pipelined: in pipeline mode (see Connection)."""
        psycopg = _import_psycopg()
        with self.borrow() as raw:
            try:
                with raw.transaction():
                    if not pipelined:
                        yield Connection(raw, self.url)
                    else:
                        with raw.pipeline() as pipeline:  # its end syncs: every result is in before COMMIT
                            yield Connection(raw, self.url, pipeline)
            except psycopg.Error as exc:  # the COMMIT (or the pipeline's last sync) failed
                raise _store_error(self.url, exc, "failed") from None

    def notify(self, channel: str, payload: str) -> None:
        """Tell every process listening on `channel` (delivered at once: the statement autocommits)."""
        self.reader.execute("SELECT pg_notify(?, ?)", (channel, payload))

    def listen(self, channel: str, callback: Any) -> None:
        """Call `callback(payload)` on a background thread for each notification on `channel`
        (LISTEN on a connection of its own, reconnecting after an error). Once per channel."""
        if channel in self.listening:  # the common case, without the lock
            return
        with _stores_lock:
            if channel in self.listening:
                return
            self.listening[channel] = None
        thread = threading.Thread(target=self._listen, args=(channel, callback), name=f"r42-pg-{channel}", daemon=True)
        thread.start()

    def _listen(self, channel: str, callback: Any) -> None:
        psycopg = _import_psycopg()
        while not self.closed.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as conn:
                    self.listening[channel] = conn
                    conn.execute(f"LISTEN {channel}")
                    callback("")  # news may have been missed while not listening
                    for note in conn.notifies():
                        callback(note.payload)
            except psycopg.Error:
                pass  # PostgreSQL went away or the store was closed: try again shortly
            self.closed.wait(0.5)

    def close(self) -> None:
        self.closed.set()
        for conn in self.listening.values():
            if conn is not None:
                conn.close()
        if self.pool is not None:
            self.pool.close()
            self.pool = None


_stores: dict[tuple[int, str], Store] = {}
_stores_lock = threading.Lock()


def store_for(url: str) -> Store:
    """This process's Store for `url` (a forked child opens its own pool)."""
    key = (os.getpid(), url)
    store = _stores.get(key)
    if store is not None:
        return store
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = Store(url)
            store.open()
            _stores[key] = store
    return store


def close_stores() -> None:
    """Close every pool of this process (tests, and `r42 store copy` before it exits)."""
    with _stores_lock:
        for key, store in list(_stores.items()):
            if key[0] == os.getpid():
                store.close()
            del _stores[key]


# The version table: created before migration 1, so it can say which migrations ran.
VERSION_TABLE = "CREATE TABLE IF NOT EXISTS r42_schema (version BIGINT NOT NULL, support BIGINT NOT NULL)"


def schema_version(conn: Any) -> int | None:
    """The schema version of the database on `conn` (a psycopg connection); None when it has no r42 schema."""
    row = conn.execute("SELECT to_regclass('r42_schema') IS NOT NULL").fetchone()
    if not row[0]:
        return None
    found = conn.execute("SELECT version FROM r42_schema").fetchone()
    return int(found[0]) if found else 0


def migrate(conn: Any, url: str) -> int:
    """Bring the schema up to this r42's version under an advisory lock (servers starting together
    wait for the first); returns the version. Refuses a database written by a newer r42 and one
    that holds r42's tables without r42's version table."""
    from r42.store.db import MIGRATIONS, SCHEMA_VERSION, StoreError, _after_migration, statements

    if _current(conn) == (SCHEMA_VERSION, SUPPORT_VERSION):
        return SCHEMA_VERSION
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        with conn.transaction():
            version = schema_version(conn)
            if version is None:
                if conn.execute("SELECT to_regclass('routes') IS NOT NULL").fetchone()[0]:
                    raise StoreError(
                        f"the database at {shown(url)} has a routes table but no r42_schema: not an r42 store",
                        "give r42 a database of its own",
                    )
                conn.execute(VERSION_TABLE)
                conn.execute("INSERT INTO r42_schema (version, support) VALUES (0, 0)")
                version = 0
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the store at {shown(url)} was written by a newer r42 (schema {version};"
                    f" this r42 knows up to {SCHEMA_VERSION})",
                    "upgrade r42",
                )
            for number in range(version, SCHEMA_VERSION):
                for statement in statements(MIGRATIONS[number]):
                    # DDL types first, then the SQL every statement gets (a data migration's UPDATE too)
                    conn.execute(to_postgres(to_postgres_ddl(statement)), ())
                _after_migration(Connection(conn, url), number + 1)
            for statement in SUPPORT_SQL:
                conn.execute(statement)
            conn.execute("UPDATE r42_schema SET version = %s, support = %s", (SCHEMA_VERSION, SUPPORT_VERSION))
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    return SCHEMA_VERSION


def _current(conn: Any) -> tuple[int, int] | None:
    if not conn.execute("SELECT to_regclass('r42_schema') IS NOT NULL").fetchone()[0]:
        return None
    row = conn.execute("SELECT version, support FROM r42_schema").fetchone()
    return (int(row[0]), int(row[1])) if row else None
