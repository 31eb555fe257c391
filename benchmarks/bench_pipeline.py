"""Latency of `score` and `rank` in-process, and the cold start of `echo hi | r42 score` next to
`python -c pass`, all measured in the same run.

    python benchmarks/bench_pipeline.py [--runs 2000] [--cold 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

PROMPTS = [
    "hi",
    "What is the capital of France?",
    "Prove that the square root of 2 is irrational",
    (
        "Refactor this auth module so it never logs passwords:\n```python\ndef login(user, password):\n"
        "    log.info('login %s %s', user, password)\n    return db.check(user, password)\n```"
    ),
    "Summarize the following email in three bullet points: Hi team, the launch moves to Thursday because the "
    "payment provider needs another day to certify our integration. Marketing keeps the Monday announcement. " * 3,
    "Design a distributed, lock-free concurrent queue in Rust that is thread-safe and handles all edge cases. "
    "Provide a formal proof of linearizability and benchmarks against crossbeam.",
]


def agent_request(turn: int) -> dict:
    """What a coding agent sends: a long system prompt, 40 earlier turns, 15 tools and a new
    question (`turn` varies the question, as each turn of a session does); ~44 KB of JSON."""
    messages = [
        {
            "role": "system",
            "content": (
                "You are an interactive CLI tool that helps users with software engineering tasks. "
                "Use the tools available. "
            )
            * 300,
        }
    ]
    for i in range(20):
        messages.append(
            {
                "role": "user",
                "content": f"Please fix the bug in src/module_{i}.py where parse_config() raises KeyError "
                "when the key is missing. def parse_config(d): return d['x'] + 1",
            }
        )
        messages.append(
            {
                "role": "assistant",
                "content": "I'll fix it. ```python\ndef parse_config(d):\n    return d.get('x', 0) + 1\n```",
            }
        )
    messages.append({"role": "user", "content": f"Now write unit tests for it with pytest, covering edge case {turn}."})
    tools = [
        {
            "type": "function",
            "function": {
                "name": f"tool{i}",
                "description": "d" * 200,
                "parameters": {"type": "object", "properties": {"a": {"type": "string"}}},
            },
        }
        for i in range(15)
    ]
    return {"messages": messages, "tools": tools}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(func, runs: int) -> list[float]:
    samples = []
    for index in range(runs):
        start = time.perf_counter_ns()
        func(index)
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return samples


def cold_start(command: list[str], runs: int, stdin: bytes, env: dict[str, str]) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        subprocess.run(command, input=stdin, capture_output=True, check=True, env=env)
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return samples


def busy_board(catalog):
    """A health board as a busy gateway has it: 40 models with outcomes, two providers and three
    models with their circuit open (two small providers: the same work is left to rank; it reads
    the View, cached for a second)."""
    from r42 import clock
    from r42.health import Board, Outcome, Rules

    board = Board(Rules(failures=3, cooldown=3600.0))
    now = clock.now()
    by_provider: dict[str, list] = {}
    for model in catalog.models:
        by_provider.setdefault(model.provider, []).append(model)
    providers = sorted(by_provider, key=lambda p: -len(by_provider[p]))
    seen = [m for p in providers[2:12] for m in by_provider[p][:4]][:40]
    for model in seen:
        for ok in (True, True, True):
            board.record(Outcome(now, model.provider, model.id, ok, 200, "ok", 400.0, 150.0))
    for model in (by_provider[p][0] for p in providers[-2:]):  # the provider's circuit opens too
        for _ in range(3):
            board.record(Outcome(now, model.provider, model.id, False, 503, "overloaded", 50.0))
    for bad, good in ((seen[0], seen[1]), (seen[4], seen[5]), (seen[8], seen[9])):  # only the model's opens
        for _ in range(3):
            board.record(Outcome(now, bad.provider, bad.id, False, 503, "overloaded", 50.0))
            board.record(Outcome(now, good.provider, good.id, True, 200, "ok", 400.0, 150.0))
    return board


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--cold", type=int, default=20)
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="r42-bench-")
    os.environ["R42_HOME"] = home
    from r42.availability import Availability
    from r42.config import load_settings
    from r42.routing import Router
    from r42.ranking import Constraints, rank
    from r42.scoring import score_document

    settings = load_settings()
    docs = [{"messages": [{"role": "user", "content": p}]} for p in PROMPTS]
    score_document(docs[0], settings)  # warm the scorer
    score_ms = timed(lambda i: score_document(docs[i % len(docs)], settings), args.runs)
    agents = [agent_request(i) for i in range(max(50, args.runs // 10))]
    agent_ms = timed(lambda i: score_document(agents[i], settings), len(agents))

    router = Router.from_settings(settings)
    scores = [score_document(d, settings) for d in docs]
    everyone = lambda provider: Availability(True, "bench")  # noqa: E731 - rank all models
    n_models = len(router.catalog.models)
    rank_ms = timed(
        lambda i: rank(router.catalog, scores[i % len(scores)], Constraints(), everyone), max(200, args.runs // 5)
    )
    board = busy_board(router.catalog)
    rank_health_ms = timed(
        lambda i: rank(router.catalog, scores[i % len(scores)], Constraints(health=board.view()), everyone),
        max(200, args.runs // 5),
    )

    env = {**os.environ, "R42_HOME": home}
    python_ms = cold_start([sys.executable, "-c", "pass"], args.cold, b"", env)
    r42 = [sys.executable, "-m", "r42"]
    score_cold = cold_start([*r42, "score"], args.cold, b"hi", env)
    rank_cold = cold_start([*r42, "rank", "--include-unavailable"], args.cold, b"hi", env)

    rows = [
        ("score, in-process (6 prompts)", score_ms),
        ("score, a 44 KB agent request, new last turn", agent_ms),
        (f"rank {n_models} models, in-process", rank_ms),
        ("  the same with health (2+3 open, 40 seen)", rank_health_ms),
        ("python -c pass", python_ms),
        ("echo hi | r42 score", score_cold),
        ("echo hi | r42 rank --include-unavailable", rank_cold),
    ]
    print(f"{'what':44} {'median ms':>10} {'p99 ms':>10} {'runs':>6}")
    for name, samples in rows:
        print(f"{name:44} {statistics.median(samples):10.3f} {percentile(samples, 0.99):10.3f} {len(samples):6d}")
    ratio = statistics.median(score_cold) / statistics.median(python_ms)
    print(f"\ncold start of r42 score / python -c pass: {ratio:.2f}x (medians, same run)")
    print(f"rank per model: {statistics.median(rank_ms) / n_models * 1000:.2f} µs")


if __name__ == "__main__":
    main()
