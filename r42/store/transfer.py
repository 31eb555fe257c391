"""`r42 store migrate` and `r42 store copy`: bring the configured store to this r42's schema, and
move an SQLite installation to PostgreSQL.

The copy reads the SQLite file read-only and writes every table into an empty PostgreSQL store in
one transaction (all or nothing), then moves each identity sequence past the largest id copied, so
new rows never collide with copied ones. Stored credentials stay sealed with the same master key:
the servers on PostgreSQL need that key (R42_MASTER_KEY or master.key) too.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r42.errors import R42Error, UsageError
from r42.store import db
from r42.store.postgres import connection_of_its_own, migrate, schema_version, shown


@dataclass(frozen=True)
class Migrated:
    backend: str  # "sqlite" | "postgresql"
    store: str  # the file, or the PostgreSQL URL without user and password
    before: int  # the schema version found (0: a new store)
    version: int  # the schema version now

    def as_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "store": self.store, "from": self.before, "version": self.version}


def migrate_store() -> Migrated:
    """Create or upgrade the configured store (database_url, else the SQLite file in R42_HOME)."""
    url = db.database_url()
    if url:
        with connection_of_its_own(url, "cannot be used") as conn:
            before = schema_version(conn) or 0
            version = migrate(conn, url)
        return Migrated("postgresql", shown(url), before, version)
    path = db.store_path()
    before = _sqlite_version(path) if path.exists() else 0
    db.connect(create=True)  # opening migrates
    return Migrated("sqlite", str(path), before, db.SCHEMA_VERSION)


def _sqlite_version(path: Path) -> int:
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.DatabaseError:
        return 0  # opening it next says what is wrong


class NotEmptyError(R42Error):
    """The copy's target already holds rows (exit code 1)."""


def copy_store(source: Path, url: str, force: bool = False) -> dict[str, int]:
    """Copy every table of the SQLite store `source` into the PostgreSQL store at `url`, in one
    transaction; returns the rows copied per table. A target with rows is refused unless `force`
    (its rows are then replaced)."""
    if not db.is_postgres_url(url):
        raise UsageError("the target must be a postgresql:// URL", "r42 store copy r42.db postgresql://HOST/DB")
    tables = _source_tables(source)
    with connection_of_its_own(url, "refused the copy") as conn:
        migrate(conn, url)
        with conn.transaction():
            _empty_target(conn, url, tables, force)
            with closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src:
                counts = {table: _copy_table(src, conn, table) for table in tables}
            for table in tables:
                _move_identity(conn, table)
    return counts


def _source_tables(source: Path) -> list[str]:
    """The source's tables in creation order (parents before the tables that reference them)."""
    if not source.is_file():
        raise UsageError(f"no SQLite store at {source}", f"the store is {db.STORE_FILE} in R42_HOME")
    try:
        with closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src:
            app_id = src.execute("PRAGMA application_id").fetchone()[0]
            version = src.execute("PRAGMA user_version").fetchone()[0]
            tables = src.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid")
            names = [row[0] for row in tables]
    except sqlite3.DatabaseError as exc:
        raise db.StoreError(f"{source} is unreadable ({exc})") from None
    if app_id != db.APPLICATION_ID:
        raise db.StoreError(f"{source} is not an r42 store")
    if version != db.SCHEMA_VERSION:
        raise db.StoreError(
            f"{source} has schema {version}; this r42 copies schema {db.SCHEMA_VERSION}",
            f"run `R42_HOME={source.parent} r42 store migrate` with the same r42 first"
            if version < db.SCHEMA_VERSION
            else "use the r42 that wrote it",
        )
    return [name for name in names if not name.startswith("sqlite_")]


def _empty_target(conn: Any, url: str, tables: list[str], force: bool) -> None:
    rows = sum(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table in tables)
    if rows and not force:
        raise NotEmptyError(
            f"the store at {shown(url)} already holds {rows} rows", "copy into an empty database, or add --force"
        )
    if rows:
        conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")


def _columns(conn: Any, table: str) -> list[tuple[str, str]]:
    return conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
        (table,),
    ).fetchall()


def _copy_table(src: sqlite3.Connection, conn: Any, table: str) -> int:
    columns = _columns(conn, table)
    names = [name for name, _ in columns]
    binary = [data_type == "bytea" for _, data_type in columns]
    quoted = ", ".join(f'"{name}"' for name in names)
    count = 0
    with conn.cursor().copy(f'COPY "{table}" ({quoted}) FROM STDIN') as copy:
        for row in src.execute(f'SELECT {quoted} FROM "{table}"'):
            # SQLite keeps what it is given: text in a BLOB column becomes bytes for BYTEA.
            copy.write_row([v.encode() if b and isinstance(v, str) else v for v, b in zip(row, binary)])
            count += 1
    return count


def _move_identity(conn: Any, table: str) -> None:
    for (column,) in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND table_name = %s AND is_identity = 'YES'",
        (table,),
    ).fetchall():
        conn.execute(
            f'SELECT setval(pg_get_serial_sequence(%s, %s), coalesce(max("{column}"), 0) + 1, false) FROM "{table}"',
            (f'"{table}"', column),
        )
