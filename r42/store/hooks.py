"""Webhooks in the store: the endpoints, their encrypted secrets, the outbox of deliveries, and the
once-only marks that keep an event from being sent twice for the same window.

The outbox is what makes delivery at-least-once: an event is written here (one row per endpoint)
before anything is sent, and a row stays due until an endpoint answers 2xx or the attempts run out.
Secrets are sealed with the master key exactly like provider credentials (r42.store.credentials).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import orjson

from r42.errors import UsageError
from r42.store.credentials import MasterKeyError, _fernet, _open, _seal
from r42.store.db import lock, readable_errors, reading, writing
from r42.store.keys import NotFoundError, iso

EVENT_TYPES: tuple[str, ...] = (
    "rate_limit.warning",
    "budget.threshold",
    "key.expiring",
    "key.expired",
    "provider.unhealthy",
    "provider.recovered",
)
TEST_EVENT = "hook.test"  # what `r42 hooks test` sends; every hook receives it
ALL_EVENTS = "*"
_SEAL_AS = "webhook"  # the "provider" a hook's secret is sealed under (with the hook id as the "user")


@dataclass(frozen=True)
class Hook:
    id: str  # hook_ + 8 hex characters
    url: str
    events: tuple[str, ...]
    allow_private: bool
    created: float

    def wants(self, event_type: str) -> bool:
        return event_type == TEST_EVENT or ALL_EVENTS in self.events or event_type in self.events

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "events": list(self.events),
            "allow_private": self.allow_private,
            "created": iso(self.created),
        }


@dataclass(frozen=True)
class Delivery:
    id: int
    hook_id: str
    event_id: str
    type: str
    body: bytes
    created: float
    attempts: int
    next_try: float
    delivered: float | None
    failed: float | None
    last_status: int | None
    last_error: str | None

    @property
    def state(self) -> str:
        return "delivered" if self.delivered else "failed" if self.failed else "pending"

    def as_dict(self) -> dict[str, Any]:
        return {
            "hook": self.hook_id,
            "event_id": self.event_id,
            "type": self.type,
            "created": iso(self.created),
            "state": self.state,
            "attempts": self.attempts,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "delivered": iso(self.delivered),
            "next_try": iso(self.next_try) if self.state == "pending" else None,
        }


def check_events(events: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    unknown = [e for e in events if e != ALL_EVENTS and e not in EVENT_TYPES]
    if unknown:
        raise UsageError(f"unknown event {unknown[0]!r}", f"events: {', '.join(EVENT_TYPES)}, or * for all")
    if not events:
        raise UsageError("no event given", f"add --event E (one of {', '.join(EVENT_TYPES)}, or *)")
    return tuple(dict.fromkeys(events))


def add_hook(url: str, events: list[str] | tuple[str, ...], secret: str, allow_private: bool = False) -> Hook:
    """Store a webhook endpoint with its secret sealed under the master key."""
    if not secret:
        raise UsageError(
            "the webhook secret is empty", "give one with --secret-stdin, R42_WEBHOOK_SECRET or the prompt"
        )
    hook = Hook("hook_" + secrets.token_hex(4), url, check_events(events), allow_private, time.time())
    token = _seal(_fernet(create=True), _SEAL_AS, hook.id, secret)
    with writing() as conn:
        conn.execute(
            "INSERT INTO hooks (id, url, events, secret, allow_private, created) VALUES (?, ?, ?, ?, ?, ?)",
            (hook.id, url, ",".join(hook.events), token, int(allow_private), hook.created),
        )
    return hook


def list_hooks() -> list[Hook]:
    conn = reading()
    if conn is None:
        return []
    with readable_errors():
        rows = conn.execute("SELECT id, url, events, allow_private, created FROM hooks ORDER BY created, id").fetchall()
    return [Hook(i, u, tuple(e.split(",")), bool(p), c) for i, u, e, p, c in rows]


def get_hook(hook_id: str) -> Hook:
    found = [h for h in list_hooks() if h.id == hook_id.strip()]
    if not found:
        raise NotFoundError(f"no webhook {hook_id!r}", "see `r42 hooks list`")
    return found[0]


def remove_hook(hook_id: str) -> Hook:
    """Delete a webhook and its pending deliveries."""
    hook = get_hook(hook_id)
    with writing() as conn:
        conn.execute("DELETE FROM hooks WHERE id = ?", (hook.id,))
    return hook


def hook_secret(hook_id: str) -> str:
    """The decrypted secret (only the delivery code calls this; it is never printed)."""
    conn = reading()
    row = conn.execute("SELECT secret FROM hooks WHERE id = ?", (hook_id,)).fetchone() if conn is not None else None
    if row is None:
        raise NotFoundError(f"no webhook {hook_id!r}", "see `r42 hooks list`")
    cipher = _fernet(create=False)
    if cipher is None:
        raise MasterKeyError("the master key is missing", "restore master.key or set R42_MASTER_KEY")
    try:
        return _open(cipher, _SEAL_AS, hook_id, row[0])
    except MasterKeyError:
        raise MasterKeyError(
            f"the secret of webhook {hook_id} cannot be decrypted (damaged, moved or another master key)",
            f"remove it with `r42 hooks rm {hook_id}` and add it again",
        ) from None


def persist_event(
    hook_ids: list[str], event_id: str, event_type: str, body: bytes, mark: str | None, now: float
) -> bool:
    """Write one event to the outbox for each hook, due at once. With `mark`, only if the mark is
    new (the same window's event was not sent before); the mark and the rows commit together."""
    with writing() as conn:
        if mark is not None and not _claim_mark(conn, mark, now):
            return False
        conn.executemany(
            "INSERT OR IGNORE INTO hook_outbox (hook_id, event_id, type, body, created, next_try)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(hook_id, event_id, event_type, body, now, time.time()) for hook_id in hook_ids],
        )
    return True


def _claim_mark(conn: Any, mark: str, now: float) -> bool:
    return conn.execute("INSERT OR IGNORE INTO hook_marks (name, created) VALUES (?, ?)", (mark, now)).rowcount > 0


_DELIVERY_COLUMNS = (
    "id, hook_id, event_id, type, body, created, attempts, next_try, delivered, failed, last_status, last_error"
)


def claim_due(now: float, lease: float, limit: int = 20, hook_id: str | None = None) -> list[Delivery]:
    """Pending deliveries whose time has come, leased for `lease` seconds so that another worker
    does not send them at the same moment (it will, after the lease, if this one dies)."""
    conn = reading()
    if conn is None:
        return []
    where = "delivered IS NULL AND failed IS NULL AND next_try <= ?" + (" AND hook_id = ?" if hook_id else "")
    params: tuple[Any, ...] = (now, hook_id) if hook_id else (now,)
    with readable_errors():  # a read first: most rounds find nothing and need no write lock
        if conn.execute(f"SELECT 1 FROM hook_outbox WHERE {where} LIMIT 1", params).fetchone() is None:
            return []
    with writing() as conn:
        lock(conn, "hook_outbox")  # PostgreSQL: one claimer at a time, as SQLite's write lock gives
        rows = conn.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM hook_outbox WHERE {where} ORDER BY next_try LIMIT ?", (*params, limit)
        ).fetchall()
        conn.executemany("UPDATE hook_outbox SET next_try = ? WHERE id = ?", [(now + lease, row[0]) for row in rows])
    return [Delivery(*row) for row in rows]


