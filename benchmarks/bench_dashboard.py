"""How long the gateway's /dashboard takes to render over a month of traffic, against a baseline.

Seeds a fresh store (in a temporary R42_HOME) with N logged requests spread over 30 days (default
100,000), then measures, in one run on one machine:

  * dashboard: the server time of GET /dashboard?period=30d as an admin (query layer + HTML),
    timed in-process around the handler, and the page's weight in bytes;
  * baseline:  `r42 stats` over the same rows the way it worked before the query layer
    (compute_stats over iter_routes, every row read into Python), and the query layer's
    stats_report that `r42 stats` now uses.

    .venv/bin/python benchmarks/bench_dashboard.py [--rows 100000] [--repeat 7]
"""

from __future__ import annotations

import argparse
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
    with tempfile.TemporaryDirectory() as home:
        os.environ["R42_HOME"] = home
        os.environ["R42_LOG_RETENTION_DAYS"] = "0"
        run(args.rows, args.repeat)


def run(rows: int, repeat: int) -> None:
    from r42.server.dashboard import render_for_benchmark
    from r42.store import iter_routes, queries
    from r42.store.stats import Reference, compute_stats

    start = time.perf_counter()
    seed(rows)
    print(f"seeded {rows:,} requests over 30 days in {time.perf_counter() - start:.1f} s")
    reference = Reference("openai/gpt-4o", 2.5, 10.0, "benchmark")

    def forget() -> None:
        queries._cache.clear()
        queries._learning.clear()

    results = [
        (
            "GET /dashboard?period=30d, warm (the past is reused)",
            timed(lambda: render_for_benchmark("30d", reference), repeat),
        ),
        (
            "GET /dashboard?period=30d, cold (every row queried)",
            timed(lambda: render_for_benchmark("30d", reference), repeat, forget),
        ),
        ("GET /dashboard?period=24h, warm", timed(lambda: render_for_benchmark("24h", reference), repeat)),
        ("GET /dashboard?period=24h, cold", timed(lambda: render_for_benchmark("24h", reference), repeat, forget)),
        (
            "r42 stats (the query layer it now reads)",
            timed(lambda: queries.stats_report(queries.Scope(), reference), repeat),
        ),
        (
            "r42 stats before: compute_stats over iter_routes",
            timed(lambda: compute_stats(iter_routes(), reference), max(1, repeat // 2)),
        ),
    ]
    page = results[0][1][2]
    print(
        f"CPU: {cpu_model()} ({os.cpu_count()} cores), load average {os.getloadavg()[0]:.1f},"
        f" Python {platform.python_version()}"
    )
    print(f"{'what (median of runs)':55} {'wall ms':>9} {'CPU ms':>9}")
    for name, (wall, cpu, _) in results:
        print(f"{name:55} {wall:9.1f} {cpu:9.1f}")
    print(f"page weight (30d, admin): {len(page):,} bytes")


if __name__ == "__main__":
    main()
