"""The training code's pieces (r42/scoring/training.py) on small data made here: item-response fit,
calibration metrics, folds; and `r42 eval --cv` on a small subset of the real training data."""

from __future__ import annotations

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("sklearn")  # the `train` extra (pip install -e '.[train]')


@pytest.fixture(scope="module")
def train():
    from r42.scoring import training

    return training


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


def test_strong_side_is_every_model_near_the_best(train) -> None:
    solved = [{"best": 1.0, "near": 0.0, "weak": 1.0}] + [{"best": 1.0, "near": 1.0, "weak": 1.0}] * 3
    solved += [{"best": 1.0, "near": 1.0, "weak": 0.0}] * 6  # success rates: best 1.0, near 0.9, weak 0.4
    assert train.strong_models(solved) == ["best", "near"]


def test_cheap_vs_strong_counts_the_pairs_where_only_the_strong_side_solves(train) -> None:
    cheap_a, cheap_b = "Qwen2.5-7B-Instruct", "gemma-2-9b-it"
    solved = [
        {cheap_a: 0.0, cheap_b: 1.0, "top": 1.0, "mid": 0.0},  # one cheap fails, the strong solves: 1 pair of 2
        {cheap_a: 0.0, cheap_b: 0.0, "top": 0.0, "mid": 1.0},  # the strong side fails too: nothing to gain
        {"top": 1.0},  # no cheap model graded: no label
    ]
    labels = train.cheap_vs_strong(["p1", "p2", "p3"], solved, ["top"])
    assert labels == {"p1": (0.5, 1.0, 0.5), "p2": (0.0, 0.0, 0.0)}


def test_reliability_svg_draws_one_dot_per_bin(train) -> None:
    bins = [{"bin": 0, "n": 10, "mean_p": 0.05, "rate": 0.1}, {"bin": 5, "n": 3, "mean_p": 0.55, "rate": 0.4}]
    svg = train.reliability_svg(bins, "t")
    assert svg.startswith("<svg") and svg.count("<circle") == 2


def test_word_runs_find_a_near_copy_but_not_a_shared_phrase(train) -> None:
    original = "Write a short story about a lighthouse keeper who finds a message in a bottle on the shore."
    edited = "please write a short story about a lighthouse keeper who finds a message in a bottle"
    other = "Write a short story about a dragon who learns to bake bread in a small village."
    assert train.word_runs(original) & train.word_runs(edited)
    assert not train.word_runs(original) & train.word_runs(other)  # "write a short story about a" is 6 words


def test_rated_prompts_are_trained_on_but_never_held_out_nor_copies_of_arena_bench(train) -> None:
    items, _ = train.load_items(soft=False)
    rated = [i for i in items if i["fold"] == train.RATED_FOLD]
    bench = set().union(*(train.word_runs(i["prompt"]) for i in items if i["fold"] == "arena_bench"))
    raw = train.read_jsonl(train.DATA / train.RATED)
    assert 0 < len(rated) < len(raw)  # the copies and near-copies of Arena-bench prompts are left out
    assert not any(train.word_runs(i["prompt"]) & bench for i in rated)
    rating = {r["id"]: r["mean_rating"] for r in raw}
    assert all(i["cheap"] == float(rating[i["id"]] <= train.RATED_HARD_AT_MOST) for i in rated)
    assert {i["cheap"] for i in rated} == {0.0, 1.0}
    folds = train.held_out_folds(np.array([i["fold"] for i in items]))
    assert train.RATED_FOLD not in folds and "easy" not in folds and "arena_bench" in folds


def test_pooled_candidates_do_not_read_the_rated_prompts(train) -> None:
    # without source indicators a rating's label would be read as a rate: fit() leaves those rows out
    items, _ = train.load_items(soft=False, rows_per_source=80)
    feats = train.features(items, with_wordllama=False, with_ngrams=False)
    every = np.arange(len(items))
    others = np.array([k for k, i in enumerate(items) if i["fold"] != train.RATED_FOLD])
    assert len(others) < len(every)
    with_rated = train.fit(feats, items, "stats", every, "hard")[0].coef_
    without = train.fit(feats, items, "stats", others, "hard")[0].coef_
    assert np.allclose(with_rated, without)
    # the within-source model does read them (their open requests): its weights move
    kinds_seen = train.fit_within(feats, items, every, "cheap", True)[0].coef
    assert not np.allclose(kinds_seen, train.fit_within(feats, items, others, "cheap", True)[0].coef)


# --- r42 eval --cv -------------------------------------------------------------------------------

