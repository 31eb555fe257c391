"""How sure are the trained scorer's cross-validation figures? Three bootstraps, deterministic (seed 0):

1. each held-out fold's rows resampled 200 times: the standard error of the default's APGR and of its
   difference from `length` (both scored on the same resample; the README's "MMLU STEM" paragraph);
2. Arena-bench's prompts resampled 60 times, the default refitted on every source each time: the spread of
   the `writing` input's effect in logits (the README's "Writing tasks" paragraph);
3. Arena-bench split in two halves by prompt id (training.split_halves), each half scored by a model
   trained on the other half of every source, with and without `writing` (its column set to 0).

    pip install -e '.[train]' && python scripts/scorer_uncertainty.py      # about a minute on 2 cores

Prints one JSON object on stdout; progress on stderr. Reads data/routing as the training code does.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from r42.scoring import training as T  # noqa: E402

DEFAULT = T.WITHIN_KINDS_CHEAP
FOLD_RESAMPLES = 200
REFITS = 60


def fold_errors(items: list[dict], feats: dict, z: np.ndarray, rng: np.random.Generator) -> list[dict]:
    fold_of = np.array([i["fold"] for i in items])
    out = []
    for fold in T.held_out_folds(fold_of):
        rows = np.where(fold_of == fold)[0]
        own, diff = [], []
        for _ in range(FOLD_RESAMPLES):
            sample = rng.choice(rows, len(rows))
            er = T.eval_rows(items, sample)
            a = T.apgr(z[sample], er)
            own.append(a)
            diff.append(a - T.apgr(feats["length"][sample], er))
        er = T.eval_rows(items, rows)
        out.append(
            {
                "fold": str(fold),
                "apgr": round(T.apgr(z[rows], er), 4),
                "se": round(float(np.std(own)), 4),
                "minus_length": round(T.apgr(z[rows], er) - T.apgr(feats["length"][rows], er), 4),
                "minus_length_se": round(float(np.std(diff)), 4),
            }
        )
    return out


def writing_effect(items: list[dict], feats: dict, rng: np.random.Generator) -> dict:
    """The `writing` input's effect in logits (its coefficient over its scale), refitted on resamples of
    Arena-bench's prompts (the one source with outcomes that has it), every other source kept whole (the
    rated Arena prompts too, whose open requests include 43 writing requests)."""
    fold_of = np.array([i["fold"] for i in items])
    arena, rest = np.where(fold_of == "arena_bench")[0], np.where(fold_of != "arena_bench")[0]
    column = feats["names"].index("writing")

    def effect(rows: np.ndarray) -> float:
        model, _mean, scale = T.fit_within(feats, items, rows, T.within_label(DEFAULT), True)
        return float(model.coef_for("task")[column] / scale[column])  # only an open request has it

    effects = [effect(np.r_[rest, rng.choice(arena, len(arena))]) for _ in range(REFITS)]
    return {
        "prompts_with_it": int(feats["stats"][arena, column].sum()),
        "effect": round(effect(np.arange(len(items))), 3),
        "sd": round(float(np.std(effects)), 3),
        "p2.5": round(float(np.percentile(effects, 2.5)), 3),
        "p97.5": round(float(np.percentile(effects, 97.5)), 3),
        "share_below_0": round(float(np.mean(np.array(effects) < 0)), 3),
    }


def arena_halves(items: list[dict], feats: dict) -> dict:
    arena = np.where(np.array([i["fold"] for i in items]) == "arena_bench")[0]
    without = dict(feats, stats=feats["stats"].copy())
    without["stats"][:, feats["names"].index("writing")] = 0.0
    out = {}
    for name, f in (("with writing", feats), ("without writing", without)):
        z, _prior_only = T.split_half_logits(items, f, DEFAULT)
        out[name] = {
            "own pair": round(T.apgr(z[arena], T.eval_rows(items, arena)), 4),
            "cheap vs strong": round(T.apgr(z[arena], T.eval_rows(items, arena, T.CHEAP_PAIR)), 4),
        }
    return out


def main() -> None:
    rng = np.random.default_rng(T.SEED)
    items, _fits = T.load_items(soft=False)
    feats = T.features(items, with_wordllama=False, with_ngrams=False)
    print("features ready", file=sys.stderr)
    z = T.cross_validate(items, feats, DEFAULT, T.within_label(DEFAULT))
    report = {"folds": fold_errors(items, feats, z, rng)}
    print("fold bootstrap done", file=sys.stderr)
    report["writing"] = writing_effect(items, feats, rng)
    report["arena_halves"] = arena_halves(items, feats)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
