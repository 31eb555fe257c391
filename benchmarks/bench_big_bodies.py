"""Does a large request body stall everyone else? `/health` latency while clients post 10 MB bodies.

Starts a mock upstream and `r42 serve --no-auth` (as bench_serve.py does), then for `--duration`
seconds keeps `--posters` clients each posting a `--size` MB chat completion in a loop while one
client asks `/health` every 20 ms on its own kept-alive connection. Prints /health p50/p99/max and
the posters' completed requests and statuses. Issue 15 item 10 asks for /health p99 <= 150 ms with
six posters of 10 MB.

    python benchmarks/bench_big_bodies.py [--posters 6] [--size 10] [--duration 15] [--model auto]
"""

from __future__ import annotations

import argparse
import http.client
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import start_r42, start_upstream  # noqa: E402


def big_body(size_mb: float, model: str) -> bytes:
    words = (b"the quick brown fox jumps over the lazy dog; " * 1024).decode()
    text = (words * (int(size_mb * 1024 * 1024) // len(words) + 1))[: int(size_mb * 1024 * 1024)]
    return orjson.dumps({"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 8})


def poster(port: int, body: bytes, until: float, statuses: dict[int, int], lock: threading.Lock) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    while time.monotonic() < until:
        try:
            conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            status = response.status
        except OSError:
            status = 0
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        with lock:
            statuses[status] = statuses.get(status, 0) + 1


def prober(port: int, until: float, samples: list[float], args_duration: float = 0.0) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while time.monotonic() < until:
        t0 = time.perf_counter()
        conn.request("GET", "/health")
        response = conn.getresponse()
        response.read()
        samples.append((time.perf_counter() - t0) * 1000)
        if samples[-1] > 150:
            at = args_duration - (until - time.monotonic())
            print(f"  slow /health: {samples[-1]:.0f} ms at {at:.1f} s", file=sys.stderr)
        time.sleep(0.02)


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posters", type=int, default=6)
    parser.add_argument("--size", type=float, default=10.0, help="MB per body")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--model", default="openai/gpt-4o-mini", help="a direct model, or auto (scored and ranked)")
    parser.add_argument("--port", type=int, help="measure an r42 serve --no-auth already running on this port")
    args = parser.parse_args()
    processes = []
    port = args.port
    if port is None:
        upstream, upstream_port = start_upstream()
        r42, port, _ = start_r42(upstream_port, tempfile.mkdtemp(prefix="r42-bench-big-"), auth=False)
        processes = [r42, upstream]
    try:
        body = big_body(args.size, args.model)
        warm: dict[int, int] = {}
        poster(port, body, time.monotonic() + 0.1, warm, threading.Lock())  # first-use loading is not what we measure
        until = time.monotonic() + args.duration
        statuses: dict[int, int] = {}
        lock = threading.Lock()
        samples: list[float] = []
        threads = [
            threading.Thread(target=poster, args=(port, body, until, statuses, lock)) for _ in range(args.posters)
        ]
        threads.append(threading.Thread(target=prober, args=(port, until, samples, args.duration)))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for process in processes:
            process.terminate()
            process.wait()
    print(
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}; {args.posters} posters of {len(body) / 1e6:.1f} MB "
        f"(model {args.model}) for {args.duration:g} s"
    )
    print(
        f"/health: {len(samples)} probes, p50 {pct(samples, 0.5):.1f} ms, p99 {pct(samples, 0.99):.1f} ms, "
        f"max {max(samples):.1f} ms"
    )
    print(f"posters: {sum(statuses.values())} requests, statuses {dict(sorted(statuses.items()))}")


if __name__ == "__main__":
    main()
