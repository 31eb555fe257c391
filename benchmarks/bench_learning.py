"""What rank's learning costs over a big routing log: learned_adjustments() for one user over
100,000 logged requests (bench_dashboard's synthetic month: ~5% failed, ~10% answered after a
fallback), against a baseline in the same run that reads and parses every row's attempts, as
read_failed_attempts did before it filtered on the attempts' text in SQL.

Each gateway process recomputes a user's adjustments every 30 s (on a thread, r42.routing), so this
is a recurring cost per process and user.

    .venv/bin/python benchmarks/bench_learning.py [--rows 100000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench_dashboard import cpu_model, seed, timed  # noqa: E402


def every_row_parsed(user: str | None, since: float) -> list[tuple[float, str, str | None]]:
    """The baseline: read_failed_attempts as it was (every row of the user read and parsed)."""
    from r42.store.db import reading

    conn = reading()
    assert conn is not None
    rows = conn.execute(
        "SELECT ts, domain, attempts FROM routes WHERE user IS ? AND ts >= ? AND n_attempts > 0", (user, since)
    ).fetchall()
    return [
        (ts, attempt["model"], domain)
        for ts, domain, attempts in rows
        for attempt in orjson.loads(attempts or "[]")
        if not attempt.get("ok") and attempt.get("model")
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    os.environ["R42_HOME"] = tempfile.mkdtemp(prefix="r42-bench-learning-")
    from r42.learning import WINDOW_DAYS, learned_adjustments
    from r42.store import feedback

    start = time.perf_counter()
    seed(args.rows)
    print(f"seeded {args.rows:,} requests over 30 days in {time.perf_counter() - start:.1f} s")
    load = os.getloadavg()[0]
    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores), load average {load:.1f}, Python {platform.python_version()}")
    since = time.time() - WINDOW_DAYS * 86_400
    users = ("alice", None)  # the busiest synthetic user, and rows logged without a user
    filtered = {user: feedback.read_failed_attempts(user, since) for user in users}
    for user in users:
        assert sorted(filtered[user]) == sorted(every_row_parsed(user, since)), "the two reads disagree"
    print(f"{'what (median of runs, user alice)':<58}{'wall ms':>10}{'CPU ms':>10}")
    for label, function in (
        (
            "failed attempts: rows with one, filtered in SQL (now)",
            lambda: feedback.read_failed_attempts("alice", since),
        ),
        ("failed attempts: every row read and parsed (baseline)", lambda: every_row_parsed("alice", since)),
        ("learned_adjustments (now)", lambda: learned_adjustments("alice", 14.0)),
    ):
        wall, cpu, _ = timed(function, args.repeat)
        print(f"{label:<58}{wall:>10.1f}{cpu:>10.1f}")
    original = feedback.read_failed_attempts
    feedback.read_failed_attempts = every_row_parsed  # type: ignore[assignment]
    try:
        wall, cpu, _ = timed(lambda: learned_adjustments("alice", 14.0), args.repeat)
    finally:
        feedback.read_failed_attempts = original
    print(f"{'learned_adjustments with the baseline read':<58}{wall:>10.1f}{cpu:>10.1f}")
    print(
        f"failed attempts found for alice: {len(filtered['alice']):,}; load average at the end {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
