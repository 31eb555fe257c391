"""All terminal I/O in one small object, so tests can swap it and TTY behaviour is testable."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import BinaryIO, TextIO


@dataclass
class Terminal:
    stdin: BinaryIO = field(default_factory=lambda: sys.stdin.buffer)
    stdout: BinaryIO = field(default_factory=lambda: sys.stdout.buffer)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    stdout_isatty: bool | None = None
    stdin_isatty: bool | None = None

    def __post_init__(self) -> None:
        if self.stdout_isatty is None:
            self.stdout_isatty = _isatty(self.stdout)
        if self.stdin_isatty is None:
            self.stdin_isatty = _isatty(self.stdin)

    @property
    def color(self) -> bool:
        return bool(self.stdout_isatty) and "NO_COLOR" not in os.environ

    def write(self, data: bytes) -> None:
        self.stdout.write(data)
        self.stdout.flush()

    def note(self, text: str) -> None:
        """Routing notes, progress and warnings: stderr, never stdout."""
        print(text, file=self.stderr, flush=True)


def _isatty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        return False
