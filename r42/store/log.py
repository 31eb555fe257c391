"""The routing log: one row per request, and never the prompt or the answer.

`r42 ask` and the gateway call write_route() (or write_route_from_document() with a finished pipe
document). Rows older than the `log_retention_days` setting are pruned now and then by the
writers themselves, so no daemon is needed. Every row also adds itself to the daily rollup
(r42.store.rollup) in the same transaction, and a prune keeps the rollup in step.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Iterator

import orjson

from r42.store import rollup
from r42.store.db import in_batch, insert, reading, readable_errors, where_clause, writing
from r42.store.keys import iso, month_start

PRUNE_EVERY_S = 3600  # a writer prunes at most once an hour per process
KEY_USAGE_KEEP_S = 62 * 86_400  # limits look back one calendar month at most
ATTEMPT_FIELDS = ("model", "ok", "status", "ms", "error")
MAX_ERROR_CHARS = 200

_last_prune = 0.0
_prune_lock = threading.Lock()

COLUMNS = (
    "ts",
    "request_id",
    "user",
    "key_id",
    "endpoint",
    "mode",
    "complexity",
    "domain",
    "model",
    "attempts",
    "n_attempts",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_ms",
    "ttft_ms",
    "status",
    "error",
)
INSERT_ROUTE = f"INSERT INTO routes ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


def _clean_attempts(attempts: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Keep only the fields that describe an attempt; error texts are cut short."""
    cleaned = []
    for attempt in attempts or []:
        item = {k: attempt[k] for k in ATTEMPT_FIELDS if k in attempt}
        item["ok"] = bool(attempt.get("ok"))  # always a JSON boolean: learning finds failures by their text
        if isinstance(item.get("error"), str):
            item["error"] = item["error"][:MAX_ERROR_CHARS]
        cleaned.append(item)
    return cleaned


def write_route(
    *,
    endpoint: str,
    status: str = "ok",
    model: str | None = None,
    user: str | None = None,
    mode: str | None = None,
    complexity: float | None = None,
    domain: str | None = None,
    attempts: list[dict[str, Any]] | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    cost_usd: float | None = None,
    latency_ms: float | None = None,
    ttft_ms: float | None = None,
    request_id: str | None = None,
    key_id: int | None = None,
    error: str | None = None,
    at: float | None = None,
    retention_days: float | None = None,
) -> int | None:
    """Append one request to the log (creating the store if needed); returns the row id (None
    inside db.batch(), the gateway's log writer, which has no use for it).

    status: "ok" for an answered request, anything else ("error", "rejected", ...) counts as an
    error in stats. error: a short kind ("AllFailedError", "http 429"), never a prompt or answer.
    retention_days: None reads the `log_retention_days` setting when a prune is due.
    """
    cleaned = _clean_attempts(attempts)
    row = (
        time.time() if at is None else at,
        request_id,
        user,
        key_id,
        endpoint,
        mode,
        complexity,
        domain,
        model,
        orjson.dumps(cleaned).decode(),
        len(cleaned),
        input_tokens,
        output_tokens,
        cost_usd,
        latency_ms,
        ttft_ms,
        status,
        error[:MAX_ERROR_CHARS] if error else None,
    )
    with writing() as conn:  # the row and its rollup cells commit together (or not at all)
        if in_batch():  # no one reads the id: the row joins the batch's multi-row INSERT
            row_id = None
            insert(conn, INSERT_ROUTE, row)
        else:
            row_id = int(conn.execute(INSERT_ROUTE + " RETURNING id", row).fetchone()[0])
        rollup.add_row(conn, dict(zip(COLUMNS, row)))
    _maybe_prune(retention_days)
    return row_id


def write_route_from_document(
    doc: dict[str, Any],
    *,
    endpoint: str,
    user: str | None = None,
    status: str | None = None,
    error: str | None = None,
    request_id: str | None = None,
    key_id: int | None = None,
) -> int | None:
    """write_route() with the fields of a pipe document (`score`, `ranking`, `route` keys).

    status defaults to "ok" when the document has a `response`, else "error".
    """
    score = doc.get("score") or {}
    route = doc.get("route") or {}
    usage = route.get("usage") or {}
    if status is None:
        status = "ok" if doc.get("response") is not None and "error" not in doc else "error"
    return write_route(
        endpoint=endpoint,
        status=status,
        user=user,
        key_id=key_id,
        error=error,
        request_id=request_id or _str_or_none(route.get("request_id")) or _str_or_none(doc.get("id")),
        mode=(doc.get("ranking") or {}).get("mode"),
        complexity=score.get("complexity"),
        domain=score.get("domain"),
        model=route.get("model"),
        attempts=route.get("attempts"),
        input_tokens=usage.get("input_tokens"),
        output_tokens=usage.get("output_tokens"),
        cost_usd=route.get("cost_usd"),
        latency_ms=route.get("latency_ms"),
        ttft_ms=route.get("ttft_ms"),
    )


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _maybe_prune(retention_days: float | None) -> None:
    global _last_prune
    now = time.time()
    with _prune_lock:
        if now - _last_prune < PRUNE_EVERY_S:
            return
        _last_prune = now
    if retention_days is None:
        from r42.config import load_settings

        retention_days = load_settings().log_retention_days
    prune(retention_days, now)


def prune(retention_days: float | None, now: float | None = None) -> int:
    """Delete log rows older than retention_days (0 or None keeps them); returns how many went."""
    now = time.time() if now is None else now
    with writing() as conn:
        conn.execute("DELETE FROM key_usage WHERE ts < ?", (now - KEY_USAGE_KEEP_S,))
        # The months before the oldest kept row's month hold no rows now (this month's is never one).
        conn.execute("DELETE FROM key_spend WHERE month < ?", (month_start(now - KEY_USAGE_KEEP_S),))
        if not retention_days or retention_days <= 0:
            return 0
        cutoff = now - retention_days * 86_400
        deleted = conn.execute("DELETE FROM routes WHERE ts < ?", (cutoff,)).rowcount
        if deleted:
            rollup.pruned(conn, cutoff)
        return deleted


def _row_dict(row: tuple) -> dict[str, Any]:
    out = dict(zip(("id", *COLUMNS), row))
    out["time"] = iso(out["ts"])
    out["attempts"] = orjson.loads(out["attempts"]) if out["attempts"] else []
    return out


def read_routes(since: float | None = None, user: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Log rows, oldest first; with limit, the most recent `limit` rows."""
    conn = reading()
    if conn is None:
        return []
    where, params = _filters(since, user)
    sql = f"SELECT id, {', '.join(COLUMNS)} FROM routes {where} ORDER BY ts DESC, id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    with readable_errors():
        rows = conn.execute(sql, params).fetchall()
    return [_row_dict(row) for row in reversed(rows)]


def iter_routes(since: float | None = None, user: str | None = None) -> Iterator[dict[str, Any]]:
    """Every matching row, oldest first, without holding them all in memory."""
    conn = reading()
    if conn is None:
        return
    where, params = _filters(since, user)
    with readable_errors():
        for row in conn.execute(f"SELECT id, {', '.join(COLUMNS)} FROM routes {where} ORDER BY ts, id", params):
            yield _row_dict(row)


def _filters(since: float | None, user: str | None) -> tuple[str, list[Any]]:
    return where_clause({"ts >= ?": since, "user = ?": user})
