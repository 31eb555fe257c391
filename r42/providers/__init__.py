"""Provider adapters: one per wire protocol, all behind the same small interface.

An adapter takes an OpenAI chat-completions request (with `model` set to the provider's own model
name) and returns a `chat.completion` dict, or yields `chat.completion.chunk` dicts when streaming;
whatever the protocol on the wire, r42 and its gateway see OpenAI chat.

Failures are a ProviderError whose `retryable` says whether the executor should move on to the
next candidate. SDKs are imported only when their adapter is opened, so `r42 score` and `r42 rank`
never pay for them; their own retries are off, because r42's fallback decides.
"""

from __future__ import annotations

import email.utils
import importlib
import re
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Protocol

from r42.protocols import ADAPTERS


@dataclass(frozen=True)
class Endpoint:
    """Where and how to reach one provider."""

    provider: str  # the provider id in the catalog, e.g. "groq"
    protocol: str  # openai | anthropic | gemini | ollama
    base_url: str
    api_key: str | None = field(default=None, repr=False)  # never printed
    connect_timeout: float = 5.0
    read_timeout: float = 120.0  # to the first byte, and between two chunks of a stream


class Adapter(Protocol):
    endpoint: Endpoint

    def complete(self, request: dict[str, Any]) -> dict[str, Any]:
        """The whole answer: an OpenAI chat.completion dict."""

    def stream(self, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The answer as it is produced: OpenAI chat.completion.chunk dicts; the last one carries
        `usage` when the provider reports it."""

    def close(self) -> None: ...


class ProviderError(Exception):
    """A failed call. `status` is the HTTP status (None for connection errors and timeouts)."""

    def __init__(self, status: int | None, message: str, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.status} {self.message}" if self.status else self.message

    def __repr__(self) -> str:
        return (
            f"ProviderError(status={self.status!r}, message={self.message!r}, "
            f"retryable={self.retryable}, retry_after={self.retry_after})"
        )


def open_adapter(endpoint: Endpoint) -> Adapter:
    """The adapter for the endpoint's protocol (its SDK imported now, not before)."""
    where = ADAPTERS.get(endpoint.protocol)
    if where is None:
        raise ProviderError(None, f"unknown protocol {endpoint.protocol!r}", retryable=True)
    module, _, name = where.partition(":")
    cls = getattr(importlib.import_module(module), name)
    return cls(endpoint)


# --- classifying failures ------------------------------------------------------------------------

# 401 and 403 are about this provider's credential, not the request: a stale OPENAI_API_KEY must
# not stop a request that Anthropic would answer. (The issue lists only 408/409/429/5xx; this is a
# deliberate widening, documented in the README.)
RETRYABLE_STATUS = frozenset({401, 403, 408, 409, 425, 429, 529})
# Errors that are about this model rather than the request: another model may well succeed.
MOVE_ON_PATTERNS = re.compile(
    r"context[_ ]length|context window|maximum context|too many tokens|prompt is too long|input is too long"
    r"|reduce the length|exceeds the (model's )?(maximum|max)|token limit"
    r"|does not support tools|tools? (are|is) not supported|tool use is not supported|not support function"
    r"|function calling is not (enabled|supported)|overloaded|capacity|temporarily unavailable"
    r"|model[_ ]not[_ ]found|model .{0,80}(not found|does not exist)|try pulling it",
    re.IGNORECASE,
)
MAX_MESSAGE = 300


def is_retryable(status: int | None, message: str) -> bool:
    if status is None or status in RETRYABLE_STATUS or status >= 500:
        return True
    return bool(MOVE_ON_PATTERNS.search(message))


def provider_error(
    status: int | None, message: str, retry_after: float | None = None, secret: str | None = None
) -> ProviderError:
    """A classified ProviderError with a short message that never contains the secret."""
    text = redact(" ".join(str(message).split()), secret)
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 3] + "..."
    return ProviderError(status, text or f"HTTP {status}", is_retryable(status, text), retry_after)


def redact(text: str, secret: str | None) -> str:
    if secret and len(secret) >= 4:
        text = text.replace(secret, "***")
    return re.sub(r"\b(sk|key|AIza)[-_A-Za-z0-9]{16,}", "***", text)


def retry_after_of(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from Retry-After (seconds or an HTTP date) or retry-after-ms."""
    if not headers:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, parsed.timestamp() - time.time())


def transport_error_types() -> tuple[type[BaseException], ...]:
    """httpx's (and, for SDKs built on it, httpx2's) transport errors: resets, timeouts, broken
    chunked bodies. SDKs let these through unwrapped once a stream is being read."""
    import httpx

    types: list[type[BaseException]] = [httpx.HTTPError]
    try:
        import httpx2  # the transport of recent anthropic / google-genai SDKs

        types.append(httpx2.HTTPError)
    except ImportError:
        pass
    return tuple(types)


def transport_message(exc: BaseException) -> str:
    """A short description of a transport error (timeouts and resets named as such)."""
    name = type(exc).__name__
    if "Timeout" in name:
        return f"timeout ({name}): {exc}" if str(exc) else f"timeout ({name})"
    if "Connect" in name:
        return f"cannot connect: {exc}"
    return f"connection broken ({name}): {exc}"


def error_message(body: Any, fallback: str) -> str:
    """The human part of an error body, in any of the providers' shapes."""
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            message = error.get("message") or error.get("detail") or error.get("type")
            kind = error.get("type") or error.get("status") or error.get("code")
            if message:
                return f"{kind}: {message}" if isinstance(kind, str) and kind not in str(message) else str(message)
        elif isinstance(error, str):
            return error
        for key in ("message", "detail"):
            if isinstance(body.get(key), str):
                return body[key]
    return fallback
