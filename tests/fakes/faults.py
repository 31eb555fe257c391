"""Faults a fake can inject into one response (queue them with `server.fail(...)`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Fault:
    kind: str  # status | slow | reset | truncate | malformed
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # a custom error body; None: the provider's real one for `status`
    error_kind: str | None = None  # which of the provider's error bodies (e.g. "context")
    delay: float = 0.0
    after: int = 0  # stream events sent before a reset or a truncation


def status(code: int, retry_after: float | None = None, body: Any = None, kind: str | None = None) -> Fault:
    """An HTTP error with the provider's real body for that status."""
    headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
    return Fault("status", status=code, headers=headers, body=body, error_kind=kind)


def rate_limited(retry_after: float | None = 1) -> Fault:
    return status(429, retry_after=retry_after)


def overloaded() -> Fault:
    """Anthropic's 529 overloaded_error (other fakes answer 503 with their own body)."""
    return status(529, kind="overloaded")


def context_too_long() -> Fault:
    return status(400, kind="context")


def bad_request() -> Fault:
    return status(400, kind="invalid")


def unauthorized() -> Fault:
    return status(401)


def slow_first_byte(seconds: float) -> Fault:
    """Wait this long before sending anything (the fake wakes up early when it is stopped)."""
    return Fault("slow", delay=seconds)


def reset_mid_stream(after: int = 2) -> Fault:
    """Send `after` stream events, then abort the connection (TCP RST)."""
    return Fault("reset", after=after)


def truncated_stream(after: int = 2) -> Fault:
    """Send `after` stream events, then end the response cleanly without the protocol's terminator."""
    return Fault("truncate", after=after)


def malformed_json() -> Fault:
    """A 200 whose JSON body (or first stream event) is cut in the middle."""
    return Fault("malformed")
