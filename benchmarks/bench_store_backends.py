"""What the shared store costs a request: `r42 serve` on the SQLite store next to `r42 serve` on
PostgreSQL + Redis (database_url + redis_url), in one run, with the same load generator
(benchmarks/loadlib.py) and the same fast mock upstream.

Every request presents a gateway key (looked up in the store, remembered briefly) and writes its
routing-log row (batched, off the request path, on both stores). The points marked "rpm key" use a
key with a request limit: each request is then admitted against it, in the store on SQLite (a
BEGIN IMMEDIATE transaction that counts the key's rows) or in Redis (a Lua script) when redis_url is set. PostgreSQL
and Redis run on loopback from Debian's packages with temporary files, as in the tests.

Rounds alternate SQLite and PostgreSQL + Redis so that load from elsewhere on the machine falls on
both alike; each figure is the median over rounds of the p50 (ms) or requests/s of one point.

    python benchmarks/bench_store_backends.py [--duration 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_serve import cpu_model, free_port, load, start_upstream, wait_ready  # noqa: E402

ROOT = HERE.parent
DIRECT = "openai/gpt-4o-mini"
# (label, model, concurrency, the key has a request limit)
POINTS = (
    ("routed: auto", "auto", 1, False),
    ("direct model", DIRECT, 1, False),
    ("direct model", DIRECT, 8, False),
    ("direct model, rpm key", DIRECT, 1, True),
    ("direct model, rpm key", DIRECT, 8, True),
)


def _as_postgres() -> dict:
    return {"user": "postgres", "group": "postgres", "extra_groups": []} if os.geteuid() == 0 else {}


def start_postgres(directory: Path) -> tuple[subprocess.Popen, str]:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        raise SystemExit("PostgreSQL is not installed (apt-get install postgresql)")
    bin_dir = found[-1].parent
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    data = directory / "data"
    subprocess.run(
        [str(bin_dir / "initdb"), "-D", str(data), "-U", "r42", "--auth=trust"],
        check=True,
        stdout=subprocess.DEVNULL,
        **_as_postgres(),
    )
    port = free_port()
    # Durable commits as in production (fsync and synchronous_commit stay on).
    options = ["-c", "listen_addresses=127.0.0.1", "-p", str(port), "-c", f"unix_socket_directories={directory}"]
    process = subprocess.Popen(
        [str(bin_dir / "postgres"), "-D", str(data), *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **_as_postgres(),
    )
    import psycopg

    deadline = time.monotonic() + 30
    while True:
        try:
            psycopg.connect(f"postgresql://r42@127.0.0.1:{port}/postgres", autocommit=True).close()
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    with psycopg.connect(f"postgresql://r42@127.0.0.1:{port}/postgres", autocommit=True) as conn:
        conn.execute("CREATE DATABASE r42")
    return process, f"postgresql://r42@127.0.0.1:{port}/r42"


def start_redis(directory: Path) -> tuple[subprocess.Popen, str]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(binary):
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(directory), "--save", ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.3)
    return process, f"redis://127.0.0.1:{port}/0"


def start_gateway(upstream: int, home: Path, extra_env: dict[str, str]) -> tuple[subprocess.Popen, int, list[str]]:
    """r42 serve with its own R42_HOME; two gateway keys: without limits, and limited to 10^6 a minute."""
    env = {
        **os.environ,
        **extra_env,
        "R42_HOME": str(home),
        "OPENAI_BASE_URL": f"http://127.0.0.1:{upstream}/v1",
        "OPENAI_API_KEY": "sk-bench",
        "OLLAMA_HOST": "127.0.0.1:9",
        "R42_LMSTUDIO_BASE_URL": "http://127.0.0.1:9/v1",
        "PYTHONPATH": str(ROOT),
    }
    code = "from r42.store import create_key; print(create_key('free').key, create_key('limited', rpm=10**6).key)"
    keys = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "r42", "serve", "--port", str(port)], env=env, stderr=subprocess.DEVNULL
    )
    wait_ready(f"http://127.0.0.1:{port}/health", 30, process)
    return process, port, keys


def measure(port: int, key: str | None, model: str, concurrency: int, duration: float) -> dict:
    headers = {"Authorization": f"Bearer {key}", "X-R42-Force-Route": "cloud"} if key else {}
    return load(port, concurrency, False, duration, model, headers)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per point and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="r42-bench-store-"))
    os.chmod(work, 0o755)
    processes: list[subprocess.Popen] = []
    try:
        upstream, upstream_port = start_upstream("python")
        processes.append(upstream)
        (work / "pg").mkdir()
        (work / "redis").mkdir()
        postgres, database_url = start_postgres(work / "pg")
        processes.append(postgres)
        redis, redis_url = start_redis(work / "redis")
        processes.append(redis)
        sqlite_gw, sqlite_port, sqlite_keys = start_gateway(upstream_port, work / "home-sqlite", {})
        processes.append(sqlite_gw)
        shared = {"R42_DATABASE_URL": database_url, "R42_REDIS_URL": redis_url}
        pg_gw, pg_port, pg_keys = start_gateway(upstream_port, work / "home-pg", shared)
        processes.append(pg_gw)
        targets = {"SQLite": (sqlite_port, sqlite_keys), "PostgreSQL + Redis": (pg_port, pg_keys)}
        for port, keys in targets.values():  # warm up: imports, catalog, connections, pools
            for _, model, concurrency, limited in POINTS:
                measure(port, keys[limited], model, concurrency, 0.5)
        results: dict[tuple[str, str, int], list[dict]] = {}
        mock: list[dict] = []
        for _ in range(args.rounds):
            mock.append(load(upstream_port, 1, False, args.duration, "mock-model", {}))
            for label, model, concurrency, limited in POINTS:
                for name, (port, keys) in targets.items():
                    results.setdefault((name, label, concurrency), []).append(
                        measure(port, keys[limited], model, concurrency, args.duration)
                    )
        report(results, mock, args)
    finally:
        for process in reversed(processes):
            process.send_signal(signal.SIGINT if process is processes[1] else signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(work, ignore_errors=True)


def _median(runs: list[dict], field: str) -> float:
    return statistics.median(r[field] for r in runs if r.get(field) is not None)


def report(results: dict, mock: list[dict], args: argparse.Namespace) -> None:
    print(
        f"{cpu_model()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {args.duration:g} s per point,"
        f" {args.rounds} rounds (medians), load average before the report {os.getloadavg()[0]:.2f}"
    )
    p50, rps = _median(mock, "p50_ms"), _median(mock, "rps")
    print(f"mock upstream directly, concurrency 1: p50 {p50:.3f} ms, {rps:.0f} req/s")
    print(f"{'point':<32} {'store':<20} {'p50 ms':>8} {'req/s':>8} {'errors':>7}")
    for label, _, concurrency, _ in POINTS:
        base = None
        for name in ("SQLite", "PostgreSQL + Redis"):
            runs = results[(name, label, concurrency)]
            p50, rps = _median(runs, "p50_ms"), _median(runs, "rps")
            errors = sum(r.get("errors", 0) for r in runs)
            added = "" if base is None else f"  ({p50 - base:+.3f} ms p50 over SQLite)"
            base = p50 if base is None else base
            print(f"{label + f', c={concurrency}':<32} {name:<20} {p50:>8.3f} {rps:>8.0f} {errors:>7}{added}")


if __name__ == "__main__":
    main()
