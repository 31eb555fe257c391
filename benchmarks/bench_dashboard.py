"""How long the gateway's /dashboard takes to render over a month of traffic, with the daily rollup
and, in the same run, without it (every row scanned, as before the rollup).

Seeds a fresh store (in a temporary R42_HOME) with N logged requests spread over 30 days (default
100,000) and fills the rollup from them (as the migration does), then measures:

  * the server time of GET /dashboard?period=30d and ?period=24h as an admin (query layer + HTML),
    timed in-process around the handler: warm (the part before the current bucket cached), cold
    (that cache emptied: the first view after the past changed) and after a start (what learning
    changed is forgotten too, so its background thread runs alongside), and the page's weight;
  * the same views with queries.ROLLUP = False: every row of the period read (the baseline);
  * `r42 stats` over every row (the query layer, with and without the rollup);
  * the cost of logging one request with and without the rollup's cells: write_route() alone (one
    commit per row, as `r42 ask`) and in the gateway writer's batches of 256 rows.

    .venv/bin/python benchmarks/bench_dashboard.py [--rows 100000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import orjson

MODELS = (
    "openai/gpt-4o-mini",
    "openai/gpt-4o",
    "anthropic/claude-sonnet-4",
    "groq/llama-3.1-8b",
    "ollama/qwen2.5:7b",
    "mistral/small",
)
MODES = ("balanced", "cost", "quality", None)
DOMAINS = ("code", "math", "writing", "general", "reasoning", None)
USERS = ("alice", "bob", "carol", "dave", None)
KINDS = ((429, "rate limited"), (503, "overloaded"), (None, "timed out after 30 s"), (500, "internal error"))
COLUMNS = (
    "ts, request_id, user, key_id, endpoint, mode, complexity, domain, model, attempts, n_attempts, input_tokens,"
    " output_tokens, cost_usd, latency_ms, ttft_ms, status, error"
)


def synthetic_row(rng: random.Random, ts: float, index: int) -> tuple:
    """One plausible routing-log row: ~5% failed after 1-3 attempts, ~10% answered after a fallback."""
    model = rng.choice(MODELS)
    attempts: list[dict[str, Any]] = []
    failed = rng.random() < 0.05
    if failed or rng.random() < 0.10:
        for _ in range(rng.randint(1, 3 if failed else 2)):
            status, error = rng.choice(KINDS)
            attempts.append(
                {"model": rng.choice(MODELS), "ok": False, "status": status, "ms": rng.randint(5, 3000), "error": error}
            )
    if not failed:
        attempts.append({"model": model, "ok": True, "status": 200, "ms": rng.randint(50, 4000)})
    tokens_in, tokens_out = rng.randint(20, 4000), rng.randint(5, 1500)
    return (
        ts,
        f"req_{index:024x}",
        rng.choice(USERS),
        None,
        "/v1/chat/completions",
        rng.choice(MODES),
        round(rng.random(), 3),
        rng.choice(DOMAINS),
        None if failed else model,
        orjson.dumps(attempts).decode(),
        len(attempts),
        None if failed else tokens_in,
        None if failed else tokens_out,
        None if failed else round((tokens_in * 0.5 + tokens_out * 2) / 1e6, 8),
        rng.uniform(80, 6000),
        None if failed else rng.uniform(30, 900),
        "error" if failed else "ok",
        "AllFailedError" if failed else None,
    )


def seed(rows: int, days: float = 30.0, now: float | None = None, rng_seed: int = 42) -> None:
    """Write `rows` synthetic requests spread evenly over the last `days` days into the store."""
    from r42.store.db import writing

    now = time.time() if now is None else now
    rng = random.Random(rng_seed)
    span = days * 86_400
    placeholders = ", ".join("?" * 18)
    chunk: list[tuple] = []
    for index in range(rows):
        chunk.append(synthetic_row(rng, now - span + span * (index + rng.random()) / rows, index))
        if len(chunk) == 10_000 or index == rows - 1:
            with writing() as conn:
                conn.executemany(f"INSERT INTO routes ({COLUMNS}) VALUES ({placeholders})", chunk)
            chunk = []
    from r42.store import rollup

    with writing() as conn:  # what migration 5 does to a store that has rows
        rollup.backfill(conn)


def timed(
    function: Callable[[], Any], repeat: int, before: Callable[[], None] | None = None
) -> tuple[float, float, Any]:
    """Median wall and CPU milliseconds of `repeat` runs (after one warm-up) and the last result;
    `before` runs ahead of each (untimed)."""
    result = function()
    walls, cpus = [], []
    for _ in range(repeat):
        if before is not None:
            before()
        wall, cpu = time.perf_counter(), time.process_time()
        result = function()
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return statistics.median(walls), statistics.median(cpus), result


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    global REFERENCE
    from r42.store.stats import Reference

    REFERENCE = Reference("openai/gpt-4o", 2.5, 10.0, "benchmark")
    with tempfile.TemporaryDirectory() as home:
        os.environ["R42_HOME"] = home
        os.environ["R42_LOG_RETENTION_DAYS"] = "0"
        run(args.rows, args.repeat)


def run(rows: int, repeat: int) -> None:
    from r42.store import iter_routes, queries
    from r42.store.stats import compute_stats

    start = time.perf_counter()
    seed(rows)
    print(f"seeded {rows:,} requests over 30 days (and their rollup) in {time.perf_counter() - start:.1f} s")
    results: list[tuple[str, tuple[float, float, Any]]] = []
    for rollup_on in (True, False):
        queries.ROLLUP = rollup_on
        label = "rollup" if rollup_on else "baseline: every row"
        results += views(label, repeat)
        results.append((f"r42 stats, {label}", timed(lambda: queries.stats_report(queries.Scope(), REFERENCE), repeat)))
    queries.ROLLUP = True
    results.append(
        (
            "r42 stats before the query layer (compute_stats)",
            timed(lambda: compute_stats(iter_routes(), REFERENCE), max(1, repeat // 2)),
        )
    )
    page = results[0][1][2]
    print(
        f"CPU: {cpu_model()} ({os.cpu_count()} cores), load average {os.getloadavg()[0]:.1f},"
        f" Python {platform.python_version()}"
    )
    print(f"{'what (median of runs)':62} {'wall ms':>9} {'CPU ms':>9}")
    for name, (wall, cpu, _) in results:
        print(f"{name:62} {wall:9.1f} {cpu:9.1f}")
    print(f"page weight (30d, admin): {len(page):,} bytes")
    write_costs(2000)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


REFERENCE = None  # set in main(): the stats.Reference every view uses


def views(label: str, repeat: int) -> list[tuple[str, tuple[float, float, Any]]]:
    """The 30-day and 24-hour pages warm, cold and (30 days) after a start."""
    from r42.server.dashboard import render_for_benchmark
    from r42.store import queries

    def cold() -> None:
        queries._cache.clear()

    def started() -> None:
        queries._cache.clear()
        queries._learning.clear()

    def page(period: str) -> Callable[[], bytes]:
        return lambda: render_for_benchmark(period, REFERENCE)

    queries.learning_changes([None], 14.0)  # learning known, as a minute after a start
    return [
        (f"30d warm, {label}", timed(page("30d"), repeat)),
        (f"30d cold, {label}", timed(page("30d"), repeat, cold)),
        (f"30d after a start (+ learning thread), {label}", timed(page("30d"), repeat, started)),
        (f"24h warm, {label}", timed(page("24h"), repeat)),
        (f"24h cold, {label}", timed(page("24h"), repeat, cold)),
    ]


def write_costs(n: int) -> None:
    """Microseconds to log one request, with and without its rollup cells (each in a fresh store)."""
    from r42.store import close_thread_connection, log, rollup, write_route
    from r42.store.db import batch

    class NoRollup:  # write_route() without the rollup: as r42 was before it
        @staticmethod
        def add_row(conn: Any, row: Any) -> None:
            pass

        @staticmethod
        def deferred(conn: Any) -> Any:
            return contextlib.nullcontext()

    rng = random.Random(3)
    samples = [synthetic_row(rng, time.time() - rng.random() * 86_400, i) for i in range(n)]
    print(f"{'logging one request (median of 3 runs of ' + str(n) + ' rows)':62} {'µs/row':>9}")
    for label, module in (("with the rollup", rollup), ("without (before)", NoRollup)):
        log.rollup = module  # type: ignore[assignment]
        cells = module.deferred
        for way in ("one commit per row (r42 ask)", "batches of 256 (the gateway)"):
            runs = []
            for _ in range(3):
                with tempfile.TemporaryDirectory() as home:
                    os.environ["R42_HOME"] = home
                    close_thread_connection()
                    write_route(endpoint="warm-up", retention_days=0)
                    begin = time.perf_counter()
                    if way.startswith("one"):
                        for row in samples:
                            write_route(**_fields(row))
                    else:
                        for first in range(0, n, 256):
                            with batch() as conn, cells(conn):  # as the gateway's log writer
                                for row in samples[first : first + 256]:
                                    write_route(**_fields(row))
                    runs.append((time.perf_counter() - begin) / n * 1e6)
                    close_thread_connection()
            print(f"{way + ', ' + label:62} {statistics.median(runs):9.1f}")
    log.rollup = rollup


def _fields(row: tuple) -> dict[str, Any]:
    names = [c.strip() for c in COLUMNS.split(",")]
    values = dict(zip(names, row))
    values["at"] = values.pop("ts")
    values["attempts"] = orjson.loads(values["attempts"])
    del values["n_attempts"]
    return {**values, "retention_days": 0}


if __name__ == "__main__":
    main()
