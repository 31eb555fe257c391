"""Training and leave-one-source-out cross-validation of the `trained` scorer (needs the `train` extra).

    pip install -e '.[train]'          # numpy, scikit-learn (wordllama too, to compare embeddings)
    r42 eval --cv                      # the cross-validation table only: nothing is written
    python scripts/train_scorer.py     # the same, for every candidate, then the weights and reports

Only `r42 eval --cv` and scripts/train_scorer.py import this module: numpy and scikit-learn are
never loaded when r42 scores, ranks or serves. Reads data/routing (see data/routing/NOTICE) of the
checkout r42 runs from; never anything outside the repository.

Target: P(the cheap model fails where the strong one succeeds). Labels:
- MMLU (gpt-4 vs Mixtral): the pair's 0/1 outcome; high_school_mathematics left out (broken labels).
- MATH level 5, CRUXEval-O, Arena-bench: an item-response (Rasch) fit over the many-model matrices,
  P(model m solves p) = sigmoid(ability_m - difficulty_p); the soft label of p is then
  P(weak fails) * P(strong solves) for the source's weak/strong pair: less noisy than one outcome.
- The same three matrices also give each prompt a cheap-vs-strong label without any fit: the share
  of (cheap, strong) pairs where the cheap model fails and the strong one succeeds, cheap = the
  open-weights models of at most 10B parameters in the matrix (what r42 runs locally), strong = the
  models whose success rate is at least STRONG_SHARE of the matrix's best (CHEAP_MODELS, strong_models).
- data/routing/handwritten_*.jsonl: prompts written for r42 (greetings, thanks, one-line chat
  and lookups), label 0: any model answers them; always in training, never a test fold.
- data/routing/arena_prompts_rated.jsonl: real chat prompts with a judge's 0-10 rating that runs
  opposite to how often a cheap model fails (on the 196 also in Arena-bench: correlation -0.39 with
  its label, +0.56 with the weak model's grade); label 1 for a rating in the lower half of the
  scale (RATED_HARD_AT_MOST), else 0. Only the open requests among
  them (RATED_KINDS), only in the within-source model (their own source indicator absorbs the
  label's arbitrary level; they set no kind prior), never those sharing an 8-word run with
  Arena-bench, never a test fold.

Candidates: logistic regressions over statistics, hashed n-grams and WordLlama embeddings pooled over
all sources, and the within-source model (WithinSource: source indicators absorb each source's overall
rate, a task-kind prior takes their place at inference).

Validation: leave one source out (MMLU split by subject into STEM, humanities, social/other), APGR
of random (mean of 100 seeds), length, heuristic and each representation on the held-out source.
The representation with the best mean APGR is exported. Its logit is Platt-scaled on the pooled
out-of-source predictions; each fold's Brier score and calibration error use a Platt fit on the
other folds only.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import subprocess
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Sequence

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # many small fits: threads only fight each other on 2 shared cores

import numpy as np  # noqa: E402
from scipy.sparse import csr_matrix, hstack  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from r42 import evaluation  # noqa: E402
from r42.scoring import prompt_of  # noqa: E402
from r42.scoring.ability import SCALE_FILE  # noqa: E402
from r42.scoring.baselines import LengthScorer  # noqa: E402
from r42.scoring.heuristic import HeuristicScorer  # noqa: E402
from r42.scoring.trained import (  # noqa: E402
    COEF,
    KINDS,
    WEIGHTS,
    hashed_counts,
    statistics_and_kind,
    with_options_on_lines,
)  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]  # the checkout: data/ is not part of the wheel

SEED = 0
BUCKETS = 2**18
C = 0.5  # inverse L2 strength of the regression
SOURCE_MASS = 1500.0  # each source weighs at most this many rows: MMLU's 13k rows do not drown the rest
EASY_MASS = 1000.0  # the hand-written easy prompts weigh as much as a public source
DATA = ROOT / "data/routing"
EVAL = ROOT / "data/eval"
LEFT_OUT_SUBJECTS = {"high_school_mathematics"}
STEM_WORDS = (
    "math",
    "physics",
    "chemistry",
    "biology",
    "computer",
    "engineering",
    "astronomy",
    "statistics",
    "algebra",
    "anatomy",
    "machine_learning",
    "electrical",
    "virology",
    "medicine",
    "genetics",
)
HUMANITIES_WORDS = (
    "history",
    "philosophy",
    "law",
    "logic",
    "fallacies",
    "moral",
    "religions",
    "prehistory",
    "jurisprudence",
)
# source -> (pair file, multi-model matrix, weak model, strong model in that matrix)
MULTI = {
    "math_l5": (
        "zeroeval_math_l5_gpt35_vs_gpt4turbo.jsonl",
        "multi/zeroeval_math-l5_correct_matrix.jsonl",
        "gpt-3.5-turbo-0125",
        "gpt-4-turbo-2024-04-09",
    ),
    "crux": (
        "zeroeval_crux_mixtral_vs_gpt4turbo.jsonl",
        "multi/zeroeval_crux_correct_matrix.jsonl",
        "Mixtral-8x7B-Instruct-v0.1",
        "gpt-4-turbo-2024-04-09",
    ),
    "arena_bench": (
        "arena_bench_v1_mixtral_vs_gpt4turbo.jsonl",
        "multi/arena_bench_v1_scores_all_models.jsonl",
        "Mixtral-8x7B-Instruct-v0.1",
        "gpt-4-turbo",
    ),
}
MMLU = "mmlu_gpt4_vs_mixtral.jsonl"
RATED = "arena_prompts_rated.jsonl"  # real chat prompts with a judge's 0-10 rating, no outcomes
RATED_FOLD = "arena_rated"
RATED_HARD_AT_MOST = 5.0  # a rating in the lower half of the 0-10 scale: label 1, "a cheap model fails it"
RATED_KINDS = ("task",)  # the rated prompts trained on: open requests, the kind only Arena-bench has outcomes for
TRAIN_ONLY = ("easy", RATED_FOLD)  # never a held-out fold: no outcomes to route against
WITHIN = "within-source stats"  # the kind prior has two kinds: small talk and task
WITHIN_KINDS = "within-source stats (5 kinds)"  # the prior has every kind of KINDS
WITHIN_CHEAP = "within-source stats (cheap-vs-strong labels)"  # trained on the `cheap` label (CHEAP_MODELS)
WITHIN_KINDS_CHEAP = "within-source stats (5 kinds; cheap-vs-strong labels)"
WITHIN_MODELS = (WITHIN, WITHIN_KINDS, WITHIN_CHEAP, WITHIN_KINDS_CHEAP)
REPRESENTATIONS = ("stats", "ngrams+stats", "wordllama+stats", "wordllama+ngrams+stats", *WITHIN_MODELS)
WITHIN_C = 0.1  # inverse L2 strength of the within-source model (fixed effects): 0.03..1 all within 0.003 in CV
SOURCE_DUMMY = 10.0  # a source indicator's value: its coefficient is 10x cheaper, so the source effect is barely shrunk
MIN_KIND_MASS = 50.0  # a kind with less training weight than this takes the overall prior
MMLU_TRAIN_ROWS = 3000  # MMLU rows a model is fitted on (a fixed sample): its weight is capped anyway
# Kinds whose within-source weights are their own (shared + a shrunk deviation): open requests, whose
# difficulty is not what makes a benchmark item hard; letting them pull the shared weights cost every
# fold (mean 0.5383 -> 0.5425 with their own weights; every kind its own: 0.5408, mixed stream 0.591)
OWN_SLOPE_KINDS = ("task",)


# The open-weights models of at most 10B parameters in the many-model matrices: the cheap side of
# the `cheap` label (what r42 runs on a laptop). Named, not chosen by any fit.
CHEAP_MODELS = frozenset(
    {
        "Meta-Llama-3-8B-Instruct",
        "Meta-Llama-3.1-8B-Instruct",
        "Phi-3-mini-4k-instruct",
        "Phi-3.5-mini-instruct",
        "Qwen2-7B-Instruct",
        "Qwen2.5-3B-Instruct",
        "Qwen2.5-7B-Instruct",
        "Yi-1.5-9B-Chat",
        "gemma-2-2b-it",
        "gemma-2-9b-it",
        "Mistral-7B-Instruct-v0.1",
        "Starling-LM-7B-alpha",
        "openchat_3.5",
    }
)
STRONG_SHARE = 0.9  # strong side: the models with at least this share of the matrix's best success rate


def within_label(representation: str) -> str:
    """The label a within-source candidate is trained on: the source pair's outcome, or `cheap`."""
    return "cheap" if representation in (WITHIN_CHEAP, WITHIN_KINDS_CHEAP) else "hard"


