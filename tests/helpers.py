"""Small helpers shared by the tests."""

from __future__ import annotations

from typing import Any

import orjson
from click.testing import CliRunner

from r42.cli import cli


def run(args: list[str], input: str | bytes | None = None, env: dict[str, str] | None = None):
    """Invoke the CLI in-process; returns the click Result (stdout and stderr kept apart)."""
    return CliRunner().invoke(cli, args, input=input, env=env, catch_exceptions=False)


def json_lines(output: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in output.splitlines() if line.strip()]


def store_before(path: Any, marker: str) -> Any:
    """A raw SQLite connection to a new store file at `path` whose schema stops just before the first
    migration with `marker` in its SQL: what an older r42 left behind (the caller adds rows, closes it)."""
    import sqlite3

    from r42.store import db

    version = next(n for n, script in enumerate(db.MIGRATIONS) if marker in script)
    raw = sqlite3.connect(path, isolation_level=None)
    for script in db.MIGRATIONS[:version]:
        for statement in db.statements(script):
            raw.execute(statement)
    raw.execute(f"PRAGMA application_id = {db.APPLICATION_ID}")
    raw.execute(f"PRAGMA user_version = {version}")
    return raw
