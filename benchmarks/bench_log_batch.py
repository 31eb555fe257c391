"""What one batch of the gateway's log writer costs: 256 requests' routing-log rows, key usage and
rollup cells written by LogWriter._write (the log thread's own code) in one transaction, on the
SQLite store and on PostgreSQL (loopback, Debian's binaries, durable commits, as
bench_store_backends.py starts it). Rounds alternate the stores; figures are medians over rounds.

Run it from a checkout to time that checkout's code (PYTHONPATH picks the r42 package):

    python benchmarks/bench_log_batch.py [--rounds 15] [--rows 256]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench_serve import cpu_model  # noqa: E402
from bench_store_backends import start_postgres  # noqa: E402


def jobs(rows: int, key_id: int, start: float) -> list:
    """Jobs as the gateway queues them: the routing-log row, then the key's usage."""
    from r42.store import record_usage, write_route

    out = []
    for index in range(rows):
        at = start + index * 0.001

        def job(index: int = index, at: float = at) -> None:
            write_route(
                endpoint="serve",
                model=("openai/gpt-4o-mini", "groq/llama")[index % 2],
                user="bench",
                mode="cost",
                domain=("code", "chat")[index % 2],
                complexity=(index % 10) / 10,
                attempts=[{"model": "openai/gpt-4o-mini", "ok": True, "status": 200, "ms": 1.0}],
                input_tokens=12,
                output_tokens=30,
                cost_usd=0.00002,
                latency_ms=0.8 + index % 5,
                ttft_ms=0.4,
                key_id=key_id,
                at=at,
                retention_days=0,
            )
            record_usage(key_id, 0.00002, at=at)

        out.append((job, None))
    return out


def use_store(home: Path, database_url: str) -> None:
    """Point this process's store at SQLite in `home` ("" url) or at PostgreSQL."""
    os.environ["R42_HOME"] = str(home)
    os.environ["R42_DATABASE_URL"] = database_url


def time_batches(rows: int, rounds: int, database_url: str, home: Path) -> dict[str, list[float]]:
    from r42.server.app import LogWriter
    from r42.store import create_key

    stores = {"SQLite": (home / "sqlite", ""), "PostgreSQL": (home / "pg-home", database_url)}
    keys = {}
    for name, (store_home, url) in stores.items():
        use_store(store_home, url)
        keys[name] = create_key("bench").record.id
    writer = LogWriter()  # its thread waits: _write runs here, on this thread
    times: dict[str, list[float]] = {name: [] for name in stores}
    for round_number in range(rounds + 1):  # the first round warms up (connections, prepared statements)
        for name, (store_home, url) in stores.items():
            use_store(store_home, url)
            batch = jobs(rows, keys[name], time.time())
            started = time.perf_counter()
            writer._write(batch)
            if round_number:
                times[name].append((time.perf_counter() - started) * 1000)
    writer.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--rows", type=int, default=256)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="r42-bench-logbatch-"))
    os.chmod(work, 0o755)
    (work / "pg").mkdir()
    postgres, database_url = start_postgres(work / "pg")
    try:
        times = time_batches(args.rows, args.rounds, database_url, work)
    finally:
        postgres.send_signal(signal.SIGINT)
        postgres.wait(timeout=20)
        shutil.rmtree(work, ignore_errors=True)
    import r42

    print(
        f"{cpu_model()}, {os.cpu_count()} CPUs, r42 from {Path(r42.__file__).parent.parent},"
        f" {args.rows} rows a batch, {args.rounds} rounds, load average {os.getloadavg()[0]:.2f}"
    )
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<11} batch median {median:8.2f} ms  ({median * 1000 / args.rows:6.1f} us a row)")


if __name__ == "__main__":
    main()