def five_kinds(representation: str) -> bool:
    return representation in (WITHIN_KINDS, WITHIN_KINDS_CHEAP)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def mmlu_fold(subject: str) -> str:
    if any(w in subject for w in STEM_WORDS):
        return "mmlu_stem"
    if any(w in subject for w in HUMANITIES_WORDS):
        return "mmlu_humanities"
    return "mmlu_social_other"


# --- item response fit -------------------------------------------------------------------------


def rasch(
    matrix: np.ndarray, observed: np.ndarray, steps: int = 3000, prior: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """MAP abilities (per column) and difficulties (per row) of P = sigmoid(ability - difficulty),
    by gradient ascent; a small L2 prior keeps prompts that every model solves (or fails) finite."""
    ability = np.zeros(matrix.shape[1])
    difficulty = np.zeros(matrix.shape[0])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(ability[None, :] - difficulty[:, None])))
        residual = (matrix - p) * observed
        ability += 0.5 * (residual.sum(0) - prior * ability) / np.maximum(observed.sum(0), 1)
        difficulty -= 0.5 * (residual.sum(1) + prior * difficulty) / np.maximum(observed.sum(1), 1)
        ability -= ability.mean() - 0.0  # anchor the scale: mean ability 0
    return ability, difficulty


def soft_labels(source: str) -> tuple[dict[str, float], dict]:
    """Prompt id -> P(weak fails) * P(strong solves) from the Rasch fit, and a summary of the fit."""
    _, _, weak, strong = MULTI[source]
    rows, successes = matrix_successes(source)
    models = sorted({m for s in successes for m in s})
    solved = np.zeros((len(rows), len(models)))
    observed = np.zeros_like(solved)
    for i, success in enumerate(successes):
        for m, value in success.items():
            j = models.index(m)
            observed[i, j] = 1.0
            solved[i, j] = value
    ability, difficulty = rasch(solved, observed)
    a_weak, a_strong = ability[models.index(weak)], ability[models.index(strong)]
    p_weak = 1.0 / (1.0 + np.exp(-(a_weak - difficulty)))
    p_strong = 1.0 / (1.0 + np.exp(-(a_strong - difficulty)))
    labels = {r["id"]: float((1 - pw) * ps) for r, pw, ps in zip(rows, p_weak, p_strong)}
    summary = {
        "models": len(models),
        "prompts": len(rows),
        "weak_ability": round(float(a_weak), 3),
        "strong_ability": round(float(a_strong), 3),
        "success": "score >= 7 of 10" if "scores_1to10" in rows[0] else "correct",
    }
    return labels, summary


def matrix_successes(source: str) -> tuple[list[dict], list[dict[str, float]]]:
    """A many-model matrix's rows and, per row, model -> 1.0 solved / 0.0 not (a 1-10 grade of 7 or
    more counts as solved): what the item-response fit and the cheap-vs-strong labels both read."""
    rows = read_jsonl(DATA / MULTI[source][1])
    key = "correct" if "correct" in rows[0] else "scores_1to10"
    solved = [{m: float(v >= 7) if key == "scores_1to10" else float(v) for m, v in r[key].items()} for r in rows]
    return rows, solved


def strong_models(solved: list[dict[str, float]]) -> list[str]:
    """The models whose success rate is at least STRONG_SHARE of the best model's."""
    models = sorted({m for s in solved for m in s})
    rate = {m: np.mean([s[m] for s in solved if m in s]) for m in models}
    best = max(rate.values())
    return [m for m in models if rate[m] >= STRONG_SHARE * best]


def cheap_labels(source: str) -> tuple[dict[str, tuple[float, float, float]], dict]:
    """cheap_vs_strong of a many-model matrix, by prompt id, and which models were on each side."""
    rows, solved = matrix_successes(source)
    strong = strong_models(solved)
    summary = {"cheap": sorted({m for s in solved for m in s} & CHEAP_MODELS), "strong": strong}
    return cheap_vs_strong([r["id"] for r in rows], solved, strong), summary


