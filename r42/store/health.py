"""Attempt outcomes shared between processes for provider and model health (r42.health).

One append-only table, `health_outcomes`: the health board of each process writes its outcomes in
batches and reads everyone's recent ones back. The circuit state is worked out from these rows
(r42.health.fold), so nothing else needs to be shared. Another backend (Redis) implements the same
three methods: append, recent, prune; `recent_after` (only the rows added since the last read) is
optional and saves each process re-reading the whole window every second.
"""

from __future__ import annotations

from r42 import health
from r42.health import Outcome
from r42.store.db import readable_errors, reading, writing


class SQLiteHealthStore:
    """The health outcomes in the SQLite store in R42_HOME."""

    def append(self, outcomes: list[Outcome]) -> None:
        if not outcomes:
            return
        rows = [(o.ts, o.provider, o.model, int(o.ok), o.status, o.kind, o.latency_ms, o.ttft_ms) for o in outcomes]
        with writing() as w:
            w.executemany(
                "INSERT INTO health_outcomes (ts, provider, model, ok, status, kind, latency_ms, ttft_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def recent(self, since: float) -> list[Outcome]:
        """Outcomes at or after `since`, oldest first (the newest health.MAX_SHARED; empty without a store)."""
        return [o for _, o in self.recent_after(since, -1)]

    def recent_after(self, since: float, after_id: int) -> list[tuple[int, Outcome]]:
        """(id, outcome) of the rows at or after `since` added after row `after_id` (ids only
        grow; -1 for every row), oldest first, at most health.MAX_SHARED: the newest, by time for every row
        (as recent), by id after a row (the rowid range, not the whole window of the ts index)."""
        conn = reading()
        if conn is None:
            return []
        order = "ts DESC, id DESC" if after_id < 0 else "id DESC"
        with readable_errors():
            rows = conn.execute(
                "SELECT id, ts, provider, model, ok, status, kind, latency_ms, ttft_ms FROM health_outcomes"
                f" WHERE id > ? AND ts >= ? ORDER BY {order} LIMIT ?",
                (after_id, since, health.MAX_SHARED),
            ).fetchall()
        return [(r[0], Outcome(r[1], r[2], r[3], bool(r[4]), r[5], r[6], r[7], r[8])) for r in reversed(rows)]

    def prune(self, before: float) -> None:
        if reading() is None:
            return
        with writing() as w:
            w.execute("DELETE FROM health_outcomes WHERE ts < ?", (before,))
