"""What `r42 serve` adds to a request, next to calling the upstream directly and next to LiteLLM's
proxy, all in one run with the same load generator (benchmarks/loadlib.py).

A fast mock upstream speaks OpenAI chat on loopback. Each target is loaded at concurrency 1, 8 and
64, non-streaming and streaming, for `--duration` seconds per point:

- mock directly: the floor;
- r42 serve (direct model): `model: openai/gpt-4o-mini`, no ranking: the gateway, the executor and
  the OpenAI adapter (httpx) on the path;
- r42 serve (routed): `model: auto`, which scores and ranks 1,224 catalog models per request
  (concurrency 1 only);
- LiteLLM proxy: when `--litellm` (default /tmp/litellm-venv/bin/litellm) exists; otherwise skipped
  with a note. Install it in its own venv: python3 -m venv /tmp/litellm-venv &&
  /tmp/litellm-venv/bin/pip install 'litellm[proxy]'

    python benchmarks/bench_serve.py [--duration 3] [--litellm PATH] [--workers 2]

`--workers N` adds `r42 serve --workers N` beside the single process (direct and routed, the same
points), so the two are compared in one run. The report starts with the CPU model and count.

r42 runs with --no-auth (no key lookup); add --auth to measure with a gateway key.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PATH = "/v1/chat/completions"


def start_upstream() -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen(
        [sys.executable, str(HERE / "loadlib.py"), "upstream"], stdout=subprocess.PIPE, text=True
    )
    return process, int(process.stdout.readline().split()[1])


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, timeout: float, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url}: the server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not become ready in {timeout:g} s")


def start_r42(upstream: int, home: str, auth: bool, workers: int = 1) -> tuple[subprocess.Popen, int, dict[str, str]]:
    port = free_port()
    env = {
        **os.environ,
        "R42_HOME": home,
        "OPENAI_BASE_URL": f"http://127.0.0.1:{upstream}/v1",
        "OPENAI_API_KEY": "sk-bench",
        "OLLAMA_HOST": "127.0.0.1:9",
        "R42_LMSTUDIO_BASE_URL": "http://127.0.0.1:9/v1",
        "PYTHONPATH": str(ROOT),
    }
    headers: dict[str, str] = {}
    command = [sys.executable, "-m", "r42", "serve", "--port", str(port), "--workers", str(workers)]
    if auth:
        key = subprocess.run(
            [sys.executable, "-c", "from r42.store import create_key; print(create_key('bench').key)"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        headers["Authorization"] = f"Bearer {key}"
    else:
        command.append("--no-auth")
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    wait_ready(f"http://127.0.0.1:{port}/health", 30, process)
    return process, port, headers


def start_litellm(binary: str, upstream: int, home: str) -> tuple[subprocess.Popen, int]:
    config = Path(home) / "litellm.yaml"
    config.write_text(
        "model_list:\n  - model_name: mock-model\n    litellm_params:\n      model: openai/mock-model\n"
        f"      api_base: http://127.0.0.1:{upstream}/v1\n      api_key: sk-bench\n"
        "litellm_settings:\n  drop_params: true\n"
    )
    port = free_port()
    env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_MASTER_KEY": "sk-litellm-bench-" + "0" * 40}
    process = subprocess.Popen(
        [binary, "--config", str(config), "--port", str(port), "--num_workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_ready(f"http://127.0.0.1:{port}/health/liveliness", 120, process)
    return process, port


def load(port: int, concurrency: int, stream: bool, duration: float, model: str, headers: dict[str, str]) -> dict:
    command = [
        sys.executable,
        str(HERE / "loadlib.py"),
        "load",
        "--url",
        f"http://127.0.0.1:{port}{PATH}",
        "-c",
        str(concurrency),
        "-d",
        str(duration),
        "--model",
        model,
    ]
    if stream:
        command.append("--stream")
    for name, value in headers.items():
        command += ["--header", f"{name}:{value}"]
    return json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--litellm", default="/tmp/litellm-venv/bin/litellm")
    parser.add_argument("--auth", action="store_true", help="r42 with a gateway key instead of --no-auth")
    parser.add_argument("--workers", type=int, default=0, help="also measure r42 serve --workers N")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="r42-bench-serve-")
    upstream, upstream_port = start_upstream()
    processes = [upstream]
    targets: list[tuple[str, int, str, dict[str, str], tuple[int, ...]]] = [
        ("mock directly", upstream_port, "mock-model", {}, (1, 8, 64))
    ]
    notes = []
    try:
        r42, r42_port, headers = start_r42(upstream_port, home, args.auth)
        processes.append(r42)
        targets.append(("r42 serve (direct model)", r42_port, "openai/gpt-4o-mini", headers, (1, 8, 64)))
        targets.append(
            ("r42 serve (routed: auto)", r42_port, "auto", {**headers, "X-R42-Force-Route": "cloud"}, (1, 64))
        )
        if args.workers > 1:
            many, many_port, many_headers = start_r42(upstream_port, home, args.auth, args.workers)
            processes.append(many)
            label = f"r42 --workers {args.workers}"
            targets.append((f"{label} (direct)", many_port, "openai/gpt-4o-mini", many_headers, (1, 8, 64)))
            targets.append(
                (f"{label} (routed)", many_port, "auto", {**many_headers, "X-R42-Force-Route": "cloud"}, (1, 64))
            )
        if os.path.exists(args.litellm):
            try:
                litellm, litellm_port = start_litellm(args.litellm, upstream_port, home)
                processes.append(litellm)
                targets.append(
                    (
                        "LiteLLM proxy",
                        litellm_port,
                        "mock-model",
                        {"Authorization": "Bearer sk-litellm-bench-" + "0" * 40},
                        (1, 8, 64),
                    )
                )
            except SystemExit as exc:
                notes.append(f"LiteLLM proxy skipped: {exc}")
        else:
            notes.append(f"LiteLLM proxy skipped: {args.litellm} not found (see the module docstring to install it)")
        rows = []
        for name, port, model, hdrs, levels in targets:
            for stream in (False, True):
                for concurrency in levels:
                    load(port, concurrency, stream, 0.5, model, hdrs)  # warm up (connections, imports, caches)
                    rows.append(
                        (name, stream, concurrency, load(port, concurrency, stream, args.duration, model, hdrs))
                    )
    finally:
        for process in processes:
            process.terminate()
            process.wait()
    report(rows, notes, args)


def report(rows: list, notes: list[str], args: argparse.Namespace) -> None:
    base = {(stream, c): result for name, stream, c, result in rows if name == "mock directly"}
    print(
        f"{cpu_model()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {args.duration:g} s per point, "
        f"r42 {'with a gateway key' if args.auth else '--no-auth'}"
    )
    print(
        f"{'target':<31} {'kind':<7} {'c':>3} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'added p50':>10} "
        f"{'TTFB p50':>9} {'added TTFB':>11} {'errors':>7}"
    )
    for name, stream, c, r in rows:
        b = base.get((stream, c))
        added = None if name == "mock directly" or not b or r["p50_ms"] is None else r["p50_ms"] - b["p50_ms"]
        added_ttfb = (
            None
            if name == "mock directly" or not b or r["ttfb_p50_ms"] is None or b["ttfb_p50_ms"] is None
            else r["ttfb_p50_ms"] - b["ttfb_p50_ms"]
        )
        print(
            f"{name:<31} {'stream' if stream else 'json':<7} {c:>3} {r['rps']:>8.0f} "
            f"{fmt(r['p50_ms']):>8} {fmt(r['p99_ms']):>8} {fmt(added):>10} "
            f"{fmt(r['ttfb_p50_ms']):>9} {fmt(added_ttfb):>11} {r['errors']:>7}"
        )
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
