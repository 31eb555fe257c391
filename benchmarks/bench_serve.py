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

    python benchmarks/bench_serve.py [--duration 3] [--litellm PATH] [--workers 2 [--rounds 5] [--only-workers]]
        [--upstream auto|nginx|python] [--load auto|wrk|python]

`--workers N` adds `r42 serve --workers N` beside the single process (direct and routed, the same
points), so the two are compared in one run, and then `--rounds` rounds of the comparison at
concurrency 64 (JSON: the mock alone, routed and direct through one process and through N
workers, the order alternating between rounds), reported as medians with each round's figures.
`--only-workers` runs only those rounds.

The load generator and the mock upstream share the machine's cores with the server they measure
(on 2 cores that caps what a second worker can add), so both are chosen to cost little and stated:
`--load wrk` (auto when Debian's `wrk` is installed) for JSON points, the Python generator
(benchmarks/loadlib.py) for streams (time to first byte) and as the fallback; `--upstream nginx`
(auto when nginx is installed) answers a fixed chat.completion from nginx, without streaming (the
streamed points are then skipped), `python` is loadlib's mock, which streams. The mock's own figure
("mock directly") is measured in the same run with the same generator. The report starts with the
CPU model and count and the load average before and after (other work on the machine shows there).

r42 runs with --no-auth (no key lookup); add --auth to measure with a gateway key.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PATH = "/v1/chat/completions"
sys.path.insert(0, str(HERE))
import loadlib  # noqa: E402 - benchmarks/ is not a package

Target = tuple[str, int, str, dict[str, str], tuple[int, ...]]
# what the --workers rounds measure: (kind, model, extra headers)
ROUND_KINDS = (("routed", "auto", {"X-R42-Force-Route": "cloud"}), ("direct", "openai/gpt-4o-mini", {}))


def start_upstream(kind: str) -> tuple[Any, int]:
    """The mock upstream (a process with terminate() and wait()) and its port."""
    if kind == "nginx":
        nginx = loadlib.NginxUpstream(free_port())
        wait_ready(f"http://127.0.0.1:{nginx.port}/v1/models", 10, nginx.process)
        return nginx, nginx.port
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


def load(
    port: int, concurrency: int, stream: bool, duration: float, model: str, headers: dict[str, str], wrk: bool = False
) -> dict:
    """One point: wrk for JSON when `wrk`, else (and for streams) loadlib's generator in its own process."""
    if wrk and not stream:
        body = {"model": model, "messages": [{"role": "user", "content": "Say hello."}], "stream": False}
        return loadlib.wrk_load(f"http://127.0.0.1:{port}{PATH}", body, headers, concurrency, duration)
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
    return {**json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout), "generator": "py"}


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
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the --workers comparison")
    parser.add_argument("--only-workers", action="store_true", help="only the rounds of the --workers comparison")
    parser.add_argument("--upstream", choices=("auto", "nginx", "python"), default="auto")
    parser.add_argument("--load", choices=("auto", "wrk", "python"), default="auto")
    args = parser.parse_args()
    if args.upstream == "auto":
        args.upstream = "nginx" if loadlib.nginx_binary() else "python"
    if args.load == "auto":
        args.load = "wrk" if shutil.which("wrk") else "python"
    wrk = args.load == "wrk"
    home = tempfile.mkdtemp(prefix="r42-bench-serve-")
    load_before = os.getloadavg()
    upstream, upstream_port = start_upstream(args.upstream)
    processes: list[Any] = [upstream]
    notes = []
    rows: list = []
    rounds: list[dict[str, dict]] = []
    try:
        r42, r42_port, headers = start_r42(upstream_port, home, args.auth)
        processes.append(r42)
        many_port, many_headers = 0, {}
        if args.workers > 1:
            many, many_port, many_headers = start_r42(upstream_port, home, args.auth, args.workers)
            processes.append(many)
        if not args.only_workers:
            targets = table_targets(args, upstream_port, r42_port, headers, many_port, many_headers, processes, notes)
            rows = measure_table(targets, args, wrk, notes)
        if args.workers > 1:
            pids = {"mock": upstream_pid(upstream), "1 process": r42.pid, f"--workers {args.workers}": many.pid}
            TRACKED[:] = pids.values()
            rounds = measure_rounds(args, wrk, upstream_port, (r42_port, headers), (many_port, many_headers), pids)
    finally:
        for process in processes:
            process.terminate()
            process.wait()
    report(rows, notes, args, load_before)
    if rounds:
        report_rounds(rounds, args)


