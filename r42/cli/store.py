"""`r42 store`: create or upgrade the store's schema, and copy an SQLite store to PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import click

from r42.cli.pipe import terminal_of
from r42.document import dumps


@click.group("store")
def store() -> None:
    """The store: SQLite in R42_HOME, or PostgreSQL when database_url (R42_DATABASE_URL) is set.

    \b
      r42 store migrate
      R42_DATABASE_URL=postgresql://r42@db.internal/r42 r42 store copy ~/.config/r42/r42.db
    """


@store.command("migrate")
@click.pass_context
def migrate_command(ctx: click.Context) -> None:
    """Create or upgrade the configured store's schema; prints {backend, store, from, version}.

    Servers migrate on start too (one at a time); run this before a rolling upgrade, or to check
    that database_url reaches PostgreSQL.

    \b
    Example:
      R42_DATABASE_URL=postgresql://r42@db.internal/r42 r42 store migrate
    """
    from r42.store.transfer import migrate_store

    done = migrate_store()
    term = terminal_of(ctx)
    term.write(dumps(done.as_dict()) + b"\n")
    if done.before == done.version:
        term.note(f"r42: the store {done.store} is at schema {done.version}")
    else:
        term.note(f"r42: the store {done.store} moved from schema {done.before} to {done.version}")


@store.command("copy")
@click.argument("sqlite_path", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("url", required=False)
@click.option("--force", is_flag=True, help="Replace the rows a non-empty target already holds.")
@click.pass_context
def copy_command(ctx: click.Context, sqlite_path: Path, url: str | None, force: bool) -> None:
    """Copy every table of an SQLite store into an empty PostgreSQL store, in one transaction.

    URL defaults to database_url (R42_DATABASE_URL): better than a password on the command line,
    where `ps` shows it (or keep the password in ~/.pgpass). Prints the rows copied per table.
    The servers need the same master key (master.key or R42_MASTER_KEY) to read the credentials.

    \b
    Example:
      export R42_DATABASE_URL=postgresql://r42@db.internal/r42   # password in ~/.pgpass
      r42 store copy ~/.config/r42/r42.db
    """
    from r42.errors import UsageError
    from r42.store.db import database_url
    from r42.store.postgres import shown
    from r42.store.transfer import copy_store

    target = url or database_url()
    if not target:
        raise UsageError("no PostgreSQL store to copy to", "give its URL, or set R42_DATABASE_URL")
    counts = copy_store(sqlite_path, target, force=force)
    term = terminal_of(ctx)
    term.write(dumps({"store": shown(target), "rows": counts}) + b"\n")
    term.note(f"r42: copied {sum(counts.values())} rows in {len(counts)} tables to {shown(target)}")
