"""A provider credential as r42 hands it around: the secret and where it came from.

Its own module so that both r42.availability (which finds credentials) and r42.store (which keeps
them) can use it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Credential:
    secret: str
    source: str  # "env OPENAI_API_KEY", "store", "store (user alice)": never the secret itself

    def __repr__(self) -> str:  # keep secrets out of logs and tracebacks
        return f"Credential(source={self.source!r})"