def table_targets(
    args: argparse.Namespace,
    upstream_port: int,
    r42_port: int,
    headers: dict[str, str],
    many_port: int,
    many_headers: dict[str, str],
    processes: list[Any],
    notes: list[str],
) -> list[Target]:
    routed = {"X-R42-Force-Route": "cloud"}
    targets: list[Target] = [
        ("mock directly", upstream_port, "mock-model", {}, (1, 8, 64)),
        ("r42 serve (direct model)", r42_port, "openai/gpt-4o-mini", headers, (1, 8, 64)),
        ("r42 serve (routed: auto)", r42_port, "auto", {**headers, **routed}, (1, 64)),
    ]
    if many_port:
        label = f"r42 --workers {args.workers}"
        targets.append((f"{label} (direct)", many_port, "openai/gpt-4o-mini", many_headers, (1, 8, 64)))
        targets.append((f"{label} (routed)", many_port, "auto", {**many_headers, **routed}, (1, 64)))
    if os.path.exists(args.litellm):
        home = tempfile.mkdtemp(prefix="r42-bench-litellm-")
        try:
            litellm, litellm_port = start_litellm(args.litellm, upstream_port, home)
            processes.append(litellm)
            bearer = {"Authorization": "Bearer sk-litellm-bench-" + "0" * 40}
            targets.append(("LiteLLM proxy", litellm_port, "mock-model", bearer, (1, 8, 64)))
        except SystemExit as exc:
            notes.append(f"LiteLLM proxy skipped: {exc}")
    else:
        notes.append(f"LiteLLM proxy skipped: {args.litellm} not found (see the module docstring to install it)")
    return targets


def measure_table(targets: list[Target], args: argparse.Namespace, wrk: bool, notes: list[str]) -> list:
    rows = []
    streams = (False, True) if args.upstream == "python" else (False,)
    if args.upstream != "python":
        notes.append(f"streamed points skipped: the {args.upstream} mock upstream does not stream (--upstream python)")
    for name, port, model, hdrs, levels in targets:
        for stream in streams:
            for concurrency in levels:
                load(port, concurrency, stream, 0.5, model, hdrs)  # warm up (connections, imports, caches)
                result = load(port, concurrency, stream, args.duration, model, hdrs, wrk)
                rows.append((name, stream, concurrency, result))
    return rows


def measure_rounds(
    args: argparse.Namespace,
    wrk: bool,
    upstream_port: int,
    one: tuple[int, dict[str, str]],
    many: tuple[int, dict[str, str]],
    pids: dict[str, int],
) -> list[dict[str, dict]]:
    """`--rounds` rounds at concurrency 64, JSON: the mock alone, then one process and N workers
    (routed, then direct), the two servers' order swapped every other round. Each point also
    says the CPU time per request of the server (its whole process tree), the mock and the
    generator, which other work on the machine disturbs far less than req/s."""
    rounds = []
    for number in range(args.rounds):
        servers = [("1 process", *one), (f"--workers {args.workers}", *many)]
        if number % 2:
            servers.reverse()
        points = {"mock directly": timed(upstream_port, args.duration, "mock-model", {}, wrk)}
        points["mock directly"]["cpu"] = cpu_per_request(points["mock directly"], None, pids["mock"])
        for kind, model, extra in ROUND_KINDS:
            for label, port, headers in servers:
                load(port, 64, False, 1.0, model, {**headers, **extra}, wrk)  # warm up
                point = timed(port, args.duration, model, {**headers, **extra}, wrk)
                point["cpu"] = cpu_per_request(point, pids[label], pids["mock"])
                points[f"{label} {kind}"] = point
        points["load average"] = {"rps": os.getloadavg()[0]}
        rounds.append(points)
    return rounds


