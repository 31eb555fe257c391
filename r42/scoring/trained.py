"""The trained scorer: complexity learned from labelled routing data, in pure Python.

p = the mean of two models' estimates of P(the strong model is right and the weak one wrong) for
the prompt:

- a logistic regression over hashed word unigrams and bigrams (CRC32 buckets, L2-normalised counts);
- gradient-boosted trees over a few dozen text statistics (length, digits, maths symbols, the shape
  of multiple-choice options, negations) and the hand-built scorer's complexity and domain cues.

complexity = 0.6 * (p's percentile among out-of-fold MMLU predictions) + 0.4 * the hand-built
scorer's complexity: the percentile puts p on the 0..1 scale the level cut points expect, and the
hand-built part keeps chat and creative prompts (absent from the training data) sensible.

Domains are the hand-built scorer's: the public data with routing labels carries no domain labels
for creative, extraction or chat prompts, so there is nothing yet to learn them from.

The weights (r42/scoring/weights/trained.json, written by scripts/train_scorer.py) load on first
use, never at import of r42.scoring, so `r42 score` with another scorer pays nothing for them.
They record the hand-built scorer's version they were trained with: its features feed the trees.
"""

from __future__ import annotations

import bisect
import math
import re
import zlib
from pathlib import Path
from typing import Any

import orjson

from r42.errors import ConfigError
from r42.scoring import Estimate, Prompt

WEIGHTS = Path(__file__).parent / "weights" / "trained.json"

TOKEN = re.compile(r"[a-z]+|\d+|[^\sa-z\d]", re.IGNORECASE)
WORD = re.compile(r"[A-Za-z]+")
NUMBER = re.compile(r"\d+(?:\.\d+)?")
MATH_SYMBOL = re.compile(r"[=+*/^<>√π∑∫]|\\[a-z]+|\b[a-z]\s*[=<>]")
CHOICE = re.compile(r"^\s*(?:[A-Da-d][.)]|\(\w\))\s*(.*)$", re.MULTILINE)
NEGATION = re.compile(r"\b(?:not|except|false|incorrect|least|never)\b", re.IGNORECASE)
MAX_TEXT = 6_000  # features read at most this much of the prompt: bounded cost per prompt


def hashed_counts(text: str, buckets: int) -> dict[int, float]:
    """Unigram and bigram counts in CRC32 buckets, L2-normalised."""
    tokens = [t.lower() for t in TOKEN.findall(text)]
    counts: dict[int, float] = {}
    for token in tokens:
        key = zlib.crc32(b"u" + token.encode()) % buckets
        counts[key] = counts.get(key, 0.0) + 1.0
    for a, b in zip(tokens, tokens[1:]):
        key = zlib.crc32(("b" + a + " " + b).encode()) % buckets
        counts[key] = counts.get(key, 0.0) + 1.0
    norm = math.sqrt(sum(v * v for v in counts.values())) or 1.0
    return {k: v / norm for k, v in counts.items()}


def text_statistics(text: str, heuristic: Estimate) -> dict[str, float]:
    """The trees' inputs. Names and order are stored with the weights."""
    words = WORD.findall(text)
    n_words = len(words) or 1
    choices = CHOICE.findall(text)
    choice_lengths = [len(c) for c in choices] or [0]
    stats = {
        "log_chars": math.log1p(len(text)),
        "log_words": math.log1p(n_words),
        "log_lines": math.log1p(text.count("\n") + 1),
        "digit_frac": sum(c.isdigit() for c in text) / max(1, len(text)),
        "log_nums": math.log1p(len(NUMBER.findall(text))),
        "math_syms": math.log1p(len(MATH_SYMBOL.findall(text))),
        "avg_wlen": sum(map(len, words)) / n_words,
        "long_frac": sum(len(w) >= 9 for w in words) / n_words,
        "cap_frac": sum(w[0].isupper() for w in words) / n_words,
        "qmarks": float(min(text.count("?"), 5)),
        "neg": float(min(len(NEGATION.findall(text)), 5)),
        "n_choices": float(len(choices)),
        "choice_mean": math.log1p(sum(choice_lengths) / len(choice_lengths)),
        "choice_max": math.log1p(max(choice_lengths)),
        "choice_num": sum(bool(NUMBER.fullmatch(c.strip().rstrip("."))) for c in choices) / max(1, len(choices)),
        "heur": heuristic.complexity,
    }
    for domain, p in heuristic.domains.items():
        stats["dom_" + domain] = p
    return stats


def tree_output(nodes: list[list[Any]], row: list[float]) -> float:
    """Walk one tree. A node is [feature, threshold, left, right, missing_left] or [value] for a leaf."""
    node = nodes[0]
    while len(node) > 1:
        feature, threshold, left, right, _ = node
        node = nodes[left if row[feature] <= threshold else right]
    return node[0]


def percentile_of(p: float, table: list[float]) -> float:
    """Where p falls among the 101 stored quantiles, linearly interpolated: 0..1."""
    if p <= table[0]:
        return 0.0
    if p >= table[-1]:
        return 1.0
    i = bisect.bisect_right(table, p) - 1
    width = table[i + 1] - table[i]
    return (i + ((p - table[i]) / width if width > 0 else 0.0)) / (len(table) - 1)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x > -700 else 0.0


class TrainedScorer:
    name = "trained"

    def __init__(self, weights_path: Path = WEIGHTS) -> None:
        try:
            weights = orjson.loads(weights_path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ConfigError(f"cannot load the trained scorer's weights: {exc}", "reinstall r42 or use --scorer heuristic") from None
        from r42.scoring.heuristic import HeuristicScorer

        self._heuristic = HeuristicScorer()
        self.version = str(weights["version"])
        self.meta = weights["meta"]
        linear = weights["linear"]
        self._buckets = int(linear["buckets"])
        self._coef: list[float] = linear["coef"]
        self._intercept = float(linear["intercept"])
        trees = weights["trees"]
        self._features: list[str] = trees["features"]
        self._baseline = float(trees["baseline"])
        self._trees: list[list[list[Any]]] = trees["trees"]
        self._blend = float(weights["blend"]["weight"])
        self._percentiles: list[float] = weights["blend"]["percentiles"]

    def estimate(self, prompt: Prompt) -> Estimate:
        text = prompt.last_user[:MAX_TEXT]
        heuristic = self._heuristic.estimate(prompt)
        linear = self._intercept + sum(self._coef[k] * v for k, v in hashed_counts(text, self._buckets).items())
        stats = text_statistics(text, heuristic)
        row = [stats[name] for name in self._features]
        boosted = self._baseline + sum(tree_output(tree, row) for tree in self._trees)
        p_linear, p_trees = _sigmoid(linear), _sigmoid(boosted)
        learned = percentile_of((p_linear + p_trees) / 2.0, self._percentiles)
        complexity = self._blend * learned + (1.0 - self._blend) * heuristic.complexity
        signals = {
            "p_weak_fails": round((p_linear + p_trees) / 2.0, 4),  # P(strong right, weak wrong) as learned
            "learned_percentile": round(learned, 4),
            "heuristic": round(heuristic.complexity, 4),
            "domains_from": "heuristic",
        }
        return Estimate(complexity, heuristic.domains, signals)
