"""The store: SQLite in R42_HOME (the default), or PostgreSQL when `database_url` is set
(r42.store.postgres); one schema as numbered migrations for both, and one connection interface.

Store modules write `with writing() as conn: conn.execute(sql, params)`, `reading()`, `batch()`,
with SQLite SQL and `?`/`:name` placeholders; on PostgreSQL r42.store.dialect translates it.
Writes that may run inside the log writer's `batch()` use `insert()`, `raise_to()` and `add_to()`,
which the batch turns into multi-row INSERTs and one UPDATE (or upsert) per key at its end.

Many writers share the file (the gateway's threads, `r42 ask` in other processes), so the store
runs in WAL mode with a busy timeout, and every write happens in a short `BEGIN IMMEDIATE`
transaction: in WAL a deferred transaction that tries to upgrade to a write fails at once instead
of waiting. A file that is corrupt, from a newer r42 or not ours is reported and never written to.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from r42.config import ensure_home, home_dir
from r42.errors import ConfigError

STORE_FILE = "r42.db"
APPLICATION_ID = 0x72343221  # "r42!": marks the file as ours (PRAGMA application_id)
BUSY_TIMEOUT_MS = 30_000
MOVE_AWAY = "move the file away (r42 then creates a new store) or set R42_HOME to another directory"

# Each entry moves the schema from version N to N+1. Never edit a released entry: add a new one.
# Both databases run these (PostgreSQL through r42.store.dialect.to_postgres_ddl), so write only the
# portable subset: CREATE TABLE / CREATE INDEX (partial ones too) / ALTER TABLE ... ADD COLUMN, with
# the types INTEGER, REAL, TEXT and BLOB, `INTEGER PRIMARY KEY` for an id, PRIMARY KEY / UNIQUE /
# REFERENCES ... ON DELETE CASCADE / NOT NULL / DEFAULT with a constant; no triggers, views,
# AUTOINCREMENT, WITHOUT ROWID, CHECK with SQLite functions, or `;` inside a string. Store code
# writes upserts as ON CONFLICT (...) DO UPDATE/NOTHING and new ids as RETURNING id (see dialect.py).
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta (
        name TEXT PRIMARY KEY,
        value BLOB NOT NULL
    );
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created REAL NOT NULL
    );
    CREATE TABLE gateway_keys (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id),
        prefix TEXT NOT NULL UNIQUE,
        hash BLOB NOT NULL,
        created REAL NOT NULL,
        last_used REAL,
        revoked REAL,
        rpm INTEGER,
        rpd INTEGER,
        budget_usd REAL
    );
    CREATE TABLE key_usage (
        key_id INTEGER NOT NULL,
        ts REAL NOT NULL,
        cost_usd REAL NOT NULL DEFAULT 0
    );
    CREATE INDEX key_usage_key_ts ON key_usage(key_id, ts);
    CREATE TABLE credentials (
        provider TEXT NOT NULL,
        user TEXT NOT NULL DEFAULT '',
        secret BLOB,
        base_url TEXT,
        models TEXT,
        updated REAL NOT NULL,
        PRIMARY KEY (provider, user)
    );
    CREATE TABLE routes (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        request_id TEXT,
        user TEXT,
        key_id INTEGER,
        endpoint TEXT NOT NULL,
        mode TEXT,
        complexity REAL,
        domain TEXT,
        model TEXT,
        attempts TEXT,
        n_attempts INTEGER,
        input_tokens INTEGER,
        output_tokens INTEGER,
        cost_usd REAL,
        latency_ms REAL,
        ttft_ms REAL,
        status TEXT NOT NULL,
        error TEXT
    );
    CREATE INDEX routes_ts ON routes(ts);
    CREATE INDEX routes_user_ts ON routes(user, ts);
    """,
    # 2: feedback on answers (r42 feedback, POST /v1/feedback), learned from by rank
    """
    CREATE TABLE feedback (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        request_id TEXT NOT NULL,
        user TEXT,
        model TEXT NOT NULL,
        domain TEXT,
        verdict INTEGER NOT NULL,
        reason TEXT
    );
    CREATE INDEX feedback_user_ts ON feedback(user, ts);
    CREATE INDEX routes_request_id ON routes(request_id);
    """,
    # 3: key expiry and admin keys, webhooks (hooks, their outbox, once-only marks), the audit log
    """
    ALTER TABLE gateway_keys ADD COLUMN expires REAL;
    ALTER TABLE gateway_keys ADD COLUMN admin INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE hooks (
        id TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        events TEXT NOT NULL,
        secret BLOB NOT NULL,
        allow_private INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL
    );
    CREATE TABLE hook_outbox (
        id INTEGER PRIMARY KEY,
        hook_id TEXT NOT NULL REFERENCES hooks(id) ON DELETE CASCADE,
        event_id TEXT NOT NULL,
        type TEXT NOT NULL,
        body BLOB NOT NULL,
        created REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_try REAL NOT NULL,
        delivered REAL,
        failed REAL,
        last_status INTEGER,
        last_error TEXT,
        UNIQUE (hook_id, event_id)
    );
    CREATE INDEX hook_outbox_due ON hook_outbox(next_try) WHERE delivered IS NULL AND failed IS NULL;
    CREATE TABLE hook_marks (
        name TEXT PRIMARY KEY,
        created REAL NOT NULL
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT,
        detail TEXT
    );
    CREATE INDEX audit_ts ON audit(ts);
    """,
    # 4: attempt outcomes for provider and model health (r42.health, r42.store.health)
    """
    CREATE TABLE health_outcomes (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        ok INTEGER NOT NULL,
        status INTEGER,
        kind TEXT NOT NULL,
        latency_ms REAL NOT NULL,
        ttft_ms REAL
    );
    CREATE INDEX health_outcomes_ts ON health_outcomes(ts);
    """,
    # 5: the daily rollup of the routing log (r42.store.rollup; filled from the rows already there by
    # _after_migration), and an index of the failed requests that the error review reads
    """
    CREATE TABLE route_rollup (
        day INTEGER NOT NULL,
        user_key TEXT NOT NULL,
        dim TEXT NOT NULL,
        value TEXT NOT NULL,
        requests INTEGER NOT NULL,
        errors INTEGER NOT NULL,
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        cost_usd REAL NOT NULL,
        cmp_input INTEGER NOT NULL,
        cmp_output INTEGER NOT NULL,
        cmp_cost REAL NOT NULL,
        cx0 INTEGER NOT NULL,
        cx1 INTEGER NOT NULL,
        cx2 INTEGER NOT NULL,
        cx3 INTEGER NOT NULL,
        cx4 INTEGER NOT NULL,
        cx5 INTEGER NOT NULL,
        cx6 INTEGER NOT NULL,
        cx7 INTEGER NOT NULL,
        cx8 INTEGER NOT NULL,
        cx9 INTEGER NOT NULL,
        first_ts REAL NOT NULL,
        last_ts REAL NOT NULL,
        latency TEXT,
        latency_bins BLOB,
        ttft TEXT,
        ttft_bins BLOB,
        version INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (day, user_key, dim, value)
    );
    CREATE INDEX routes_failed_ts ON routes(ts) WHERE status != 'ok';
    """,
    # 6: each gateway user's own privacy-judge template (r42.store.prompts)
    """
    CREATE TABLE privacy_prompts (
        user_name TEXT PRIMARY KEY,
        template TEXT NOT NULL,
        updated REAL NOT NULL
    );
    """,
    # 7: each key's spend per calendar month (UTC), kept with key_usage in the same transactions, so
    # that admitting a key with a budget reads one row instead of summing its month's requests
    # (r42.store.keys; filled from the key_usage rows already there by _after_migration)
    """
    CREATE TABLE key_spend (
        key_id INTEGER NOT NULL,
        month REAL NOT NULL,
        cost_usd REAL NOT NULL,
        PRIMARY KEY (key_id, month)
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(ConfigError):
    """The store cannot be opened or used (exit code 6)."""


def store_path() -> Path:
    return home_dir() / STORE_FILE


def database_url() -> str:
    """The `database_url` setting ("" = SQLite); see r42.config.database_url."""
    from r42.config import database_url as configured

    url = configured()
    if url and not is_postgres_url(url):
        raise StoreError(
            "database_url must start with postgresql://", "leave it empty for the SQLite store in R42_HOME"
        )
    return url


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def on_postgres() -> bool:
    return bool(database_url())


def postgres_store() -> Any:
    """This process's r42.store.postgres.Store for database_url (call only when on_postgres())."""
    from r42.store.postgres import store_for

    return store_for(database_url())


