"""The trained scorer: reproduces its training run, stays in range, is deterministic, loads lazily."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from r42.config import DOMAINS
from r42.scoring import normalise_domains, prompt_of
from r42.scoring.heuristic import HeuristicScorer
from r42.scoring.trained import WEIGHTS, TrainedScorer, percentile_of

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def scorer() -> TrainedScorer:
    return TrainedScorer()


def _prompt(text: str):
    return prompt_of([{"role": "user", "content": text}])


def test_weights_are_small() -> None:
    assert WEIGHTS.stat().st_size < 5_000_000


def test_trained_against_the_current_heuristic(scorer: TrainedScorer) -> None:
    # The heuristic's output is one of the trees' inputs: change it, and retrain
    # (python scripts/train_scorer.py).
    assert scorer.meta["heuristic_version"] == HeuristicScorer.version


def test_pure_python_reproduces_the_training_run(scorer: TrainedScorer) -> None:
    """The weights hold scikit-learn's own predictions for 50 training rows; the pure-Python
    scorer must give the same numbers."""
    wanted = dict(zip(scorer.meta["check"]["ids"], scorer.meta["check"]["p"]))
    found = 0
    for line in (ROOT / "data/routing/mmlu_gpt4_vs_mixtral.jsonl").read_bytes().split(b"\n"):
        if not line.strip():
            continue
        row = orjson.loads(line)
        if row["id"] in wanted:
            found += 1
            assert scorer.estimate(_prompt(row["prompt"])).complexity == pytest.approx(wanted[row["id"]], abs=1e-5)
        if found == len(wanted):
            break
    assert found == len(wanted)


@given(st.text(max_size=400))
@settings(max_examples=60, deadline=None)
def test_scores_in_range_and_domains_sum_to_one(text: str) -> None:
    estimate = _SCORER.estimate(_prompt(text))
    assert 0.0 <= estimate.complexity <= 1.0
    domains = normalise_domains(estimate.domains)
    assert set(domains) == set(DOMAINS)
    assert sum(domains.values()) == pytest.approx(1.0)


_SCORER = TrainedScorer()


def test_deterministic_across_instances() -> None:
    text = "Write a Rust function that parses an ISO-8601 date and handles leap seconds."
    assert TrainedScorer().estimate(_prompt(text)).complexity == TrainedScorer().estimate(_prompt(text)).complexity


def test_deterministic_across_processes() -> None:
    code = ("from r42.scoring import prompt_of; from r42.scoring.trained import TrainedScorer;"
            "print(repr(TrainedScorer().estimate(prompt_of([{'role':'user','content':'Prove that sqrt 2 is irrational'}])).complexity))")
    outputs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout for _ in range(2)}
    assert len(outputs) == 1


def test_percentile_of_is_monotonic_and_bounded() -> None:
    table = [0.1 * i for i in range(11)]
    values = [percentile_of(p, table) for p in (-1.0, 0.05, 0.1, 0.55, 0.99, 2.0)]
    assert values == sorted(values)
    assert values[0] == 0.0 and values[-1] == 1.0
    assert percentile_of(0.55, table) == pytest.approx(0.55)


def test_weights_load_only_when_the_trained_scorer_is_used() -> None:
    code = "import sys, r42.scoring; r42.scoring.get_scorer('heuristic'); print('r42.scoring.trained' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_bad_weights_file_is_a_config_error(tmp_path) -> None:
    from r42.errors import ConfigError

    bad = tmp_path / "w.json"
    bad.write_text("{")
    with pytest.raises(ConfigError):
        TrainedScorer(bad)
