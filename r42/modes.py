"""The mode registry: every routing mode, defined once.

A mode is a name the user picks (`--mode`, R42_MODE, X-R42-Mode, `r42/<mode>` as a model) and the
weights rank gives quality, cost, speed and locality under it. `MODES` (the choices everywhere) is
derived from this table, so a mode cannot be accepted by the CLI and unknown to ranking. Adding a
mode is one entry here; a mode that also filters (local, privacy) or weighs domains (coding) has
that rule in r42.ranking.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Weights:
    quality: float
    cost: float
    speed: float
    local: float = 0.0  # bonus for running on this machine (privacy, no rate limits, no bill)


@dataclass(frozen=True)
class Mode:
    name: str
    weights: Weights | None  # None: computed per prompt from its complexity (auto)


REGISTRY: dict[str, Mode] = {
    mode.name: mode
    for mode in (
        Mode("auto", None),
        Mode("balanced", Weights(0.5, 0.3, 0.2)),
        Mode("quality", Weights(1.0, 0.02, 0.02)),
        Mode("speed", Weights(0.25, 0.1, 0.65)),
        Mode("cost", Weights(0.25, 0.7, 0.05, 0.05)),
        Mode("local", Weights(0.7, 0.0, 0.3)),
        Mode("privacy", Weights(0.6, 0.25, 0.15, 0.1)),
        Mode("coding", Weights(0.7, 0.2, 0.1)),
    )
}
MODES = tuple(REGISTRY)


def mode_weights(mode: str, complexity: float) -> Weights:
    """auto: a simple prompt weighs cost and locality most (a local or cheap model wins), a
    complex one quality (the strongest affordable model wins)."""
    weights = REGISTRY[mode].weights
    if weights is not None:
        return weights
    simple = 1.0 - complexity
    return Weights(0.15 + 0.8 * complexity, 0.75 - 0.7 * complexity, 0.1, 0.35 * simple * simple)