def cheap_vs_strong(
    ids: list[str], solved: list[dict[str, float]], strong: list[str]
) -> dict[str, tuple[float, float, float]]:
    """Prompt id -> (cheap success rate, strong success rate, label): the label is the share of
    (cheap, strong) model pairs where the cheap one fails and the strong one succeeds, every observed
    pair counted (the product of the two sides' rates). Prompts missing either side are left out."""
    out = {}
    for prompt_id, s in zip(ids, solved):
        cheap_ok = [v for m, v in s.items() if m in CHEAP_MODELS]
        strong_ok = [v for m, v in s.items() if m in strong]
        if cheap_ok and strong_ok:
            weak, top = float(np.mean(cheap_ok)), float(np.mean(strong_ok))
            out[prompt_id] = (weak, top, (1.0 - weak) * top)
    return out


# --- one scale for prompts and models (r42/scoring/ability.py) -----------------------------------

SCALE_MATRICES = ("math_l5", "crux")  # 0/1 outcomes of ~50 named models, many of them in the catalog
REFERENCE_PAIR = ("gpt-3.5-turbo-0125", "gpt-4-turbo-2024-04-09")  # the scorer's "cheap" and "strong" model
SCALE_DOMAINS = ("math", "code")  # the catalog domains of SCALE_MATRICES


def joint_abilities() -> dict[str, float]:
    """One Rasch ability per model over the stacked maths and code matrices (mean ability 0)."""
    rows = [r for source in SCALE_MATRICES for r in read_jsonl(DATA / MULTI[source][1])]
    models = sorted({m for r in rows for m in r["correct"]})
    column = {m: j for j, m in enumerate(models)}
    solved = np.zeros((len(rows), len(models)))
    observed = np.zeros_like(solved)
    for i, row in enumerate(rows):
        for m, value in row["correct"].items():
            observed[i, column[m]] = 1.0
            solved[i, column[m]] = float(value)
    ability, _ = rasch(solved, observed)
    return {m: float(a) for m, a in zip(models, ability)}


def model_key(name: str) -> str:
    """A name both the matrices and the catalog spell alike: no provider, host, date or "instruct"."""
    key = name.lower().split("/")[-1].split("@")[0].split(":")[0]
    key = re.sub(r"-instruct|-inst|-chat|-it$|-fp8|-latest", "", key)
    key = re.sub(r"-20\d\d-?\d\d-?\d\d$|-\d{4}$", "", key)
    return key.replace("meta-llama", "llama").replace(".", "-")


def catalog_qualities() -> dict[str, float]:
    """Matching key -> the quality rank computes for a maths or code prompt (0.75 domain + 0.25 overall,
    the mean over SCALE_DOMAINS), for the shipped catalog's models with measured quality."""
    import yaml

    found: dict[str, list[float]] = {}
    for m in yaml.safe_load((ROOT / "catalog.yaml").read_text(encoding="utf-8"))["models"]:
        quality = m.get("quality") or {}
        if quality.get("estimated", True) or not all(isinstance(quality.get(d), float) for d in SCALE_DOMAINS):
            continue
        q = float(np.mean([0.75 * quality[d] + 0.25 * quality["overall"] for d in SCALE_DOMAINS]))
        found.setdefault(model_key(m["id"]), []).append(q)
    return {k: float(np.mean(v)) for k, v in found.items()}


def ability_scale() -> dict:
    """The line from catalog quality to Rasch ability, through the models in both, and the reference pair."""
    abilities = joint_abilities()
    qualities = catalog_qualities()
    pairs: dict[str, list[float]] = {}
    for name, value in abilities.items():
        if model_key(name) in qualities:
            pairs.setdefault(model_key(name), []).append(value)  # the same model served by two hosts: averaged
    keys = sorted(pairs)
    q = np.array([qualities[k] for k in keys])
    a = np.array([float(np.mean(pairs[k])) for k in keys])
    slope, intercept = (float(c) for c in np.polyfit(q, a, 1))
    return {
        "fit": "Rasch over " + " + ".join(MULTI[s][1] for s in SCALE_MATRICES) + "; mean ability 0",
        "reference": {
            "weak_model": REFERENCE_PAIR[0],
            "strong_model": REFERENCE_PAIR[1],
            "weak": round(abilities[REFERENCE_PAIR[0]], 4),
            "strong": round(abilities[REFERENCE_PAIR[1]], 4),
        },
        "quality_to_ability": {
            "intercept": round(float(intercept), 4),
            "slope": round(float(slope), 4),
            "models": len(keys),
            "correlation": round(float(np.corrcoef(q, a)[0, 1]), 4),
            "quality": "0.75 x domain + 0.25 x overall, mean over " + ", ".join(SCALE_DOMAINS),
        },
        "matched": {
            k: {"quality": round(float(qq), 4), "ability": round(float(aa), 4)}
            for k, qq, aa in zip(keys, q.tolist(), a.tolist())
        },
        "abilities": {m: round(v, 4) for m, v in sorted(abilities.items())},
    }


# --- data ----------------------------------------------------------------------------------------


def load_items(soft: bool = True, rows_per_source: int | None = None) -> tuple[list[dict], dict]:
    """Every training row: prompt, fold, weak/strong quality, hard label, soft label, weight.

    soft=False skips the item-response fits (the soft labels are then the hard ones: the within-source
    model never reads them); rows_per_source keeps every k-th row of each fold, at most that many (a
    quick check; the hand-written prompts are always kept whole)."""
    items = []
    for r in read_jsonl(DATA / MMLU):
        if r["subject"] in LEFT_OUT_SUBJECTS:
            continue
        hard = float(r["strong_correct"] and not r["weak_correct"])
        items.append(
            {
                "id": r["id"],
                "prompt": r["prompt"],
                "fold": mmlu_fold(r["subject"]),
                "strong": float(r["strong_correct"]),
                "weak": float(r["weak_correct"]),
                "hard": hard,
                "soft": hard,
                "cheap": hard,  # two models only: the pair's outcome
            }
        )
    fits = {}
    for source, (pair_file, *_rest) in MULTI.items():
        labels: dict[str, float] = {}
        if soft:
            labels, fits[source] = soft_labels(source)
        cheap, fits[f"{source} cheap-vs-strong"] = cheap_labels(source)
        for r in read_jsonl(DATA / pair_file):
            hard = float(r["label"])
            cheap_weak, cheap_strong, cheap_label = cheap.get(
                r["id"], (float(r["weak_score"]), float(r["strong_score"]), hard)
            )
            items.append(
                {
                    "id": r["id"],
                    "prompt": r["prompt"],
                    "fold": source,
                    "strong": float(r["strong_score"]),
                    "weak": float(r["weak_score"]),
                    "hard": hard,
                    "soft": labels.get(r["id"], hard),
                    "cheap": cheap_label,
                    "cheap_weak": cheap_weak,
                    "cheap_strong": cheap_strong,
                }
            )
    for path in handwritten_files():
        for r in read_jsonl(path):
            items.append(
                {
                    "id": r["id"],
                    "prompt": r["prompt"],
                    "fold": "easy",
                    "strong": 1.0,
                    "weak": 1.0,
                    "hard": 0.0,
                    "soft": 0.0,
                    "cheap": 0.0,
                }
            )
    items.extend(rated_items(items))
    if rows_per_source is not None:
        items = thinned(items, rows_per_source)
    for fold in sorted({i["fold"] for i in items}):
        members = [i for i in items if i["fold"] == fold]
        mass = EASY_MASS if fold == "easy" else min(SOURCE_MASS, len(members))
        for i in members:
            i["weight"] = mass / len(members)
    return items, fits