def store_name() -> str:
    """The store as it may be printed: the SQLite file, or PostgreSQL's host, port and database."""
    url = database_url()
    if url:
        from r42.store.postgres import shown

        return shown(url)
    return str(store_path())


def store_exists() -> bool:
    return on_postgres() or store_path().exists()


def is_postgres_connection(conn: Any) -> bool:
    """A connection from r42.store.postgres (its objects say so); sqlite3's have no `backend`."""
    return getattr(conn, "backend", "sqlite") == "postgresql"


def lock(conn: Any, name: str, number: int = 0) -> None:
    """Serialise the rest of this write transaction with others that lock the same name and number
    (a key's admission, a budget). SQLite's BEGIN IMMEDIATE serialises every write already."""
    if is_postgres_connection(conn):
        conn.lock(name, number)


_local = threading.local()


def connect(create: bool = True) -> Any:
    """This thread's connection to the store, opened (and migrated) on first use.

    create=False: return None when there is no store yet, so read-only commands never create one.
    A connection is never shared between threads, nor reused in a forked child. On PostgreSQL: a
    reader that borrows a pooled connection per statement.
    """
    url = database_url()
    if url:
        from r42.store.postgres import store_for

        return store_for(url).reader
    path = store_path()
    cached = getattr(_local, "conns", {}).get(str(path))
    if cached is not None and cached[0] == os.getpid():
        return cached[1]
    if not path.exists():
        if not create:
            return None
        _create_file(path)
    conn = _open(path)
    _local.__dict__.setdefault("conns", {})[str(path)] = (os.getpid(), conn)
    return conn


