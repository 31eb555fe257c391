"""What reading a key's use costs on the SQLite store, for a key with a monthly budget and many
requests earlier in the month: `usage()` (the webhooks' check after every request, /v1/me/usage,
the admin's key list) and `admit()` (before every request), against the baseline of summing the
month's rows, which is what `usage()` did before it read the month's counter (key_spend).

    python benchmarks/bench_key_usage.py [--rows 60000] [--repeat 300]

Run it from a checkout to time that checkout's code; figures are medians, in one process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench_serve import cpu_model  # noqa: E402

# usage()'s query before it read the counter: every row of the day and of the month
MONTH_ROWS = """SELECT coalesce(sum(ts > :minute), 0), coalesce(sum(ts > :day), 0),
    coalesce(sum(CASE WHEN ts >= :month THEN cost_usd ELSE 0 END), 0.0),
    min(CASE WHEN ts > :minute THEN ts END), min(CASE WHEN ts > :day THEN ts END)
    FROM key_usage WHERE key_id = :key AND ts >= :since AND ts <= :upto"""


def median_ms(call, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=60_000, help="the key's requests earlier this month")
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["R42_HOME"] = home
        os.environ.pop("R42_DATABASE_URL", None)
        from r42 import store
        from r42.store.db import batch, reading
        from r42.store.keys import admit, month_start, usage

        now = time.time()
        first = max(month_start(now), now - 20 * 86_400)  # the rows spread over this month
        record = store.create_key("bench", rpm=1_000_000, budget_usd=1e9).record
        with batch():
            for n in range(args.rows):
                store.record_usage(record.id, 0.001, at=first + (now - 120 - first) * n / args.rows)
        conn = reading()
        params = {
            "minute": now - 60,
            "day": now - 86_400,
            "month": month_start(now),
            "key": record.id,
            "since": min(now - 86_400, month_start(now)),
            "upto": now,
        }
        month_rows = median_ms(lambda: conn.execute(MONTH_ROWS, params).fetchone(), args.repeat)
        figures = {
            "sum of the month's rows (before)": month_rows,
            "usage()": median_ms(lambda: usage(record.id, now), args.repeat),
        }
        spent = conn.execute(MONTH_ROWS, params).fetchone()[2]
        assert abs(usage(record.id, now).cost_month_usd - spent) < 1e-6  # the same answer
        figures["admit()"] = median_ms(lambda: admit(record), args.repeat)
    print(f"CPU: {cpu_model()}, Python {sys.version.split()[0]}, SQLite, {args.rows} requests this month")
    for name, ms in figures.items():
        print(f"{name:34s} {ms:8.3f} ms median of {args.repeat}")


if __name__ == "__main__":
    main()
