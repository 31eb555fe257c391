"""The training script's pieces on small data made here: item-response fit, calibration metrics, folds."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("sklearn")  # the script imports it at the top (pip install -e '.[train]')

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def train():
    spec = importlib.util.spec_from_file_location("train_scorer", ROOT / "scripts/train_scorer.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_scorer"] = module
    spec.loader.exec_module(module)
    return module


def test_rasch_recovers_the_order_of_abilities_and_difficulties(train) -> None:
    rng = np.random.default_rng(1)
    ability = np.linspace(-2, 2, 30)
    difficulty = np.linspace(-2.5, 2.5, 200)
    p = 1 / (1 + np.exp(-(ability[None, :] - difficulty[:, None])))
    solved = (rng.random(p.shape) < p).astype(float)
    fitted_ability, fitted_difficulty = train.rasch(solved, np.ones_like(solved))
    assert np.corrcoef(fitted_ability, ability)[0, 1] > 0.95
    assert np.corrcoef(fitted_difficulty, difficulty)[0, 1] > 0.9


def test_rasch_ignores_unobserved_cells(train) -> None:
    solved = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    observed = np.ones_like(solved)
    base = train.rasch(solved, observed)[1]
    flipped = solved.copy()
    flipped[0, 1] = 1.0  # a cell nobody observed must not move anything
    observed[0, 1] = 0.0
    assert np.allclose(train.rasch(solved, observed)[1], train.rasch(flipped, observed)[1])
    assert not np.allclose(train.rasch(solved, observed)[1], base)


def test_calibration_error_is_zero_when_rates_match_and_large_when_not(train) -> None:
    p = np.array([0.25] * 4 + [0.75] * 4)
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0], dtype=float)
    assert train.calibration(p, y)["ece"] == pytest.approx(0.0)
    assert train.calibration(p, 1 - y)["ece"] == pytest.approx(0.5)
    assert train.calibration(p, y)["brier"] == pytest.approx(0.1875)


def test_mmlu_subjects_fall_into_three_folds(train) -> None:
    assert train.mmlu_fold("college_physics") == "mmlu_stem"
    assert train.mmlu_fold("high_school_world_history") == "mmlu_humanities"
    assert train.mmlu_fold("marketing") == "mmlu_social_other"


def test_reliability_svg_draws_one_dot_per_bin(train) -> None:
    bins = [{"bin": 0, "n": 10, "mean_p": 0.05, "rate": 0.1}, {"bin": 5, "n": 3, "mean_p": 0.55, "rate": 0.4}]
    svg = train.reliability_svg(bins, "t")
    assert svg.startswith("<svg") and svg.count("<circle") == 2
