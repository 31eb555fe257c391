"""Load time and per-prompt latency of the scorers, and `echo hi | r42 score` against `python -c pass`,
all measured in one run on one machine.

    python benchmarks/bench_scorer.py [N]

Prompts: N rows (default 2000) of data/routing (MMLU questions, Chatbot Arena prompts, competition
maths, code tracing), mixed. Per-prompt latency is in process, after the scorer is loaded.
Load time is the first get_scorer() of a fresh process (imports + weights), median of 5 processes.
CLI start-up: median wall time of 15 runs each of `python -c pass` and `echo hi | r42 score`
(the default scorer), interleaved so that both see the same machine load. Worst-case inputs: the
default scorer on 200,000-character prompts made of one piece repeated (blank lines, unclosed Markdown
stars, option markers, ...: shapes that make a careless regular expression quadratic), median of 5
each, against 200,000 characters of the same data's prose in the same run. The package is compiled to
bytecode first (`python -m compileall r42`), as `pip install` does: in a checkout with
PYTHONDONTWRITEBYTECODE set, every run would otherwise compile r42's sources again (~35 ms here).
"""

from __future__ import annotations

import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from r42.scoring import DEFAULT_SCORER, get_scorer, prompt_of  # noqa: E402

NAMES = ("length", "random", "heuristic", "trained")
FILES = (
    "arena_prompts_rated.jsonl",
    "mmlu_gpt4_vs_mixtral.jsonl",
    "zeroeval_math_l5_gpt35_vs_gpt4turbo.jsonl",
    "zeroeval_crux_mixtral_vs_gpt4turbo.jsonl",
)
LOAD = "import time, r42.scoring as s; t = time.perf_counter(); s.get_scorer({name!r}); print(time.perf_counter() - t)"
CLI_RUNS = 15
WORST_CHARS = 200_000
# one piece repeated to WORST_CHARS: blank lines (`^\s*` in a multi-line pattern tried every run of them to its
# end: 20,000 of them took 5 s before stop 29), unclosed markers, labels and numbers
WORST_PIECES = {
    "blank lines": "\n",
    "blank lines with spaces": " \n",
    "unclosed stars": "*a ",
    "unclosed underscores": "__a ",
    "option lines": "A. x\n",
    "numbered lines": "1. ",
    "unclosed tags": "<a ",
    "word slashes": "ab/",
    "numbers": "1 ",
    "phone-like numbers": "+1 555 ",
}


def prompts(n: int) -> list:
    texts = []
    for name in FILES:
        for line in (ROOT / "data/routing" / name).read_bytes().split(b"\n"):
            if line.strip():
                texts.append(orjson.loads(line)["prompt"])
    step = max(1, len(texts) // n)
    return [prompt_of([{"role": "user", "content": t}]) for t in texts[::step][:n]]


def load_ms(name: str) -> float:
    runs = [
        float(
            subprocess.run(
                [sys.executable, "-c", LOAD.format(name=name)], capture_output=True, text=True, check=True, cwd=ROOT
            ).stdout
        )
        for _ in range(5)
    ]
    return 1000 * statistics.median(runs)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def wall_ms(argv: list[str], stdin: bytes) -> float:
    start = time.perf_counter()
    subprocess.run(argv, input=stdin, capture_output=True, check=True, cwd=ROOT)
    return 1000 * (time.perf_counter() - start)


def cli_startup() -> tuple[float, float]:
    """Median ms of `python -c pass` and of `echo hi | r42 score`, runs interleaved."""
    r42 = Path(sys.executable).parent / "r42"
    base, score = [], []
    for _ in range(CLI_RUNS):
        base.append(wall_ms([sys.executable, "-c", "pass"], b""))
        score.append(wall_ms([str(r42), "score"], b"hi\n"))
    return statistics.median(base), statistics.median(score)


def median_ms(scorer, prompt, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        scorer.estimate(prompt)
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def worst_cases(sample: list) -> None:
    """The default scorer on WORST_PIECES repeated, against prose of the same length."""
    scorer = get_scorer(DEFAULT_SCORER)
    prose = "\n\n".join(p.last_user for p in sample)
    prose = (prose * (WORST_CHARS // max(1, len(prose)) + 1))[:WORST_CHARS]
    base = median_ms(scorer, prompt_of([{"role": "user", "content": prose}]))
    print(f"{WORST_CHARS:,}-character prompts ({DEFAULT_SCORER}, median of 5): prose {base:.2f} ms")
    for name, piece in WORST_PIECES.items():
        text = (piece * (WORST_CHARS // len(piece) + 1))[:WORST_CHARS]
        ms = median_ms(scorer, prompt_of([{"role": "user", "content": text}]))
        print(f"  {name:<24} {ms:>8.2f} ms = {ms / base:.2f}x prose")


def compile_package() -> None:
    """Write r42's .pyc files (__pycache__, ignored by git), as an installed r42 has them."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "r42")], check=True, capture_output=True)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    compile_package()
    sample = prompts(n)
    chars = sorted(p.chars for p in sample)
    print(f"CPU: {cpu_model()}, Python {platform.python_version()}")
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
        print(
            f"{name:<10} {load_ms(name):>8.1f} {statistics.median(times):>10.3f} {times[int(len(times) * 0.99)]:>8.3f}"
        )
    worst_cases(sample)
    base, score = cli_startup()
    print(
        f"`python -c pass` {base:.1f} ms; `echo hi | r42 score` ({DEFAULT_SCORER}) {score:.1f} ms "
        f"= {score / base:.2f}x (medians of {CLI_RUNS}, interleaved)"
    )


if __name__ == "__main__":
    main()
