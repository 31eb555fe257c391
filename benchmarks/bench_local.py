"""The built-in local model (SmolLM2-135M-Instruct on xllamacpp's llama.cpp server), measured directly
over HTTP: server start-up, time to first token, generation speed and memory. Medians over a few runs.

    python benchmarks/bench_local.py [--starts 3] [--runs 5] [--tokens 128] [--json]

Needs the local extra (.ci/install-local.sh). Other work on the machine skews every figure (llama.cpp
spins its threads, so a busy CPU hurts it a lot): the load average is printed with the results.

The functions ``measure_start``, ``measure_ttft`` and ``measure_speed`` take a base URL so that a
comparison "through r42 ask" can be added next to the direct figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from r42 import localmodel

QUESTION = "What is the capital of France? Answer in one sentence."
STORY = "Write a long story about a robot who learns to paint."


def median(samples: list[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


def rss_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB, from /proc (Linux)."""
    values = {"VmRSS": float("nan"), "VmHWM": float("nan")}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in values:
                values[key] = int(rest.split()[0]) / 1024
    except OSError:
        pass
    return values["VmRSS"], values["VmHWM"]


def measure_start(runs: int) -> list[float]:
    """Seconds from ensure_server() on a stopped server to a healthy one (child start, model load)."""
    samples = []
    for _ in range(runs):
        localmodel.stop_server()
        start = time.perf_counter()
        localmodel.ensure_server()
        samples.append(time.perf_counter() - start)
    return samples


def stream_once(client: httpx.Client, base_url: str, body: dict[str, Any]) -> dict[str, Any]:
    """One streamed chat completion: time to first content token, total time, tokens, server timings."""
    start = time.perf_counter()
    first: float | None = None
    usage: dict[str, Any] = {}
    timings: dict[str, Any] = {}
    text = []
    # llama.cpp's server closes the connection after a streamed response although it announces
    # keep-alive; a request sent on that pooled connection right away fails. Ask for the close.
    headers = {"Connection": "close"}
    with client.stream("POST", base_url + "/chat/completions", json=body, headers=headers) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = orjson.loads(line[6:])
            for choice in chunk.get("choices") or []:
                content = (choice.get("delta") or {}).get("content")
                if content:
                    if first is None:
                        first = time.perf_counter()
                    text.append(content)
            usage = chunk.get("usage") or usage
            timings = chunk.get("timings") or timings
    end = time.perf_counter()
    return {
        "ttft": (first if first is not None else end) - start,
        "total": end - start,
        "first_to_last": end - (first if first is not None else end),
        "completion_tokens": int(usage.get("completion_tokens") or 0),
        "timings": timings,
        "text": "".join(text),
    }


def measure_ttft(client: httpx.Client, base_url: str, runs: int) -> list[dict[str, Any]]:
    """The one-sentence question, streamed, the prompt cache off so every run evaluates the prompt."""
    body = {
        "model": localmodel.MODEL_NAME,
        "messages": [{"role": "user", "content": QUESTION}],
        "max_tokens": 64,
        "stream": True,
        "stream_options": {"include_usage": True},
        "cache_prompt": False,
    }
    return [stream_once(client, base_url, body) for _ in range(runs)]


def measure_speed(client: httpx.Client, base_url: str, runs: int, tokens: int) -> list[dict[str, Any]]:
    """A long generation of exactly `tokens` tokens (ignore_eos), streamed."""
    body = {
        "model": localmodel.MODEL_NAME,
        "messages": [{"role": "user", "content": STORY}],
        "max_tokens": tokens,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
        "cache_prompt": False,
    }
    return [stream_once(client, base_url, body) for _ in range(runs)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=3, help="cold server starts")
    parser.add_argument("--runs", type=int, default=5, help="requests per measurement")
    parser.add_argument("--tokens", type=int, default=128, help="tokens generated for the speed runs")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    if not localmodel.installed():
        sys.exit("bench_local: the local extra is not installed (see .ci/install-local.sh)")
    load_before = os.getloadavg()[0]
    starts = measure_start(args.starts)
    base_url = localmodel.ensure_server()
    pid = localmodel.server_pid()
    assert pid is not None
    idle_rss, _ = rss_mib(pid)
    with httpx.Client(timeout=httpx.Timeout(600.0, connect=10.0), trust_env=False) as client:
        stream_once(
            client, base_url, {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "stream": True}
        )
        ttft = measure_ttft(client, base_url, args.runs)
        speed = measure_speed(client, base_url, args.runs, args.tokens)
    rss, peak = rss_mib(pid)
    localmodel.stop_server()

    client_tps = [
        (run["completion_tokens"] - 1) / run["first_to_last"]
        for run in speed
        if run["completion_tokens"] > 1 and run["first_to_last"] > 0
    ]
    server_tps = [float(run["timings"].get("predicted_per_second") or 0) for run in speed if run["timings"]]
    prompt_tps = [float(run["timings"].get("prompt_per_second") or 0) for run in ttft if run["timings"]]
    load = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
    figures: dict[str, Any] = {
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average_1m": load,
        "server_start_s": round(median(starts), 3),
        "ttft_ms": round(median([run["ttft"] for run in ttft]) * 1000, 1),
        "answer_total_ms": round(median([run["total"] for run in ttft]) * 1000, 1),
        "prompt_tokens_per_s": round(median(prompt_tps), 1),
        "tokens_per_s_client": round(median(client_tps), 1),
        "tokens_per_s_server": round(median(server_tps), 1),
        "rss_idle_mib": round(idle_rss, 1),
        "rss_after_mib": round(rss, 1),
        "rss_peak_mib": round(peak, 1),
        "sample_answer": ttft[0]["text"] if ttft else "",
    }
    if args.json:
        print(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())
        return
    from tabulate import tabulate

    rows = [
        ("server start (ensure_server, cold)", f"{figures['server_start_s']:.2f} s", f"median of {args.starts}"),
        (
            "time to first token (direct HTTP)",
            f"{figures['ttft_ms']:.0f} ms",
            f"median of {args.runs}, prompt cache off",
        ),
        ("one-sentence answer, total", f"{figures['answer_total_ms']:.0f} ms", "same runs"),
        ("prompt evaluation", f"{figures['prompt_tokens_per_s']:.0f} tokens/s", "server timings"),
        (
            "generation (client clock)",
            f"{figures['tokens_per_s_client']:.1f} tokens/s",
            f"{args.tokens} tokens, median of {args.runs}",
        ),
        ("generation (server timings)", f"{figures['tokens_per_s_server']:.1f} tokens/s", "same runs"),
        ("server RSS idle / after / peak", f"{idle_rss:.0f} / {rss:.0f} / {peak:.0f} MiB", "/proc/PID/status"),
    ]
    print(tabulate(rows, headers=["built-in local model", "value", "how"]))
    print(
        f"\n{figures['cpus']} CPUs, load average {load['before']} before, {load['after']} after; "
        f"answer: {figures['sample_answer']!r}"
    )


if __name__ == "__main__":
    main()