def word_runs(text: str, n: int = 8) -> set[str]:
    """Every run of n words (lower-cased) of a text: two prompts sharing one are near-duplicates."""
    words = text.lower().split()
    return {" ".join(words[i : i + n]) for i in range(max(1, len(words) - n + 1))}


def rated_items(items: list[dict]) -> list[dict]:
    """The rated Arena prompts, label 1 when rated in the lower half of the scale, except those that
    share an 8-word run with an Arena-bench prompt (196 are the same prompts, more are near-copies):
    with Arena-bench held out, none of its prompts is trained on."""
    bench: set[str] = set()
    for item in items:
        if item["fold"] == "arena_bench":
            bench |= word_runs(item["prompt"])
    out = []
    for r in read_jsonl(DATA / RATED):
        if word_runs(r["prompt"]) & bench:
            continue
        label = float(float(r["mean_rating"]) <= RATED_HARD_AT_MOST)
        out.append(
            {
                "id": r["id"],
                "prompt": r["prompt"],
                "fold": RATED_FOLD,
                "strong": math.nan,  # no outcomes: never routed against
                "weak": math.nan,
                "hard": label,
                "soft": label,
                "cheap": label,
            }
        )
    return out


def held_out(fold_of: np.ndarray) -> np.ndarray:
    """Which rows belong to a source that is held out in turn: every one with outcomes to route against."""
    return ~np.isin(fold_of, TRAIN_ONLY)


def held_out_folds(fold_of: np.ndarray) -> list[str]:
    """The sources held out in turn (held_out), sorted."""
    return sorted(set(fold_of[held_out(fold_of)]))


def handwritten_files() -> list[Path]:
    """The prompts written for r42 (data/routing/handwritten_*.jsonl), label "any model answers"."""
    return sorted(DATA.glob("handwritten_*.jsonl"))


def thinned(items: list[dict], rows_per_source: int) -> list[dict]:
    """Every k-th row of each source (the same rows each run), at most rows_per_source of each."""
    kept = []
    for fold in sorted({i["fold"] for i in items}):
        members = [i for i in items if i["fold"] == fold]
        step = 1 if fold == "easy" else max(1, math.ceil(len(members) / max(1, rows_per_source)))
        kept.extend(members[::step])
    return kept


# --- features ------------------------------------------------------------------------------------


def features(items: list[dict], with_wordllama: bool, with_ngrams: bool = True) -> dict[str, Any]:
    """Every input a candidate may use, per row: hashed n-grams (empty unless with_ngrams), statistics,
    the heuristic's and length's complexity, the task kind, and WordLlama embeddings when asked."""
    heuristic, length = HeuristicScorer(), LengthScorer()
    data: list[float] = []
    indices: list[int] = []
    indptr = [0]
    stats, heur, lengths, kinds = [], [], [], []
    for item in items:
        raw = prompt_of([{"role": "user", "content": item["prompt"]}])
        prompt = with_options_on_lines(raw)  # what the trained scorer reads
        counts = hashed_counts(prompt.last_user, BUCKETS) if with_ngrams else {}
        indices.extend(counts)
        data.extend(counts.values())
        indptr.append(len(indices))
        estimate = heuristic.estimate(prompt)
        prompt_stats, kind = statistics_and_kind(prompt.last_user, estimate)
        stats.append(prompt_stats)
        kinds.append(kind)
        # the baselines score the prompt as it is
        heur.append((estimate if prompt is raw else heuristic.estimate(raw)).complexity)
        lengths.append(length.estimate(raw).complexity)
    names = list(stats[0])
    out = {
        "ngrams": csr_matrix((data, indices, indptr), shape=(len(items), BUCKETS)),
        "stats": np.array([[s[n] for n in names] for s in stats]),
        "names": names,
        "heuristic": np.array(heur),
        "length": np.array(lengths),
        "kind": np.array(kinds),
    }
    if with_wordllama:
        out["wordllama"] = wordllama_embeddings([i["prompt"] for i in items])
    return out


def wordllama_embeddings(texts: list[str]) -> np.ndarray:
    """WordLlama's 256-dimension static embeddings (shipped in its wheel; nothing downloaded)."""
    from pathlib import Path as _Path

    import wordllama
    from wordllama import WordLlama

    model = WordLlama.load(cache_dir=_Path(wordllama.__file__).parent, disable_download=True)
    return np.asarray(model.embed([t[:6000] for t in texts], norm=True), dtype=float)


def design(feats: dict, representation: str, rows: np.ndarray, mean: np.ndarray, scale: np.ndarray):
    parts = []
    if "ngrams" in representation:
        parts.append(feats["ngrams"][rows])
    if "wordllama" in representation:
        parts.append(csr_matrix(feats["wordllama"][rows]))
    parts.append(csr_matrix((feats["stats"][rows] - mean) / scale))
    return hstack(parts, format="csr")


