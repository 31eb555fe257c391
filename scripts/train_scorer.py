"""Train the `trained` scorer, cross-validate it leaving one source out, and write the reports.

    pip install -e '.[train]'          # numpy, scikit-learn (wordllama too, to compare embeddings)
    python scripts/train_scorer.py     # a few minutes on 2 cores; fixed seeds, same output each run

The work is in r42/scoring/training.py (shared with `r42 eval --cv`, which only cross-validates).
Writes r42/scoring/weights/trained.{json,f32}, data/eval/cv_report.json, data/eval/reliability.svg
and data/eval/loso_cv.jsonl (every labelled row with its out-of-source score, for `r42 eval`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from r42.scoring import training  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--representations",
        default=",".join(training.REPRESENTATIONS),
        help="comma-separated representations to cross-validate (default: all)",
    )
    args = parser.parse_args()
    wanted = [r for r in args.representations.split(",") if r]
    unknown = [r for r in wanted if r not in training.REPRESENTATIONS]
    if unknown:
        parser.error(f"unknown representation {unknown[0]!r}; known: {', '.join(training.REPRESENTATIONS)}")
    training.train(wanted, note=lambda message: print(message, file=sys.stderr, flush=True))


if __name__ == "__main__":
    main()
