"""Time to first token: through `r42 ask` versus calling the same server directly, in one run.

    .venv/bin/python benchmarks/bench_ask_ttft.py                 # the fake OpenAI server (loopback)
    .venv/bin/python benchmarks/bench_ask_ttft.py --target local  # the built-in llama.cpp model
    .venv/bin/python benchmarks/bench_ask_ttft.py --runs 20

Three ways to the same first token, each timed from its own start to the first text delta:
- direct: an httpx streaming POST to {server}/chat/completions on one reused client (the floor);
- executor: r42's Executor.stream in this process (adapter, fallback bookkeeping; no start-up);
- r42 ask: `r42 ask --stream` as a subprocess, from spawn to the first delta event on stdout
  (Python start-up, imports, catalog, scoring and ranking included; --model skips ranking).
Medians (and min/max) in milliseconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPT = "What is the capital of France? Answer in one sentence."


DIRECT = httpx.Client(timeout=60)  # made once: the floor should not pay for client set-up


def direct(base_url: str, model: str) -> float:
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "stream": True, "max_tokens": 32}
    start = time.perf_counter()
    with DIRECT.stream("POST", base_url.rstrip("/") + "/chat/completions", json=body) as response:
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunk = orjson.loads(line[6:])
                if chunk.get("choices") and chunk["choices"][0]["delta"].get("content"):
                    return time.perf_counter() - start
    raise RuntimeError("no token")


def via_executor(model_id: str) -> float:
    from r42.catalog import load_catalog
    from r42.executor import Executor

    executor = Executor(load_catalog())
    start = time.perf_counter()
    for chunk in executor.stream({"messages": [{"role": "user", "content": PROMPT}], "max_tokens": 32}, [model_id]):
        if chunk.get("choices") and chunk["choices"][0]["delta"].get("content"):
            return time.perf_counter() - start
    raise RuntimeError("no token")


def via_cli(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "r42", "ask", "--stream", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert proc.stdin and proc.stdout
    proc.stdin.write(PROMPT.encode())
    proc.stdin.close()
    try:
        for line in proc.stdout:
            if b'"event":"delta"' in line:
                return time.perf_counter() - start
        raise RuntimeError("no token from r42 ask")
    finally:
        proc.kill()
        proc.wait()


def measure(name: str, fn: Callable[[], float], runs: int) -> dict[str, float]:
    fn()  # warm-up: connection set-up, the local model's first prompt, page cache
    times = [fn() * 1000 for _ in range(runs)]
    row = {"median": statistics.median(times), "min": min(times), "max": max(times)}
    print(
        f"{name:<34} median {row['median']:8.1f} ms   min {row['min']:8.1f}   max {row['max']:8.1f}   (n={runs})",
        flush=True,
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", choices=["fake", "local"], default="fake")
    parser.add_argument("--runs", type=int, default=10)
    options = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["PYTHONPATH"] = str(ROOT)
    env["OLLAMA_HOST"] = "127.0.0.1:9"  # keep a local Ollama out of the comparison
    fake = None
    if options.target == "fake":
        from tests.fakes import OpenAIFake

        fake = OpenAIFake(reply="Paris is the capital of France.").start()
        base_url, upstream, model_id = fake.base_url, "gpt-4o-mini", "openai/gpt-4o-mini"
        os.environ.update(OPENAI_API_KEY="sk-bench", OPENAI_BASE_URL=base_url)
        env.update(OPENAI_API_KEY="sk-bench", OPENAI_BASE_URL=base_url)
        cli_ranked = ["--cloud"]
    else:
        from r42 import localmodel

        base_url = (
            localmodel.ensure_server()
        )  # one server for all three ways; r42 ask below reuses it via R42_LOCAL_BASE_URL
        upstream, model_id = localmodel.MODEL_NAME, localmodel.MODEL_ID
        os.environ["R42_LOCAL_BASE_URL"] = base_url
        env["R42_LOCAL_BASE_URL"] = base_url
        cli_ranked = ["--local"]
    print(f"target {options.target}: {base_url}")
    try:
        rows = {
            "direct HTTP": measure("direct HTTP (httpx, streaming)", lambda: direct(base_url, upstream), options.runs),
            "executor": measure("r42 executor (in process)", lambda: via_executor(model_id), options.runs),
            "ask --model": measure(
                "r42 ask --stream --model (process)", lambda: via_cli(["--model", model_id], env), options.runs
            ),
            "ask ranked": measure(
                f"r42 ask --stream {cli_ranked[0]} (ranked)", lambda: via_cli(cli_ranked, env), options.runs
            ),
        }
        floor = rows["direct HTTP"]["median"]
        print(
            f"overhead over direct (medians): executor {rows['executor']['median'] - floor:+.1f} ms, "
            f"ask --model {rows['ask --model']['median'] - floor:+.1f} ms, "
            f"ask ranked {rows['ask ranked']['median'] - floor:+.1f} ms"
        )
    finally:
        if fake is not None:
            fake.stop()
        if options.target == "local":
            from r42 import localmodel

            localmodel.stop_server()


if __name__ == "__main__":
    main()