def soft_label_rows(items: list[dict], rows: np.ndarray, label: str, boost: np.ndarray):
    """Indices into `rows`, 0/1 targets and weights for a weighted logistic regression: a row with a
    soft label y enters twice, as 1 (weight y) and as 0 (weight 1 - y)."""
    y = np.array([items[i][label] for i in rows])
    w = np.array([items[i]["weight"] for i in rows]) * boost
    soft = (y > 0) & (y < 1)
    index = np.r_[np.arange(len(rows)), np.where(soft)[0]]
    targets = np.r_[np.where(soft, 1.0, y), np.zeros(soft.sum())]
    weights = np.r_[np.where(soft, w * y, w), (w * (1 - y))[soft]]
    return index, targets, weights


def fit(feats: dict, items: list[dict], representation: str, train: np.ndarray, label: str):
    """A weighted logistic regression; a row with a soft label y enters twice, as 1 (weight y) and as 0.
    Without source indicators the rated prompts' label level would count as a rate: they are left out."""
    train = np.array([i for i in train if items[i]["fold"] != RATED_FOLD])
    train, boost = subsample(items, train)
    mean = feats["stats"][train].mean(0)
    scale = feats["stats"][train].std(0) + 1e-6
    x = design(feats, representation, train, mean, scale)
    rows, targets, weights = soft_label_rows(items, train, label, boost)
    model = LogisticRegression(C=C, max_iter=300, tol=1e-4)
    model.fit(x[rows], targets, sample_weight=weights)
    return model, mean, scale


class WithinSource:
    """The two-part model: a task-kind prior plus a within-source difficulty term.

    A logistic regression over the standardised statistics with one indicator per training source
    (fixed effects): the indicators absorb how hard each source is as a whole, so the statistics'
    weights learn only what makes one prompt harder than another of the same source, the part that
    should carry to a source never seen. The indicators are then dropped; in their place a prompt gets
    its kind's prior (kind_of, KINDS), the training-weighted mean of the source effects over the
    training prompts of that kind. Open requests (OWN_SLOPE_KINDS) also get weights of their own: the
    shared weights plus a deviation fitted on their rows alone, shrunk towards zero like every other
    weight. The difficulty term is clipped to the range (1st to 99th percentile) it had on the training
    prompts of the same kind: a prompt whose statistics look like no training prompt of its kind (a
    fill-in-the-blank the heuristic calls extraction) cannot move far from its kind."""

    def __init__(
        self,
        coef: np.ndarray,
        prior: dict[str, float],
        ranges: dict[str, tuple[float, float]],
        kind_coef: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.coef, self.prior, self.ranges = coef, prior, ranges
        self.kind_coef = kind_coef or {}

    def coef_for(self, kind: str) -> np.ndarray:
        """The statistics' weights a prompt of this kind is scored with."""
        return self.kind_coef.get(kind, self.coef)

    def difficulty(self, stats: np.ndarray, kinds: np.ndarray) -> np.ndarray:
        """The within-source term of each row, with its kind's weights, before clipping."""
        out = stats @ self.coef
        for kind, coef in self.kind_coef.items():
            mine = kinds == kind
            out[mine] = stats[mine] @ coef
        return out

    def logits(self, stats: np.ndarray, kinds: np.ndarray) -> np.ndarray:
        low = np.array([self.ranges[k][0] for k in kinds])
        high = np.array([self.ranges[k][1] for k in kinds])
        return np.clip(self.difficulty(stats, kinds), low, high) + np.array([self.prior[k] for k in kinds])


def within_ranges(within: np.ndarray, kinds: np.ndarray) -> dict[str, tuple[float, float]]:
    """Each kind's 1st..99th percentile of the difficulty term over its training rows (every
    training row's for a kind with fewer than MIN_KIND_MASS rows)."""
    overall = (float(np.percentile(within, 1)), float(np.percentile(within, 99)))
    ranges = {}
    for kind in KINDS:
        mine = within[kinds == kind]
        ranges[kind] = (
            (float(np.percentile(mine, 1)), float(np.percentile(mine, 99))) if len(mine) >= MIN_KIND_MASS else overall
        )
    return ranges


def fit_within(feats: dict, items: list[dict], train: np.ndarray, label: str, detailed: bool = False):
    """The WithinSource model; detailed=False: two kinds (small talk, task), every task kind of KINDS
    then gets the same prior and range, so the scorer's kind_of needs no change."""
    train = np.array([i for i in train if items[i]["fold"] != RATED_FOLD or feats["kind"][i] in RATED_KINDS])
    rows, boost = subsample(items, train)
    mean = feats["stats"][rows].mean(0)
    scale = feats["stats"][rows].std(0) + 1e-6
    x = (feats["stats"][rows] - mean) / scale
    sources = sorted({items[i]["fold"] for i in rows})
    fold_of = np.array([items[i]["fold"] for i in rows])
    dummies = SOURCE_DUMMY * (fold_of[:, None] == np.array(sources)[None, :])
    # the hand-written prompts were written as small talk: the few the rules call something else
    # (weighted ~10x a benchmark row) must not set that kind's rate, nor its weights
    kinds = np.where((fold_of == "easy") & (feats["kind"][rows] != "small_talk"), "", feats["kind"][rows])
    # each OWN_SLOPE_KINDS kind's deviation from the shared weights: the statistics again, 0 on other rows
    deviations = [x * (kinds == kind)[:, None] for kind in OWN_SLOPE_KINDS]
    dup, targets, weights = soft_label_rows(items, rows, label, boost)
    w = np.array([items[i]["weight"] for i in rows]) * boost  # each row's weight, for the kind priors
    model = LogisticRegression(C=WITHIN_C, max_iter=3000, tol=1e-6)
    model.fit(np.c_[x, *deviations, dummies][dup], targets, sample_weight=weights)
    k, d = len(sources), x.shape[1]
    effect = dict(zip(sources, SOURCE_DUMMY * model.coef_[0][-k:] + model.intercept_[0]))
    row_effect = np.array([effect[f] for f in fold_of])
    coef = model.coef_[0][:d]
    kind_coef = {kind: coef + model.coef_[0][d * (j + 1) : d * (j + 2)] for j, kind in enumerate(OWN_SLOPE_KINDS)}
    within = WithinSource(coef, {}, {}, kind_coef).difficulty(x, kinds)
    if not detailed:
        kinds = np.where(np.isin(kinds, ["small_talk", ""]), kinds, "task")
    ranges = within_ranges(within, kinds)
    prior = kind_priors(np.where(fold_of == RATED_FOLD, "", kinds), row_effect, w)  # a rating is not a rate
    if not detailed:
        for kind in KINDS[1:]:
            prior[kind], ranges[kind] = prior["task"], ranges["task"]
    return WithinSource(coef, prior, ranges, kind_coef), mean, scale


def kind_priors(kinds: np.ndarray, row_effect: np.ndarray, w: np.ndarray) -> dict[str, float]:
    """Each kind's prior: the training-weighted mean of its rows' source effects (rows of kind "" are
    left out). A kind with less than MIN_KIND_MASS of training weight (in cross-validation: the
    held-out source was its only one) takes the mean over every task row: "some task"."""
    tasks = np.isin(kinds, [k for k in KINDS if k != "small_talk"])
    fallback = float(np.average(row_effect[tasks], weights=w[tasks]))
    prior = {}
    for kind in KINDS:
        mask = kinds == kind
        prior[kind] = (
            float(np.average(row_effect[mask], weights=w[mask])) if w[mask].sum() >= MIN_KIND_MASS else fallback
        )
    return prior


def subsample(items: list[dict], train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most MMLU_TRAIN_ROWS MMLU rows (every k-th, so the same each run), reweighted to the same mass."""
    mmlu = np.array([items[i]["fold"].startswith("mmlu") for i in train])
    step = max(1, int(math.ceil(mmlu.sum() / MMLU_TRAIN_ROWS)))
    keep = ~mmlu | (np.cumsum(mmlu) % step == 0)
    return train[keep], np.where(mmlu[keep], float(step), 1.0)


def logits(
    model, feats: dict, representation: str, rows: np.ndarray, mean: np.ndarray, scale: np.ndarray
) -> np.ndarray:
    if isinstance(model, WithinSource):
        return model.logits((feats["stats"][rows] - mean) / scale, feats["kind"][rows])
    return model.decision_function(design(feats, representation, rows, mean, scale))


# --- metrics -------------------------------------------------------------------------------------


PAIR = ("weak", "strong")  # the source's own pair: the items' keys of its two outcomes
CHEAP_PAIR = ("cheap_weak", "cheap_strong")  # the matrices' cheap and strong models' success rates


def eval_rows(items: list[dict], rows: np.ndarray, pair: tuple[str, str] = PAIR) -> list[evaluation.Row]:
    weak, strong = pair
    return [evaluation.Row(id=items[i]["id"], messages=[], strong=items[i][strong], weak=items[i][weak]) for i in rows]


def apgr(scores: np.ndarray, rows: list[evaluation.Row]) -> float:
    return evaluation.routing_metrics([float(s) for s in scores], rows).apgr


def platt(z: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    model = LogisticRegression(C=1e6, max_iter=1000).fit(z[:, None], y, sample_weight=w)
    return float(model.coef_[0, 0]), float(model.intercept_[0])


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def calibration(p: np.ndarray, y: np.ndarray, bins: int = 10) -> dict:
    """Brier score, expected calibration error (equal-width bins, weighted by count), and the bins."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            mean_p, rate = float(p[mask].mean()), float(y[mask].mean())
            ece += mask.sum() / len(p) * abs(mean_p - rate)
            table.append({"bin": b, "n": int(mask.sum()), "mean_p": round(mean_p, 4), "rate": round(rate, 4)})
    return {"brier": round(float(np.mean((p - y) ** 2)), 4), "ece": round(float(ece), 4), "bins": table}


def reliability_svg(bins: list[dict], title: str) -> str:
    """Predicted probability against observed rate per bin (dot area ~ count), diagonal = perfect."""
    size, pad = 360, 50

    def xy(px: float, py: float) -> tuple[float, float]:
        return pad + px * size, pad + (1 - py) * size

    total = sum(b["n"] for b in bins) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size + 2 * pad}" height="{size + 2 * pad}" '
        f'font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{pad}" y="{pad - 20}" font-size="14">{title}</text>',
        f'<rect x="{pad}" y="{pad}" width="{size}" height="{size}" fill="none" stroke="#888"/>',
    ]
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):
        x, y = xy(t, t)
        parts.append(f'<text x="{x:.0f}" y="{pad + size + 16}" text-anchor="middle">{t:g}</text>')
        parts.append(f'<text x="{pad - 6}" y="{y + 4:.0f}" text-anchor="end">{t:g}</text>')
    (x0, y0), (x1, y1) = xy(0, 0), xy(1, 1)
    parts.append(f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" stroke="#bbb" stroke-dasharray="4 4"/>')
    points = [xy(b["mean_p"], b["rate"]) for b in bins]
    parts.append(
        '<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="'
        + " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        + '"/>'
    )
    for b, (x, y) in zip(bins, points):
        radius = 3 + 12 * math.sqrt(b["n"] / total)
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius:.1f}" fill="#1f77b4" fill-opacity="0.5"/>')
    parts.append(
        f'<text x="{pad + size / 2}" y="{pad + size + 36}" text-anchor="middle">'
        "predicted P(cheap fails, strong succeeds)</text>"
    )
    parts.append(
        f'<text transform="translate({pad - 36},{pad + size / 2}) rotate(-90)" '
        'text-anchor="middle">observed rate</text>'
    )
    return "\n".join(parts + ["</svg>"]) + "\n"


