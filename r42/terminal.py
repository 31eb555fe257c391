"""All terminal I/O in one small object, so tests can swap it and TTY behaviour is testable."""

from __future__ import annotations

import os
import sys
from typing import BinaryIO, TextIO


class Terminal:
    def __init__(
        self,
        stdin: BinaryIO | None = None,
        stdout: BinaryIO | None = None,
        stderr: TextIO | None = None,
        stdout_isatty: bool | None = None,
        stdin_isatty: bool | None = None,
    ) -> None:
        self.stdin = stdin if stdin is not None else sys.stdin.buffer
        self.stdout = stdout if stdout is not None else sys.stdout.buffer
        self.stderr = stderr if stderr is not None else sys.stderr
        self.stdout_isatty = _isatty(self.stdout) if stdout_isatty is None else stdout_isatty
        self.stdin_isatty = _isatty(self.stdin) if stdin_isatty is None else stdin_isatty

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
