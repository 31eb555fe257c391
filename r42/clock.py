"""The wall clock that key expiry and webhook windows read: `time.time` unless a test injects another.

from r42 import clock
clock.now()                  # unix seconds
with clock.using(lambda: t): # tests: a clock they move themselves
    ...
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator

Source = Callable[[], float]
_source: Source = time.time


def now() -> float:
    """The current time in unix seconds, from the injected source."""
    return _source()


def set_source(source: Source | None) -> None:
    """Read time from `source` from now on (None: back to time.time)."""
    global _source
    _source = source or time.time


@contextmanager
def using(source: Source) -> Iterator[None]:
    """Read time from `source` inside the block."""
    previous = _source
    set_source(source)
    try:
        yield
    finally:
        set_source(previous)


class FakeClock:
    """A clock that moves only when told: `FakeClock(t0)`, `.advance(seconds)`, `.t`."""

    def __init__(self, start: float | None = None) -> None:
        self.t = time.time() if start is None else start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> float:
        self.t += seconds
        return self.t
