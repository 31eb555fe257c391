"""One logit scale for prompts and models: P(a model handles a prompt) = sigmoid(ability - difficulty).

The scale is the item-response (Rasch) fit of the competition-maths and Python-output matrices in
data/routing/multi (one ability per named model over both, mean ability 0), written by the training
code to weights/ability.json:

- a catalog model's ability: a straight line from the quality rank computes for it on a prompt (its
  domain mix) to the Rasch ability, fitted by least squares over the models that are both in the
  matrices and in the catalog with measured quality (`quality_to_ability`);
- a prompt's difficulty: the trained scorer's `complexity` is P(the cheap model fails and the strong
  one succeeds); with the reference pair's abilities (gpt-3.5-turbo and gpt-4-turbo in the same fit)
  it is the difficulty d at which sigmoid(strong - d) * (1 - sigmoid(weak - d)) equals that
  probability, on the rising side of that curve (a harder prompt, a larger d; a complexity above the
  curve's peak takes the peak's d).

Shown information only: rank's filter and order still use the required-quality curve (README, "The score").
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Callable

SCALE_FILE = Path(__file__).parent / "weights" / "ability.json"
BISECTION_STEPS = 40  # the interval is at most ~30 logits wide: 40 halvings leave far below 0.001


def sigmoid(x: float) -> float:
    """The logistic function, 0 for very negative x instead of an overflow (also the trained scorer's)."""
    if x < -700:
        return 0.0
    return 1.0 / (1.0 + math.exp(-x))


def _bisect(low: float, high: float, below: Callable[[float], bool]) -> float:
    """The point of [low, high] where `below` turns from true to false (it holds left of it)."""
    for _ in range(BISECTION_STEPS):
        mid = (low + high) / 2
        if below(mid):
            low = mid
        else:
            high = mid
    return (low + high) / 2


@dataclass(frozen=True)
class AbilityScale:
    weak: float  # the reference pair's abilities on the Rasch scale
    strong: float
    intercept: float  # ability = intercept + slope * catalog quality
    slope: float

    def pair_probability(self, difficulty: float) -> float:
        """P(the weak reference model fails and the strong one solves) a prompt of this difficulty."""
        return sigmoid(self.strong - difficulty) * (1.0 - sigmoid(self.weak - difficulty))

    def peak(self) -> float:
        """The difficulty where pair_probability is largest (between the two abilities)."""
        low, high = min(self.weak, self.strong), max(self.weak, self.strong)
        # the curve is unimodal: bisect on the sign of its slope
        return _bisect(low, high, lambda d: self.pair_probability(d + 1e-6) > self.pair_probability(d))

    def difficulty(self, complexity: float) -> float:
        """The prompt difficulty whose pair probability is `complexity` (rising side of the curve)."""
        high = self.peak()
        if complexity >= self.pair_probability(high):
            return high
        return _bisect(self.weak - 30.0, high, lambda d: self.pair_probability(d) < complexity)

    def ability(self, quality: float) -> float:
        return self.intercept + self.slope * quality

    def p_ok(self, quality: float, difficulty: float) -> float:
        """P(a model of this catalog quality handles a prompt of this difficulty)."""
        return sigmoid(self.ability(quality) - difficulty)


@cache
def load_scale(path: Path = SCALE_FILE) -> AbilityScale | None:
    """The shipped scale, read once; None when the file is missing or broken (rank then shows no p_ok)."""
    try:
        raw = json.loads(path.read_bytes())
        line = raw["quality_to_ability"]
        return AbilityScale(
            float(raw["reference"]["weak"]),
            float(raw["reference"]["strong"]),
            float(line["intercept"]),
            float(line["slope"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