# --- cross-validation ----------------------------------------------------------------------------


def cross_validate(items: list[dict], feats: dict, representation: str, label: str) -> np.ndarray:
    """Out-of-source logits: each held-out fold scored by a model that never saw that source."""
    fold_of = np.array([i["fold"] for i in items])
    folds = held_out_folds(fold_of)
    out = np.zeros(len(items))
    for fold in folds:
        train, test = np.where(fold_of != fold)[0], np.where(fold_of == fold)[0]
        model, mean, scale = (
            fit_within(feats, items, train, within_label(representation), five_kinds(representation))
            if representation in WITHIN_MODELS
            else fit(feats, items, representation, train, label)
        )
        out[test] = logits(model, feats, representation, test, mean, scale)
    return out


def fold_entry(
    name: str,
    rows: np.ndarray,
    items: list[dict],
    feats: dict,
    oof: dict[str, np.ndarray],
    pair: tuple[str, str] = PAIR,
) -> dict:
    """One line of the fold table: the APGR of random routing, the baselines and each scorer on rows,
    against the outcomes of `pair` (the source's own pair, or the matrices' cheap and strong models)."""
    er = eval_rows(items, rows, pair)
    entry = {
        "fold": name,
        "rows": len(rows),
        "random": round(evaluation.random_band(er)["apgr_mean"], 4),
        "length": round(apgr(feats["length"][rows], er), 4),
        "heuristic": round(apgr(feats["heuristic"][rows], er), 4),
    }
    for scorer, scores in oof.items():
        entry[scorer] = round(apgr(scores[rows], er), 4)
    return entry