def close_thread_connection() -> None:
    """Close this thread's connections (tests and worker threads that finish)."""
    for _, conn in getattr(_local, "conns", {}).values():
        conn.close()
    _local.conns = {}


def _create_file(path: Path) -> None:
    """Create an empty file with mode 0600; SQLite gives its -wal and -shm files the same mode."""
    ensure_home()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
    except FileExistsError:
        pass  # another process created it first


def _open(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the store {path}: {exc}", "check the file's permissions") from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _check_ours(conn, path)  # before anything writes to the file
        _enable_wal(conn, path)
        conn.execute("PRAGMA synchronous = NORMAL")  # safe in WAL: a crash may lose the last commit, never corrupts
        conn.execute("PRAGMA foreign_keys = ON")
        _migrate(conn, path)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(f"the store {path} is unreadable ({exc})", MOVE_AWAY) from None
    except StoreError:
        conn.close()
        raise
    return conn


def _check_ours(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a foreign database and one written by a newer r42. Reads only."""
    # One statement, so one snapshot: another process may be creating the schema right now.
    app_id, version, tables = conn.execute(
        "SELECT (SELECT application_id FROM pragma_application_id), (SELECT user_version FROM pragma_user_version),"
        " (SELECT count(*) FROM sqlite_master)"
    ).fetchone()
    if app_id == 0 and version == 0 and tables == 0:
        return  # a new, empty file
    if app_id != APPLICATION_ID:
        raise StoreError(f"{path} is an SQLite database but not an r42 store", MOVE_AWAY)
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the store {path} was written by a newer r42 (schema {version}; this r42 knows up to {SCHEMA_VERSION})",
            "upgrade r42, or set R42_HOME to another directory",
        )


def _enable_wal(conn: sqlite3.Connection, path: Path) -> None:
    # Switching to WAL needs a moment alone with the file; the busy timeout does not always cover it.
    for attempt in range(50):
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            time.sleep(0.02 * (attempt + 1))
            continue
        if mode.lower() == "wal":
            return
        raise StoreError(
            f"the store {path} cannot use WAL mode (journal mode {mode})", "put R42_HOME on a local file system"
        )
    raise StoreError(f"the store {path} stayed locked", "another process holds it; try again")


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
        return
    with transaction(conn):
        # Read again inside the write lock: another process may have migrated meanwhile.
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        _check_ours(conn, path)
        for number in range(version, SCHEMA_VERSION):
            for statement in statements(MIGRATIONS[number]):
                conn.execute(statement)
            _after_migration(conn, number + 1)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _after_migration(conn: Any, version: int) -> None:
    """What a migration needs beyond its SQL, in the same transaction: version 5 fills the rollup
    from the log rows already there (its latency histograms are built in Python), version 7 the
    monthly spend per key from key_usage (months are UTC calendar months, computed in Python)."""
    if version == 5:
        from r42.store.rollup import backfill

        backfill(conn)
    if version == 7:
        from r42.store.keys import backfill_spend

        backfill_spend(conn)


def statements(script: str) -> list[str]:
    # executescript() would COMMIT our transaction first; run the statements one by one instead.
    return [s.strip() for s in script.split(";") if s.strip()]


_statements = statements  # the old name, used by tests that build old schemas


def where_clause(conditions: dict[str, Any], *extra: str) -> tuple[str, list[Any]]:
    """A WHERE clause of the conditions ("ts >= ?": value) whose value is not None and of the extra
    clauses, and its parameters ("" when there is no clause: every row)."""
    clauses = [clause for clause, value in conditions.items() if value is not None]
    params = [value for value in conditions.values() if value is not None]
    clauses.extend(extra)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


@contextmanager
def transaction(conn: Any) -> Iterator[Any]:
    """A write transaction that takes the write lock at once (waiting up to the busy timeout).
    On PostgreSQL: a transaction (a savepoint inside one), without a lock: see `lock()`."""
    if is_postgres_connection(conn):
        with conn.transaction() as pg:
            yield pg
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:  # SQLite may have rolled back already (e.g. disk full)
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextmanager
def writing(create: bool = True) -> Iterator[Any]:
    """This thread's connection inside a write transaction, with SQLite errors made readable.
    Inside `batch()`, the batch's transaction is used instead of a new one."""
    _local.writes = thread_writes() + 1
    batch_conn = getattr(_local, "batch", None)
    if batch_conn is not None:
        yield batch_conn
        return
    url = database_url()
    if url:
        from r42.store.postgres import store_for

        with store_for(url).transaction() as pg:
            yield pg
        return
    conn = connect(create=create)
    assert conn is not None
    with readable_errors():
        with transaction(conn):
            yield conn


def thread_writes() -> int:
    """How many write transactions this thread has begun (data_version does not count them)."""
    return getattr(_local, "writes", 0)


@contextmanager
def batch() -> Iterator[Any]:
    """One write transaction for every `writing()` block inside it on this thread: the gateway's
    log writer commits many rows at once instead of one commit per request. An error rolls back
    the whole batch (the caller can then write the rows one by one). On PostgreSQL the batch runs
    in pipeline mode: statements whose results nobody reads cost no round trip of their own.
    What writers leave to the batch's end (`insert`, `raise_to`, `add_to`, `defer`) is written
    before it commits."""
    url = database_url()
    if url:
        from r42.store.postgres import store_for

        with store_for(url).transaction(pipelined=True) as pg:
            with _batching(pg):
                yield pg
        return
    conn = connect(create=True)
    assert conn is not None
    with readable_errors():
        with transaction(conn):
            with _batching(conn):
                yield conn


@contextmanager
def _batching(conn: Any) -> Iterator[None]:
    pending = _Pending()
    _local.batch, _local.pending = conn, pending
    try:
        yield
    finally:
        _local.batch, _local.pending = None, None
    pending.write(conn)  # not after an error: the transaction rolls back


# SQLite's limit of parameters per statement (999 before 3.32); PostgreSQL's is 65535.
MAX_PARAMS = 32_766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999


class _Pending:
    """What a batch's writers leave to its end: the rows of each single-row INSERT, sent as
    multi-row INSERTs, the sum per key of each additive upsert, the statements deferred in key
    order, and the largest value per key of each raise-only UPDATE. On PostgreSQL each statement
    costs psycopg ~60 µs of the gateway's CPU (and the server a parse and plan): a batch's three
    statements per request become a few per batch."""

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple]] = {}
        self.sums: dict[tuple[Any, str], float] = {}
        self.deferred: list[tuple[Any, int, str, tuple]] = []
        self.highest: dict[tuple[str, Any], Any] = {}

    def write(self, conn: Any) -> None:
        for sql, rows in self.rows.items():
            per_statement = max(1, MAX_PARAMS // len(rows[0]))
            for start in range(0, len(rows), per_statement):
                chunk = rows[start : start + per_statement]
                conn.execute(multi_row(sql, len(chunk)), [value for row in chunk for value in row])
        for _, sql, params in self._ordered():  # in key order: writers lock rows alike
            conn.execute(sql, params)
        for (sql, key), value in sorted(self.highest.items()):
            conn.execute(sql, (value, key))

    def _ordered(self) -> list[tuple[Any, str, tuple]]:
        """The sums and the deferred statements merged in the order of their keys' first part (a
        key id): per id the sums first, in key order, then the deferred statements as they came."""
        sums = [((key[0], 0, key), sql, (*key, value)) for (key, sql), value in self.sums.items()]
        deferred = [((key[0], 1, n), sql, params) for key, n, sql, params in self.deferred]
        return sorted(sums + deferred, key=lambda item: item[0])


@functools.lru_cache(maxsize=1024)
def multi_row(insert: str, rows: int) -> str:
    """`INSERT INTO t (a, b) VALUES (?, ?)` as the INSERT of `rows` rows."""
    head, _, values = insert.rpartition(" VALUES ")
    return f"{head} VALUES {', '.join([values.strip()] * rows)}"


def insert(conn: Any, sql: str, row: tuple) -> None:
    """conn.execute(sql, row) for a single-row `INSERT INTO t (...) VALUES (?, ...)` whose id
    nobody reads; inside `batch()` the row joins the batch's multi-row INSERT at its end."""
    pending = getattr(_local, "pending", None)
    if pending is None:
        conn.execute(sql, row)
    else:
        pending.rows.setdefault(sql, []).append(row)


def raise_to(conn: Any, sql: str, value: Any, key: Any) -> None:
    """conn.execute(sql, (value, key)) for an UPDATE that only ever raises a column to `value`
    (`SET last_used = max(coalesce(last_used, 0), ?) WHERE id = ?`); inside `batch()` only the
    largest value per key is written, at the batch's end."""
    pending = getattr(_local, "pending", None)
    if pending is None:
        conn.execute(sql, (value, key))
    elif (sql, key) not in pending.highest or value > pending.highest[(sql, key)]:
        pending.highest[(sql, key)] = value


def add_to(conn: Any, sql: str, key: tuple, value: float) -> None:
    """conn.execute(sql, (*key, value)) for an upsert that adds `value` to the row of `key`
    (`INSERT ... VALUES (?, ?, ?) ON CONFLICT (...) DO UPDATE SET x = t.x + excluded.x`); inside
    `batch()` the values per key are summed and written once, at the batch's end, in key order."""
    pending = getattr(_local, "pending", None)
    if pending is None:
        conn.execute(sql, (*key, value))
    else:
        pending.sums[(key, sql)] = pending.sums.get((key, sql), 0.0) + value


def defer(conn: Any, key: tuple, *steps: tuple[str, tuple]) -> None:
    """Run the statements `steps` ((sql, params), in this order) now, or inside `batch()` at its
    end: ordered by key[0] with the batch's sums (see add_to), after the sums of the same key[0]
    (they may create rows the steps update), so that writers lock rows alike."""
    pending = getattr(_local, "pending", None)
    for sql, params in steps:
        if pending is None:
            conn.execute(sql, params)
        else:
            pending.deferred.append((key, len(pending.deferred), sql, params))


def in_batch() -> bool:
    """Whether this thread is inside `batch()`: writers then skip what they only return (RETURNING id)."""
    return getattr(_local, "batch", None) is not None


@contextmanager
def readable_errors() -> Iterator[None]:
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise StoreError(
            f"the store {store_name()} could not be written ({exc})", "another process may hold it for long; try again"
        ) from None
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"the store {store_name()} is damaged ({exc})", MOVE_AWAY) from None


def reading() -> Any:
    """This thread's connection for queries, or None when there is no store yet."""
    return connect(create=False)
