"""Baseline scorers for `r42 eval`: prompt length, and a seeded coin.

They exist to be beaten: a router worth using must do clearly better than both.
"""

from __future__ import annotations

import hashlib
import math

from r42.config import DOMAINS
from r42.scoring import Estimate, Prompt

_UNIFORM = {domain: 1.0 / len(DOMAINS) for domain in DOMAINS}


class LengthScorer:
    """complexity rises with the prompt's length in characters (monotonic, so routing by it equals
    routing by raw length); domains uniform."""

    name = "length"
    version = "1"

    def estimate(self, prompt: Prompt) -> Estimate:
        chars = prompt.chars or len(prompt.last_user)
        return Estimate(1.0 - math.exp(-chars / 2000.0), dict(_UNIFORM), {"chars": chars})


class RandomScorer:
    """A uniform pseudo-random complexity derived from the prompt text and a seed: reproducible."""

    name = "random"
    version = "1"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def estimate(self, prompt: Prompt) -> Estimate:
        digest = hashlib.blake2b(
            f"{self.seed}\x00{prompt.context}\x00{prompt.last_user}".encode(), digest_size=8
        ).digest()
        return Estimate(int.from_bytes(digest, "big") / 2**64, dict(_UNIFORM), {"seed": self.seed})
