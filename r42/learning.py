"""What rank learns from use: a bounded, decaying score adjustment per user, domain and model.

Evidence: feedback verdicts (good +1, bad -1), failed attempts in the routing log (-0.5 each:
errors and fallbacks) and slow answers (-0.25 each, over SLOW_ANSWER_MS). Each piece of evidence
counts half as much every `feedback_half_life_days`.
The adjustment is MAX_ADJUSTMENT * tanh(evidence / SATURATION): one verdict moves a model by about
0.06, ten consistent ones by nearly 0.25, and nothing moves it further. It all stays on this machine.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

MAX_ADJUSTMENT = 0.25  # in rank-score units (a candidate's score is roughly 0..1)
SATURATION = 4.0  # evidence at which the adjustment reaches tanh(1) = 76% of the maximum
FAILED_ATTEMPT = -0.5
SLOW_ANSWER = -0.25
SLOW_ANSWER_MS = 30_000.0  # an answer that took longer than this counts against its model
WINDOW_DAYS = 90.0  # older evidence is ignored (and mostly decayed anyway)


@dataclass(frozen=True)
class Adjustment:
    value: float
    good: int
    bad: int
    failures: int
    slow: int = 0

    def reason(self, domain: str) -> str:
        parts = [
            f"{n} {label}"
            for n, label in ((self.good, "good"), (self.bad, "bad"), (self.failures, "failed"), (self.slow, "slow"))
            if n
        ]
        return f"learned {self.value:+.2f} from use in {domain} ({', '.join(parts)})"


def _decay(age_s: float, half_life_days: float) -> float:
    return 0.5 ** (max(0.0, age_s) / 86400.0 / half_life_days) if half_life_days > 0 else 1.0


def learned_adjustments(
    user: str | None, half_life_days: float, now: float | None = None
) -> dict[tuple[str, str | None], Adjustment]:
    """(model, domain) -> Adjustment for one user (None: the CLI user), from the store."""
    from r42.store.feedback import learning_reset_time, read_failed_attempts, read_feedback, read_slow_answers

    now = time.time() if now is None else now
    since = max(now - WINDOW_DAYS * 86400.0, learning_reset_time(user))
    evidence: dict[tuple[str, str | None], list[float]] = {}  # key -> [weighted sum, good, bad, failures, slow]

    def add(model: str, domain: str | None, ts: float, weight: float, counter: int) -> None:
        entry = evidence.setdefault((model, domain), [0.0, 0, 0, 0, 0])
        entry[0] += weight * _decay(now - ts, half_life_days)
        entry[counter] += 1

    for ts, model, domain, verdict in read_feedback(user, since):
        add(model, domain, ts, verdict, 1 if verdict > 0 else 2)
    for ts, model, domain in read_failed_attempts(user, since):
        add(model, domain, ts, FAILED_ATTEMPT, 3)
    for ts, model, domain in read_slow_answers(user, since, SLOW_ANSWER_MS):
        add(model, domain, ts, SLOW_ANSWER, 4)
    return {
        key: Adjustment(MAX_ADJUSTMENT * math.tanh(total / SATURATION), int(good), int(bad), int(failures), int(slow))
        for key, (total, good, bad, failures, slow) in evidence.items()
    }


def for_domain(adjustments: dict[tuple[str, str | None], Adjustment], domain: str) -> dict[str, Adjustment]:
    """The adjustments that apply to a prompt of this domain, by model id."""
    return {model: adj for (model, d), adj in adjustments.items() if d == domain and abs(adj.value) >= 0.005}
