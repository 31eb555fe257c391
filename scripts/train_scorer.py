"""Train the `trained` scorer and write its out-of-sample evaluation set.

    pip install -e '.[train]'          # numpy, scikit-learn
    python scripts/train_scorer.py     # about a minute on 2 cores; fixed seeds, same output each run

Reads data/routing/mmlu_gpt4_vs_mixtral.jsonl (see data/routing/NOTICE), leaves out
high_school_mathematics (its strong-model labels are broken: gpt-4 scores 3% there), and:

1. cross-validates grouped by MMLU subject (5 folds, no subject in both training and test) and
   writes every row with its out-of-fold score to data/eval/mmlu_cv.jsonl, so that
   `r42 eval data/eval/mmlu_cv.jsonl` reports the trained scorer out of sample as `trained-cv`;
2. fits on all rows and writes r42/scoring/weights/trained.json.

The target is "the strong model is right and the weak one wrong". The scorer's complexity blends
the learned probability's percentile among out-of-fold MMLU predictions (weight BLEND, chosen on
the out-of-fold scores) with the hand-built scorer's complexity, which keeps the scale of the
level cut points and the hand-built sense of chat prompts the MMLU data never shows. Features are computed by the
same functions the scorer runs (r42.scoring.trained), so training and use cannot drift apart.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from r42.scoring import prompt_of  # noqa: E402
from r42.scoring.heuristic import HeuristicScorer  # noqa: E402
from r42.scoring.trained import MAX_TEXT, hashed_counts, text_statistics  # noqa: E402

SEED = 0
BUCKETS = 2**17
FOLDS = 5
LEFT_OUT = {"high_school_mathematics"}
LINEAR_C = 1.0
BLEND = 0.6  # complexity = BLEND * percentile of the learned probability + (1 - BLEND) * heuristic complexity
TREES = {"max_iter": 150, "learning_rate": 0.05, "max_depth": 3, "random_state": SEED}
MMLU = ROOT / "data/routing/mmlu_gpt4_vs_mixtral.jsonl"
WEIGHTS = ROOT / "r42/scoring/weights/trained.json"
CV_OUT = ROOT / "data/eval/mmlu_cv.jsonl"

# The labelling rule of data/eval/mmlu_cv.jsonl's "domain": by MMLU subject. Mathematics and
# statistics subjects are "math"; formal logic and logical fallacies are "reasoning"; computer
# science subjects get no label (their questions mix reading code with facts about computing);
# every other subject is "knowledge" (factual and STEM/humanities questions).
MATH_SUBJECTS = {"abstract_algebra", "college_mathematics", "elementary_mathematics", "high_school_statistics"}
REASONING_SUBJECTS = {"formal_logic", "logical_fallacies"}
UNLABELLED_SUBJECTS = {"college_computer_science", "high_school_computer_science", "computer_security", "machine_learning"}


def domain_label(subject: str) -> str | None:
    if subject in MATH_SUBJECTS:
        return "math"
    if subject in REASONING_SUBJECTS:
        return "reasoning"
    if subject in UNLABELLED_SUBJECTS:
        return None
    return "knowledge"


def load_rows() -> list[dict]:
    rows = [json.loads(line) for line in MMLU.read_text(encoding="utf-8").split("\n") if line.strip()]
    return [r for r in rows if r["subject"] not in LEFT_OUT]


def features(rows: list[dict]) -> tuple[csr_matrix, np.ndarray, list[str]]:
    heuristic = HeuristicScorer()
    data: list[float] = []
    indices: list[int] = []
    indptr = [0]
    stats_rows = []
    for row in rows:
        prompt = prompt_of([{"role": "user", "content": row["prompt"]}])
        text = prompt.last_user[:MAX_TEXT]
        counts = hashed_counts(text, BUCKETS)
        indices.extend(counts)
        data.extend(counts.values())
        indptr.append(len(indices))
        stats_rows.append(text_statistics(text, heuristic.estimate(prompt)))
    names = list(stats_rows[0])
    dense = np.array([[s[n] for n in names] for s in stats_rows], dtype=float)
    return csr_matrix((data, indices, indptr), shape=(len(rows), BUCKETS)), dense, names


def fit(sparse: csr_matrix, dense: np.ndarray, y: np.ndarray) -> tuple[LogisticRegression, HistGradientBoostingClassifier]:
    linear = LogisticRegression(C=LINEAR_C, max_iter=3000).fit(sparse, y)
    trees = HistGradientBoostingClassifier(**TREES).fit(dense, y)
    return linear, trees


def predict(models, sparse: csr_matrix, dense: np.ndarray) -> np.ndarray:
    linear, trees = models
    return (linear.predict_proba(sparse)[:, 1] + trees.predict_proba(dense)[:, 1]) / 2.0


def export_trees(trees: HistGradientBoostingClassifier) -> tuple[float, list[list[list]]]:
    """sklearn's trees as nested lists: [feature, threshold, left, right, missing_left] or [leaf value]."""
    out = []
    for (predictor,) in trees._predictors:  # one predictor per iteration for a binary target
        nodes = []
        for node in predictor.nodes:
            if node["is_leaf"]:
                nodes.append([round(float(node["value"]), 7)])
            else:
                nodes.append([int(node["feature_idx"]), float(node["num_threshold"]), int(node["left"]),
                              int(node["right"]), bool(node["missing_go_to_left"])])
        out.append(nodes)
    return float(np.ravel(trees._baseline_prediction)[0]), out