def fold_table(items: list[dict], feats: dict, oof: dict[str, np.ndarray], pair: tuple[str, str] = PAIR) -> list[dict]:
    fold_of = np.array([i["fold"] for i in items])
    folds = [f for f in held_out_folds(fold_of) if pair == PAIR or f in MULTI]
    return [fold_entry(fold, np.where(fold_of == fold)[0], items, feats, oof, pair) for fold in folds]


def pooled(items: list[dict], feats: dict, oof: dict[str, np.ndarray]) -> dict:
    """All held-out folds routed as one mixed stream: does the scorer know which kind is harder?"""
    rows = np.where(held_out(np.array([i["fold"] for i in items])))[0]
    return fold_entry("pooled (all folds, one stream)", rows, items, feats, oof)


def calibrated_folds(items: list[dict], z: np.ndarray) -> tuple[np.ndarray, list[dict]]:
    """Each fold's probabilities from a Platt fit on the other folds' out-of-source logits."""
    fold_of = np.array([i["fold"] for i in items])
    y = np.array([i["hard"] for i in items])
    w = np.array([i["weight"] for i in items])
    p = np.zeros(len(items))
    report = []
    for fold in held_out_folds(fold_of):
        test = fold_of == fold
        other = (~test) & held_out(fold_of)
        a, b = platt(z[other], y[other], w[other])
        p[test] = sigmoid(a * z[test] + b)
        cal = calibration(p[test], y[test])
        report.append(
            {
                "fold": fold,
                "base_rate": round(float(y[test].mean()), 4),
                "mean_p": round(float(p[test].mean()), 4),
                "brier": cal["brier"],
                "brier_constant": round(float(np.mean((y[test].mean() - y[test]) ** 2)), 4),
                "ece": cal["ece"],
            }
        )
    return p, report


# --- export --------------------------------------------------------------------------------------


def git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "r42", "scripts", "data/routing", ":!r42/scoring/weights"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+uncommitted" if dirty else "")


def export(model, mean, scale, names: list[str], a: float, b: float, meta: dict, with_ngrams: bool) -> None:
    buckets = BUCKETS if with_ngrams else 0
    ranges: dict[str, tuple[float, float]] = {}
    kind_coef: dict[str, list[float]] = {}
    if isinstance(model, WithinSource):
        coef, intercept, prior, ranges = model.coef, 0.0, model.prior, model.ranges
        kind_coef = {kind: c.tolist() for kind, c in model.kind_coef.items()}
    else:
        coef, intercept, prior = model.coef_[0], float(model.intercept_[0]), {}
    sparse = np.asarray(coef[:buckets], dtype="<f4")
    body = {
        "buckets": buckets,
        "intercept": intercept,
        "kind_prior": prior,
        "kind_range": {k: list(v) for k, v in ranges.items()},
        "dense": {"features": names, "mean": mean.tolist(), "scale": scale.tolist(), "coef": coef[buckets:].tolist()},
        "kind_coef": kind_coef,  # kinds scored with weights of their own (OWN_SLOPE_KINDS) instead of dense.coef
        "platt": {"a": a, "b": b},
    }
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode() + sparse.tobytes()).hexdigest()[:10]
    WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    COEF.write_bytes(sparse.tobytes())
    WEIGHTS.write_text(json.dumps({"version": f"3-{digest}", "meta": meta, **body}, indent=1) + "\n", encoding="utf-8")


