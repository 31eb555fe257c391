"""The gateway's log writer writes a batch of routing-log rows in one transaction: every row, its
key usage and its rollup cells read back exactly on both stores, and on PostgreSQL the batch costs
the same few round trips whatever its size (psycopg's pipeline mode), as libpq's own protocol
trace shows."""

from __future__ import annotations

import os
from typing import Any

import pytest

from r42 import store
from r42.server.app import LogWriter
from r42.store import rollup
from r42.store.db import batch, reading, writing

T0 = 1_773_100_800.0  # 2026-03-10 00:00 UTC
DAY = 86_400.0

pytestmark = pytest.mark.usefixtures("isolated_env", "store_backend")


def route_fields(index: int) -> dict[str, Any]:
    """A row with every column set (some left empty), different from its neighbours."""
    ok = index % 5 != 0
    return {
        "endpoint": "serve",
        "status": "ok" if ok else "error",
        "model": ("openai/gpt-4o", "groq/llama", None)[index % 3],
        "user": ("alice", "bob")[index % 2],
        "mode": ("cost", "quality", None)[index % 3],
        "complexity": (index % 11) / 10,
        "domain": ("code", "math")[index % 2],
        "attempts": [{"model": "openai/gpt-4o", "ok": ok, "status": 200 if ok else 500, "ms": index}],
        "input_tokens": index,
        "output_tokens": 2 * index if ok else None,
        "cost_usd": index / 1000 if ok else None,
        "latency_ms": 10.0 + index if ok else None,
        "ttft_ms": 1.0 + index / 8 if ok and index % 4 else None,
        "request_id": f"req_{index}",
        "error": None if ok else "http 500",
        "at": T0 + DAY * (index % 2) + index,  # two days
        "retention_days": 0,
    }


def stored_cells() -> dict[tuple, tuple]:
    """The rollup's cells, latencies as sorted values (the order they came in may differ)."""
    conn = reading()
    assert conn is not None
    out = {}
    for row in conn.execute(
        f"SELECT {', '.join(rollup.KEY + rollup.SUM_FIELDS)}, first_ts, last_ts,"
        " latency, latency_bins, ttft, ttft_bins FROM route_rollup"
    ):
        *head, latency, latency_bins, ttft, ttft_bins = row
        dists = tuple(
            (sorted(d.exact), d.packed)
            for d in (rollup.Dist.loads(latency, latency_bins), rollup.Dist.loads(ttft, ttft_bins))
        )
        out[tuple(head[:4])] = (*(round(v, 9) if isinstance(v, float) else v for v in head[4:]), dists)
    return out


@pytest.mark.parametrize("rows", [2, 300])  # 300: two batches (LogWriter.MAX_BATCH is 256)
def test_a_batch_reads_back_exactly_rows_usage_and_rollup(rows):
    keys = [store.create_key("alice").record.id, store.create_key("bob").record.id]
    writer = LogWriter()
    try:
        for index in range(rows):
            fields = route_fields(index)

            def job(fields: dict[str, Any] = fields, key_id: int = keys[index % 3 == 0]) -> None:
                store.write_route(key_id=key_id, **fields)  # as the gateway's: the row, then the key's usage
                store.record_usage(key_id, fields["cost_usd"] or 0.0, at=fields["at"])

            writer.put(job)
        writer.flush()
    finally:
        writer.close()

    written = store.read_routes()
    assert len(written) == rows
    want = sorted(range(rows), key=lambda index: route_fields(index)["at"])
    for got, index in zip(written, want):
        fields = route_fields(index)
        expected = {k: v for k, v in fields.items() if k not in ("at", "retention_days")}
        assert {k: got[k] for k in expected} == expected
        assert got["ts"] == fields["at"] and got["key_id"] == keys[index % 3 == 0] and got["n_attempts"] == 1

    conn = reading()
    assert conn is not None
    for which, key_id in enumerate(keys):
        own = [route_fields(index) for index in range(rows) if (index % 3 == 0) == which]
        count, spent = conn.execute(
            "SELECT count(*), sum(cost_usd) FROM key_usage WHERE key_id = ?", (key_id,)
        ).fetchone()
        assert count == len(own)
        assert (spent or 0.0) == pytest.approx(sum(f["cost_usd"] or 0.0 for f in own))
        # the latest request of the key, though the rows' times go back and forth (two days)
        assert {r.id: r.last_used for r in store.list_keys()}[key_id] == max(f["at"] for f in own)

    cells = stored_cells()
    assert sum(v[0] for k, v in cells.items() if k[2] == "model") == rows
    with writing() as conn:  # the cells as the rows alone make them, one row at a time
        rollup.backfill(conn)
    assert stored_cells() == cells


def test_a_row_the_database_refuses_costs_only_itself(capsys):
    # On PostgreSQL the refusal surfaces only when the pipeline syncs, rows after it already sent:
    # the batch rolls back and its jobs are written one by one.
    writer = LogWriter()
    try:
        for index in range(20):
            fields = route_fields(index) | ({"endpoint": None} if index == 7 else {})  # routes.endpoint NOT NULL
            writer.put(lambda fields=fields: store.write_route(**fields))
        writer.flush()
    finally:
        writer.close()
    assert sorted(row["request_id"] for row in store.read_routes()) == sorted(f"req_{i}" for i in range(20) if i != 7)
    assert "could not write the routing log" in capsys.readouterr().err
    cells = stored_cells()
    with writing() as conn:
        rollup.backfill(conn)
    assert stored_cells() == cells