def upstream_pid(upstream: Any) -> int:
    return upstream.process.pid if hasattr(upstream, "process") else upstream.pid


def tree_ticks(pid: int) -> int:
    """CPU clock ticks (user + system) used so far by a process and its children (the workers)."""
    total = 0
    for each in [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]:
        fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total


def timed(port: int, duration: float, model: str, headers: dict[str, str], wrk: bool) -> dict:
    """A JSON point at concurrency 64, with the CPU ticks of the TRACKED process trees and of the
    generator around it (turned into ms per request by cpu_per_request)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    ticks = {pid: tree_ticks(pid) for pid in TRACKED}
    result = load(port, 64, False, duration, model, headers, wrk)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result["_ticks"] = {pid: tree_ticks(pid) - ticks[pid] for pid in TRACKED}
    result["_generator_s"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return result


TRACKED: list[int] = []  # the pids timed() follows (set in main)
CPU_PARTS = ("server", "mock", "generator")


def cpu_per_request(point: dict, server: int | None, mock: int) -> dict[str, float]:
    """ms of CPU per request answered: the server's tree, the mock's, the generator's (when it
    ran as a child process: wrk, or loadlib's generator)."""
    answered = max(1, point["requests"])
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
    ticks = point.pop("_ticks")
    return {
        "server": ticks[server] * tick_ms / answered if server is not None else 0.0,
        "mock": ticks.get(mock, 0) * tick_ms / answered,
        "generator": point.pop("_generator_s") * 1000 / answered,
    }


def report(rows: list, notes: list[str], args: argparse.Namespace, load_before: tuple[float, ...]) -> None:
    base = {(stream, c): result for name, stream, c, result in rows if name == "mock directly"}
    print(
        f"{cpu_model()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {args.duration:g} s per point, "
        f"r42 {'with a gateway key' if args.auth else '--no-auth'}, mock upstream: {args.upstream}, "
        f"load generator: {args.load} (streams: Python), "
        f"load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after"
    )
    if not rows:
        return
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


def report_rounds(rounds: list[dict[str, dict]], args: argparse.Namespace) -> None:
    """Each point's req/s in every round and its median; the ratios of the medians; CPU per request."""
    print(f"\n--workers {args.workers} against one process, concurrency 64, JSON, {len(rounds)} rounds (req/s):")
    for name in rounds[0]:
        values = [r[name]["rps"] for r in rounds]
        errors = sum(r[name].get("errors", 0) for r in rounds)
        each = "  ".join(f"{v:>8.1f}" if name == "load average" else f"{v:>8.0f}" for v in values)
        tail = f"  errors {errors}" if errors else ""
        print(f"  {name:<24} median {statistics.median(values):>8.1f}   rounds: {each}{tail}")
    for kind in ("routed", "direct"):
        one = statistics.median(r[f"1 process {kind}"]["rps"] for r in rounds)
        many = statistics.median(r[f"--workers {args.workers} {kind}"]["rps"] for r in rounds)
        paired = [r[f"--workers {args.workers} {kind}"]["rps"] / max(r[f"1 process {kind}"]["rps"], 1) for r in rounds]
        each = " ".join(f"{x:.2f}" for x in paired)
        print(
            f"  {kind}: {many:.0f} / {one:.0f} req/s = {many / one:.2f}x"
            f" (each round's own ratio: {each}; median {statistics.median(paired):.2f}x)"
        )
    print("CPU per request, ms (medians; server = its whole process tree):")
    for name in rounds[0]:
        if name == "load average":
            continue
        cpu = {part: statistics.median(r[name]["cpu"][part] for r in rounds) for part in CPU_PARTS}
        total, cores = sum(cpu.values()), os.cpu_count() or 1
        print(
            f"  {name:<24} server {cpu['server']:.3f}  mock {cpu['mock']:.3f}  generator {cpu['generator']:.3f}"
            f"  = {total:.3f} ms: {cores} idle cores carry at most {1000 * cores / total:,.0f} req/s"
        )


if __name__ == "__main__":
    main()