def weights_of(models, names: list[str], meta: dict) -> dict:
    linear, trees = models
    baseline, exported = export_trees(trees)
    body = {
        "meta": meta,
        "linear": {"buckets": BUCKETS, "intercept": float(linear.intercept_[0]),
                   "coef": [round(float(c), 5) for c in linear.coef_[0]]},
        "trees": {"features": names, "baseline": baseline, "trees": exported},
    }
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:8]
    return {"version": f"1-{digest}", **body}


def percentile_table(predictions: np.ndarray) -> list[float]:
    """101 quantiles of out-of-fold predictions: maps a probability to its rank among MMLU prompts."""
    return [round(float(q), 7) for q in np.quantile(predictions, np.linspace(0, 1, 101))]


def blended(probabilities: np.ndarray, heuristic: np.ndarray, table: list[float]) -> np.ndarray:
    from r42.scoring.trained import percentile_of

    return np.array([BLEND * percentile_of(float(p), table) + (1 - BLEND) * h for p, h in zip(probabilities, heuristic)])


def cross_validate(rows, sparse, dense, y) -> np.ndarray:
    groups = [r["subject"] for r in rows]
    oof = np.zeros(len(rows))
    for train, test in GroupKFold(n_splits=FOLDS).split(dense, groups=groups):
        oof[test] = predict(fit(sparse[train], dense[train], y[train]), sparse[test], dense[test])
    return oof


def write_cv_set(rows: list[dict], oof: np.ndarray) -> None:
    CV_OUT.parent.mkdir(parents=True, exist_ok=True)
    with CV_OUT.open("w", encoding="utf-8") as out:
        for row, score in zip(rows, oof):
            record = {"id": row["id"], "prompt": row["prompt"], "strong": int(row["strong_correct"]),
                      "weak": int(row["weak_correct"]), "subject": row["subject"]}
            label = domain_label(row["subject"])
            if label:
                record["domain"] = label
            record["scores"] = {"trained-cv": round(float(score), 6)}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip-cv", action="store_true", help="do not rewrite data/eval/mmlu_cv.jsonl")
    args = parser.parse_args()
    started = time.time()
    rows = load_rows()
    y = np.array([r["strong_correct"] and not r["weak_correct"] for r in rows], dtype=int)
    sparse, dense, names = features(rows)
    print(f"{len(rows)} rows, {len(names)} statistics, features in {time.time() - started:.1f}s", file=sys.stderr)
    heuristic = dense[:, names.index("heur")]
    oof = cross_validate(rows, sparse, dense, y)
    table = percentile_table(oof)
    if not args.skip_cv:
        write_cv_set(rows, blended(oof, heuristic, table))
        print(f"wrote {CV_OUT.relative_to(ROOT)} ({time.time() - started:.1f}s)", file=sys.stderr)
    models = fit(sparse, dense, y)
    check = blended(predict(models, sparse[:50], dense[:50]), heuristic[:50], table)
    meta = {
        "trained_on": [str(MMLU.relative_to(ROOT))], "rows": len(rows), "left_out_subjects": sorted(LEFT_OUT),
        "target": "strong_correct and not weak_correct", "seed": SEED,
        "heuristic_version": HeuristicScorer.version,
        "check": {"ids": [r["id"] for r in rows[:50]], "p": [round(float(p), 6) for p in check]},
    }
    weights = weights_of(models, names, meta)
    weights["blend"] = {"weight": BLEND, "percentiles": table}
    WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    WEIGHTS.write_bytes(json.dumps(weights, separators=(",", ":")).encode())
    size = WEIGHTS.stat().st_size / 1e6
    print(f"wrote {WEIGHTS.relative_to(ROOT)} ({size:.1f} MB, {time.time() - started:.1f}s)", file=sys.stderr)


if __name__ == "__main__":
    main()