def finish(delivery: Delivery, status: int | None, error: str | None, retry_at: float | None, now: float) -> None:
    """Record one attempt: delivered (2xx), due again at `retry_at`, or failed for good (retry_at None)."""
    ok = status is not None and 200 <= status < 300
    with writing() as conn:
        conn.execute(
            """UPDATE hook_outbox SET attempts = attempts + 1, last_status = ?, last_error = ?,
                   delivered = ?, failed = ?, next_try = coalesce(?, next_try) WHERE id = ?""",
            (status, error, now if ok else None, None if ok or retry_at is not None else now, retry_at, delivery.id),
        )


def deliveries(hook_id: str | None = None, limit: int = 50) -> list[Delivery]:
    """The latest deliveries (of one hook), oldest first."""
    conn = reading()
    if conn is None:
        return []
    where, params = ("WHERE hook_id = ?", (hook_id,)) if hook_id else ("", ())
    with readable_errors():
        rows = conn.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM hook_outbox {where} ORDER BY id DESC LIMIT ?", (*params, limit)
        ).fetchall()
    return [Delivery(*row) for row in reversed(rows)]


def event_body(event_id: str, event_type: str, created: float, data: dict[str, Any]) -> bytes:
    """The JSON every endpoint receives: {id, type, created, data}."""
    return orjson.dumps({"id": event_id, "type": event_type, "created": int(created), "data": data})
