"""The audit log: who changed which gateway key, provider credential or webhook, what they changed, and when.

Entries never carry a secret: a key is named by its prefix, a webhook by its id, and `detail`
holds only limits, expiry dates, event names and URLs.
"""

from __future__ import annotations

import getpass
import time
from dataclasses import dataclass
from typing import Any

import orjson

from r42.store.db import readable_errors, reading, writing


@dataclass(frozen=True)
class AuditEntry:
    ts: float
    actor: str  # "cli:<unix user>" or "key:<prefix> (<user>)"
    action: str  # "key.create", "key.revoke", "key.update", "hook.add", ...
    target: str | None  # a key prefix, a user name or a webhook id
    detail: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        from r42.store.keys import iso

        return {
            "time": iso(self.ts),
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "detail": self.detail,
        }


def cli_actor() -> str:
    """Who runs the CLI: the operating system's user name."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def record(actor: str, action: str, target: str | None, detail: dict[str, Any] | None = None) -> None:
    """Append one entry. Callers pass prefixes and limits only, never a key or a secret."""
    with writing() as conn:
        conn.execute(
            "INSERT INTO audit (ts, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
            (time.time(), actor, action, target, orjson.dumps(detail or {}).decode()),
        )


def read(limit: int = 100, action: str | None = None, since: float | None = None) -> list[AuditEntry]:
    """The latest `limit` entries (optionally of one action prefix, or since a time), oldest first."""
    conn = reading()
    if conn is None:
        return []
    where: list[str] = ["1 = 1"]  # portable: PostgreSQL has no integer truth
    params: list[str | float] = []
    if action:
        where.append("(action = ? OR action LIKE ?)")
        params += [action, action.rstrip(".") + ".%"]
    if since is not None:
        where.append("ts >= ?")
        params.append(since)
    with readable_errors():
        rows = conn.execute(
            f"SELECT ts, actor, action, target, detail FROM audit WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
            (*params, limit),
        ).fetchall()
    return [
        AuditEntry(ts, actor, act, target, orjson.loads(detail or "{}"))
        for ts, actor, act, target, detail in reversed(rows)
    ]
