"""Feedback on answers: `r42 feedback REQUEST_ID good|bad` and POST /v1/feedback.

A verdict is tied to the routing-log row of its request, so it knows which model answered, for
which user and in which domain; the prompt itself was never stored and is not needed.
"""

from __future__ import annotations

import time
from typing import Any

from r42.store.db import reading, readable_errors, writing
from r42.store.keys import NotFoundError

VERDICTS = {"good": 1, "bad": -1}
MAX_REASON_CHARS = 500
RESET_KEY = "learning_reset"  # meta row: "<user or *>" -> time of the last reset


def add_feedback(request_id: str, verdict: str, reason: str | None = None, user: str | None = None) -> dict[str, Any]:
    """Record a verdict on an answered request. `user` (the gateway's authenticated user) must match
    the request's user: nobody rates someone else's answers."""
    conn = reading()
    row = None
    if conn is not None:
        with readable_errors():
            row = conn.execute(
                "SELECT user, model, domain FROM routes "
                "WHERE request_id = ? AND model IS NOT NULL ORDER BY ts DESC LIMIT 1",
                (request_id,),
            ).fetchone()
    if row is None or (user is not None and row[0] != user):
        raise NotFoundError(
            f"no answered request with id {request_id!r}", "request ids are in `r42 log` and in route.request_id"
        )
    entry = {
        "request_id": request_id,
        "user": row[0],
        "model": row[1],
        "domain": row[2],
        "verdict": verdict,
        "reason": (reason or "")[:MAX_REASON_CHARS] or None,
    }
    with writing() as w:
        w.execute(
            "INSERT INTO feedback (ts, request_id, user, model, domain, verdict, reason) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (time.time(), request_id, row[0], row[1], row[2], VERDICTS[verdict], entry["reason"]),
        )
    return entry


def read_feedback(user: str | None, since: float) -> list[tuple[float, str, str | None, int]]:
    """(time, model, domain, verdict) of one user's feedback (None: the CLI user) since a time."""
    conn = reading()
    if conn is None:
        return []
    with readable_errors():
        return conn.execute(
            "SELECT ts, model, domain, verdict FROM feedback WHERE user IS ? AND ts >= ? ORDER BY ts", (user, since)
        ).fetchall()


def reset_learning(user: str | None) -> int:
    """Forget what rank learned for a user: their feedback goes, and log outcomes before now stop
    counting. Returns the number of feedback rows removed."""
    with writing() as conn:
        removed = conn.execute("DELETE FROM feedback WHERE user IS ?", (user,)).rowcount
        conn.execute(
            "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (f"{RESET_KEY}:{user or '*'}", str(time.time()).encode()),
        )
    return int(removed)


def learning_reset_time(user: str | None) -> float:
    conn = reading()
    if conn is None:
        return 0.0
    with readable_errors():
        row = conn.execute("SELECT value FROM meta WHERE name = ?", (f"{RESET_KEY}:{user or '*'}",)).fetchone()
    return float(row[0]) if row else 0.0


FAILED_ATTEMPT_TEXT = '%"ok":false%'  # a LIKE pattern: a logged attempts list with a failed attempt in it


def read_failed_attempts(user: str | None, since: float) -> list[tuple[float, str, str | None]]:
    """(time, model, domain) of every failed attempt in one user's routing log since a time: a
    model that errors or makes r42 fall back counts against itself."""
    import orjson

    conn = reading()
    if conn is None:
        return []
    out = []
    with readable_errors():
        # Only rows with a failed attempt are read and parsed (a few percent of the log, where every row
        # used to be): the log writes each attempt's "ok" as a JSON boolean, compact (r42.store.log).
        rows = conn.execute(
            "SELECT ts, domain, attempts FROM routes WHERE user IS ? AND ts >= ? AND attempts LIKE ?",
            (user, since, FAILED_ATTEMPT_TEXT),
        ).fetchall()
    for ts, domain, attempts in rows:
        for attempt in orjson.loads(attempts or "[]"):
            if not attempt.get("ok") and attempt.get("model"):
                out.append((ts, attempt["model"], domain))
    return out


def read_slow_answers(user: str | None, since: float, slow_ms: float) -> list[tuple[float, str, str | None]]:
    """(time, model, domain) of answers in one user's routing log that took longer than slow_ms."""
    conn = reading()
    if conn is None:
        return []
    with readable_errors():
        return conn.execute(
            "SELECT ts, model, domain FROM routes "
            "WHERE user IS ? AND ts >= ? AND status = 'ok' AND model IS NOT NULL AND latency_ms > ?",
            (user, since, slow_ms),
        ).fetchall()