def count_round_trips(rows: int) -> int:
    """The times the client waits for PostgreSQL while a batch of `rows` log rows (with key usage
    and rollup) is written and committed: the Sync, Flush and Query messages libpq's trace shows."""
    key_id = store.create_key("bob").record.id
    trace_file = os.path.join(os.environ["R42_HOME"], f"trace-{rows}.txt")
    os.makedirs(os.environ["R42_HOME"], exist_ok=True)
    with open(trace_file, "w") as trace:
        with batch() as conn, rollup.deferred(conn):  # as the gateway's log writer
            conn.raw.pgconn.trace(trace.fileno())
            for index in range(rows):
                fields = route_fields(index)
                store.write_route(key_id=key_id, **fields)
                store.record_usage(key_id, 0.001, at=fields["at"])
        conn.raw.pgconn.untrace()
    with open(trace_file) as trace:  # lines: time, F (sent) or B (received), length, message, ...
        sent = [line.split("\t")[3].strip() for line in trace if line.split("\t")[1] == "F"]
    return sum(message in ("Sync", "Flush", "Query") for message in sent)


def test_a_batch_on_postgresql_costs_a_few_round_trips_however_many_rows(pg_url):
    # rollup reads, rollup writes, COMMIT, and now and then one more of psycopg's own (when it
    # prepares a statement): not the three per row (row, usage, key) of a statement at a time
    counts = [count_round_trips(rows) for rows in (5, 250, 250)]
    assert all(3 <= count <= 5 for count in counts), counts


def statements_of_a_batch(rows: int, backend: str, key_id: int) -> int:
    """The statements the database runs for a batch of `rows` log rows with key usage and rollup,
    written as the gateway's log writer writes them: SQLite's trace callback, PostgreSQL's Bind
    messages in libpq's protocol trace."""
    trace_file = os.path.join(os.environ["R42_HOME"], f"statements-{rows}.txt")
    statements = []
    with open(trace_file, "w") as trace:
        with batch() as conn, rollup.deferred(conn):
            if backend == "postgres":
                conn.raw.pgconn.trace(trace.fileno())
            else:
                conn.set_trace_callback(statements.append)
            for index in range(rows):
                fields = route_fields(index)
                store.write_route(key_id=key_id, **fields)
                store.record_usage(key_id, 0.001, at=fields["at"])
        if backend == "postgres":
            conn.raw.pgconn.untrace()
        else:
            conn.set_trace_callback(None)
    if backend == "sqlite":
        return sum(not sql.startswith(("BEGIN", "COMMIT")) for sql in statements)
    with open(trace_file) as trace:
        return sum(line.split("\t")[1] == "F" and line.split("\t")[3].strip() == "Bind" for line in trace)


def test_a_batch_runs_the_same_statements_for_30_rows_as_for_250(store_backend, monkeypatch):
    # One multi-row INSERT of routes, one of key_usage and one last_used UPDATE per key, whatever
    # the number of rows (30 rows fill every rollup cell that 250 do); not three statements a row.
    monkeypatch.setattr("r42.store.log._last_prune", float("inf"))  # no prune now and then
    key_id = store.create_key("carol").record.id
    counts = [statements_of_a_batch(rows, store_backend, key_id) for rows in (30, 250)]
    assert counts[0] == counts[1] < 3 * 30, counts


class WindowedWriter(LogWriter):
    """LogWriter whose windows bring given jobs (the requests that end meanwhile), recording the
    batches it writes."""

    def __init__(self, arrivals: list[list[str]]) -> None:
        self.arrivals = arrivals
        self.batches: list[list[str]] = []
        super().__init__()

    def job(self, name: str, *then: str) -> Any:
        """A job named `name` that queues the jobs `then` while it is written."""

        def run() -> None:
            for other in then:
                self.put(self.job(other))

        run.__name__ = name
        return run

    def window(self) -> None:
        for name in self.arrivals.pop(0) if self.arrivals else []:
            self.put(self.job(name))

    def _write(self, jobs: list[Any]) -> None:
        self.batches.append([job.__name__ for job, _ in jobs])
        super()._write(jobs)


def test_jobs_queued_while_a_batch_is_written_wait_for_the_next_window():
    # Else a slow commit leaves the writer writing a request or two at a time: PostgreSQL's commit
    # took the log thread into a loop of small batches at several times the CPU per request.
    writer = WindowedWriter([["b"], ["d", "e"]])
    try:
        writer.put(writer.job("a"))
        writer.put(writer.job("b0", "c"))  # c comes in while the first batch is written
        writer.flush()
        writer.flush()
    finally:
        writer.close()
    assert writer.batches == [["a", "b0", "b"], ["c", "d", "e"]]


def test_a_full_batch_leaves_the_backlog_to_the_next_batch_at_once():
    writer = WindowedWriter([[f"j{i}" for i in range(LogWriter.MAX_BATCH + 10)]])
    try:
        writer.put(writer.job("first"))
        writer.flush()
    finally:
        writer.close()
    assert [len(b) for b in writer.batches] == [LogWriter.MAX_BATCH, 11]
