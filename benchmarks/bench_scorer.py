"""Load time and per-prompt latency of the scorers, measured in one run.

    python benchmarks/bench_scorer.py [N]

Prompts: N rows (default 2000) of data/routing (MMLU questions and Chatbot Arena prompts, mixed).
Load time is the first get_scorer() of a fresh process (imports + weights), median of 5 processes.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from r42.scoring import get_scorer, prompt_of  # noqa: E402

NAMES = ("length", "random", "heuristic", "trained")
LOAD = "import time, r42.scoring as s; t = time.perf_counter(); s.get_scorer({name!r}); print(time.perf_counter() - t)"


def prompts(n: int) -> list:
    texts = []
    for name in ("arena_prompts_rated.jsonl", "mmlu_gpt4_vs_mixtral.jsonl"):
        for line in (ROOT / "data/routing" / name).read_bytes().split(b"\n"):
            if line.strip():
                texts.append(orjson.loads(line)["prompt"])
    step = max(1, len(texts) // n)
    return [prompt_of([{"role": "user", "content": t}]) for t in texts[::step][:n]]


def load_ms(name: str) -> float:
    runs = [float(subprocess.run([sys.executable, "-c", LOAD.format(name=name)], capture_output=True, text=True,
                                 check=True, cwd=ROOT).stdout) for _ in range(5)]
    return 1000 * statistics.median(runs)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    sample = prompts(n)
    chars = sorted(p.chars for p in sample)
    print(f"{len(sample)} prompts, median {chars[len(chars) // 2]} chars, p99 {chars[int(len(chars) * 0.99)]} chars")
    print(f"{'scorer':<10} {'load ms':>8} {'median ms':>10} {'p99 ms':>8}")
    for name in NAMES:
        scorer = get_scorer(name)
        times = []
        for prompt in sample:
            start = time.perf_counter()
            scorer.estimate(prompt)
            times.append(1000 * (time.perf_counter() - start))
        times.sort()
        print(f"{name:<10} {load_ms(name):>8.1f} {statistics.median(times):>10.3f} {times[int(len(times) * 0.99)]:>8.3f}")


if __name__ == "__main__":
    main()