def write_cv_set(items: list[dict], p: np.ndarray) -> None:
    with (EVAL / "loso_cv.jsonl").open("w", encoding="utf-8") as out:
        for item, score in zip(items, p):
            if item["fold"] in TRAIN_ONLY:
                continue
            record = {
                "id": item["id"],
                "prompt": item["prompt"],
                "strong": item["strong"],
                "weak": item["weak"],
                "fold": item["fold"],
                "scores": {"trained-cv": round(float(score), 6)},
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


# --- the whole run -------------------------------------------------------------------------------

Note = Callable[[str], None]


def _quiet(_message: str) -> None:
    pass


def out_of_source(items: list[dict], feats: dict, representations: Sequence[str], note: Note) -> dict[str, np.ndarray]:
    """Each representation's out-of-source logits, by name (the n-gram one also with hard labels)."""
    started = time.time()
    oof: dict[str, np.ndarray] = {}
    for representation in representations:
        for label in ("soft", "hard"):
            if label == "soft" and representation in WITHIN_MODELS:
                continue  # the within-source model uses the pair's outcomes (soft labels: within 0.001 in CV)
            if label == "hard" and representation not in ("ngrams+stats", *WITHIN_MODELS):
                continue  # the label comparison on one representation is enough to choose
            name = representation + ("" if label == "soft" or representation in WITHIN_MODELS else " (hard labels)")
            oof[name] = cross_validate(items, feats, representation, label)
            note(f"cv {name}: {time.time() - started:.0f}s")
    return oof


def split_halves(items: list[dict]) -> np.ndarray:
    """Each row's half, 0 or 1, by a hash of its id: the same split every run."""
    return np.array([zlib.crc32(i["id"].encode()) % 2 for i in items])


def split_half_logits(items: list[dict], feats: dict, representation: str) -> tuple[np.ndarray, np.ndarray]:
    """A within-source candidate's logits for every benchmark row, each half (split_halves) scored by a
    model trained on the other half of every source (and the hand-written prompts), and the kind
    prior alone of the same models."""
    fold_of = np.array([i["fold"] for i in items])
    half = split_halves(items)
    z, prior_only = np.zeros(len(items)), np.zeros(len(items))
    for h in (0, 1):
        train = np.where((half != h) | ~held_out(fold_of))[0]
        test = np.where((half == h) & held_out(fold_of))[0]
        model, mean, scale = fit_within(feats, items, train, within_label(representation), five_kinds(representation))
        z[test] = logits(model, feats, representation, test, mean, scale)
        prior_only[test] = [model.prior[k] for k in feats["kind"][test]]
    return z, prior_only


def seen_kinds_stream(items: list[dict], feats: dict, representations: Sequence[str]) -> dict:
    """Every source as one mixed stream whose kinds were all seen in training, the case of a router
    whose traffic has the kinds it was trained on: each within-source candidate trained on one half
    of every source and scored on the other half, both ways (split_halves); APGR against the
    sources' own pairs. "kind prior only" is the default candidate without its difficulty term:
    routing by each kind's learned rate alone."""
    fold_of = np.array([i["fold"] for i in items])
    rows = np.where(held_out(fold_of))[0]
    er = eval_rows(items, rows)
    entry: dict[str, Any] = {"fold": "all sources, kinds seen (split halves)", "rows": len(rows)}
    entry["random"] = round(evaluation.random_band(er)["apgr_mean"], 4)
    entry["length"] = round(apgr(feats["length"][rows], er), 4)
    entry["heuristic"] = round(apgr(feats["heuristic"][rows], er), 4)
    candidates = [r for r in representations if r in WITHIN_MODELS]
    for representation in candidates:
        z, prior_only = split_half_logits(items, feats, representation)
        entry[representation] = round(apgr(z[rows], er), 4)
        if representation == WITHIN_KINDS_CHEAP:
            entry["kind prior only"] = round(apgr(prior_only[rows], er), 4)  # ties stay ties
    return entry


def summary(items: list[dict], feats: dict, oof: dict[str, np.ndarray]) -> tuple[dict, np.ndarray]:
    """The cross-validation report (APGR per fold and mean, pooled stream, the chosen candidate's
    calibration per fold) and the chosen candidate's calibrated out-of-source probabilities."""
    table = fold_table(items, feats, oof)
    means = {
        name: round(float(np.mean([row[name] for row in table])), 4) for name in ["random", "length", "heuristic", *oof]
    }
    # WordLlama's tokenizer alone takes ~0.4 s to load: over the CLI start-up budget (README, "The score").
    exportable = [n for n in oof if "wordllama" not in n] or list(oof)
    chosen = max(exportable, key=lambda n: means[n])
    p_cv, cal_report = calibrated_folds(items, oof[chosen])
    y = np.array([i["hard"] for i in items])
    held = held_out(np.array([i["fold"] for i in items]))
    report = {
        "apgr_by_fold": table,
        "apgr_mean": means,
        "pooled": pooled(items, feats, oof),
        # the many-model sources again, routed against their cheap and strong models' outcomes
        "apgr_by_fold_cheap_vs_strong": fold_table(items, feats, oof, CHEAP_PAIR),
        "seen_kinds": seen_kinds_stream(items, feats, list(oof)),
        "best": max(oof, key=lambda n: means[n]),
        "chosen": chosen,
        "calibration_by_fold": cal_report,
        "calibration_pooled": calibration(p_cv[held], y[held]),
        "rows": len(items),
    }
    return report, p_cv


def cross_validation(
    representations: Sequence[str] = WITHIN_MODELS, rows_per_source: int | None = None, note: Note = _quiet
) -> dict:
    """Leave-one-source-out cross-validation of the given candidates against random, length and the
    heuristic; writes nothing. `r42 eval --cv` prints it."""
    if not (DATA / MMLU).is_file():
        raise FileNotFoundError(f"no training data in {DATA}: run from a checkout of the r42 repository")
    items, _ = load_items(soft=any(r not in WITHIN_MODELS for r in representations), rows_per_source=rows_per_source)
    feats = features(
        items,
        with_wordllama=any("wordllama" in r for r in representations),
        with_ngrams=any("ngrams" in r for r in representations),
    )
    note(f"{len(items)} rows")
    report, _ = summary(items, feats, out_of_source(items, feats, representations, note))
    return report


def train(representations: Sequence[str] = REPRESENTATIONS, note: Note = _quiet) -> dict:
    """Cross-validate the candidates, export the best exportable one trained on every row, and write
    data/eval/cv_report.json, reliability.svg and loso_cv.jsonl. Deterministic."""
    started = time.time()
    commit = git_commit()  # the tree as it was when training began
    items, fits = load_items()
    wanted = list(representations)
    try:
        feats = features(items, any("wordllama" in r for r in wanted))
    except ImportError:
        note("wordllama is not installed: its representations are skipped")
        wanted = [r for r in wanted if "wordllama" not in r]
        feats = features(items, False)
    note(f"{len(items)} rows, features in {time.time() - started:.0f}s")
    oof = out_of_source(items, feats, wanted, note)
    report, p_cv = summary(items, feats, oof)
    chosen = report["chosen"]
    y = np.array([i["hard"] for i in items])
    held = held_out(np.array([i["fold"] for i in items]))
    w = np.array([i["weight"] for i in items])
    a, b = platt(oof[chosen][held], y[held], w[held])
    if chosen in WITHIN_MODELS:
        representation, label = chosen, within_label(chosen)
        model, mean, scale = fit_within(feats, items, np.arange(len(items)), label, five_kinds(chosen))
    else:
        representation, label = chosen.split(" ")[0], "hard" if "hard" in chosen else "soft"
        model, mean, scale = fit(feats, items, representation, np.arange(len(items)), label)
    report.update({"irt": fits, "seed": SEED, "C": C})
    EVAL.mkdir(parents=True, exist_ok=True)
    (EVAL / "cv_report.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    (EVAL / "reliability.svg").write_text(
        reliability_svg(report["calibration_pooled"]["bins"], "Reliability, out-of-source (all folds)"),
        encoding="utf-8",
    )
    write_cv_set(items, p_cv)
    files = sorted(
        str(p.relative_to(ROOT)) for p in DATA.rglob("*.jsonl") if "sanity" not in p.parts
    )  # the sanity prompts are not trained on
    meta = {
        "trained_on": files,
        "rows": len(items),
        "representation": representation,
        "labels": label,
        "target": "P(weak fails and strong succeeds)",
        "left_out_subjects": sorted(LEFT_OUT_SUBJECTS),
        "seed": SEED,
        "commit": commit,
        "heuristic_version": HeuristicScorer.version,
        "cv_mean_apgr": report["apgr_mean"][chosen],
    }
    export(model, mean, scale, feats["names"], a, b, meta, "ngrams" in representation)
    SCALE_FILE.write_text(json.dumps(ability_scale(), indent=1) + "\n", encoding="utf-8")
    note(json.dumps({"apgr_mean": report["apgr_mean"], "chosen": chosen, "best": report["best"]}, indent=1))
    note(f"done in {time.time() - started:.0f}s")
    return report