WITHIN_MODELS = (  # the candidates `r42 eval --cv` compares
    "within-source stats",
    "within-source stats (5 kinds)",
    "within-source stats (cheap-vs-strong labels)",
    "within-source stats (5 kinds; cheap-vs-strong labels)",
)
FOLDS = {"arena_bench", "crux", "math_l5", "mmlu_humanities", "mmlu_social_other", "mmlu_stem"}


def _eval(args: list[str], tty: bool = False):
    import io

    from click.testing import CliRunner

    from r42.cli import cli
    from r42.terminal import Terminal

    out = io.BytesIO()
    term = Terminal(stdin=io.BytesIO(b""), stdout=out, stderr=io.StringIO(), stdout_isatty=tty)
    result = CliRunner().invoke(cli, args, obj=term)
    return result, out.getvalue()


def test_eval_cv_on_a_subset_gives_every_fold_against_the_baselines_in_json() -> None:
    import orjson

    result, out = _eval(["eval", "--cv", "--cv-rows", "120"])
    assert result.exit_code == 0, result.output
    report = orjson.loads(out)
    assert {row["fold"] for row in report["apgr_by_fold"]} == FOLDS
    for row in report["apgr_by_fold"]:
        assert 0 < row["rows"] <= 120
        for name in ("random", "length", "heuristic", *WITHIN_MODELS):
            assert 0.0 <= row[name] <= 1.0
    assert set(report["apgr_mean"]) == {"random", "length", "heuristic", *WITHIN_MODELS}
    assert report["chosen"] == max(WITHIN_MODELS, key=lambda name: report["apgr_mean"][name])
    assert abs(report["apgr_mean"]["random"] - 0.5) < 0.03  # 100 seeds: chance is 0.5
    assert {c["fold"] for c in report["calibration_by_fold"]} == FOLDS
    # the many-model sources again, against their small open and best models' outcomes
    assert {row["fold"] for row in report["apgr_by_fold_cheap_vs_strong"]} == {"arena_bench", "crux", "math_l5"}
    seen = report["seen_kinds"]  # one stream of every source, trained on one half of each, scored on the other
    assert seen["rows"] == sum(row["rows"] for row in report["apgr_by_fold"])
    assert all(0.0 <= seen[name] <= 1.0 for name in (*WITHIN_MODELS, "kind prior only"))


def test_eval_cv_on_a_terminal_is_a_table() -> None:
    result, out = _eval(["eval", "--cv", "--cv-rows", "60"], tty=True)
    assert result.exit_code == 0, result.output
    text = out.decode()
    assert not text.startswith("{")
    assert "held-out source" in text and "mean of the folds" in text and "math_l5" in text and "Brier" in text


@pytest.mark.parametrize(
    "args", [["eval", "--cv", "x.jsonl"], ["eval", "--cv", "--scorer", "length"], ["eval", "--cv-rows", "100"]]
)
def test_eval_cv_bad_combinations_are_one_line_and_exit_2(args: list[str]) -> None:
    result, out = _eval(args)
    assert result.exit_code == 2
    assert out == b""
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("r42: error: ")


def test_eval_cv_without_the_train_extra_says_what_to_install(tmp_path) -> None:
    import subprocess
    import sys

    # A Python where numpy cannot be imported (as after a plain `pip install r42`): a None entry in
    # sys.modules makes `import numpy` raise ImportError; r42 runs unchanged.
    code = (
        "import sys; sys.modules['numpy'] = None; from r42.entry import main; "
        "sys.argv = ['r42', 'eval', '--cv']; main()"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "r42: error: --cv needs numpy and scikit-learn, which are not installed (pip install -e '.[train]')"
    ]


# --- the ability scale (r42/scoring/ability.py) ---------------------------------------------------


def test_model_key_matches_matrix_and_catalog_spellings(train) -> None:
    assert train.model_key("gpt-4-turbo-2024-04-09") == train.model_key("openai/gpt-4-turbo")
    assert train.model_key("Meta-Llama-3.1-70B-Instruct@hyperbolic") == train.model_key(
        "deepinfra/meta-llama/Meta-Llama-3.1-70B-Instruct"
    )
    assert train.model_key("claude-3-5-haiku-20241022") == train.model_key("anthropic/claude-3-5-haiku-20241022")
    assert train.model_key("gpt-4o-mini") != train.model_key("gpt-4o")


def test_shipped_ability_scale_is_what_the_training_code_writes(train) -> None:
    import json

    scale = train.ability_scale()
    assert json.dumps(scale, indent=1) + "\n" == train.SCALE_FILE.read_text(encoding="utf-8")
    line = scale["quality_to_ability"]
    assert line["models"] >= 20 and line["correlation"] > 0.8  # catalog quality does order the named models
    assert scale["reference"]["weak"] < scale["reference"]["strong"]
