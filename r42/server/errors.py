"""Gateway errors and their two wire shapes: OpenAI's on OpenAI endpoints, Anthropic's on /v1/messages.

Both carry the request id, in the body and in the X-R42-Request-Id header, so that a user can find
the routing log row of a failed request.
"""

from __future__ import annotations

import math
import re
from typing import Any

import orjson

from r42.errors import AllFailedError, InputError, NoCandidateError, NoCredentialsError, R42Error, UsageError

OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


class GatewayError(Exception):
    """A request the gateway answers with an error status."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        param: str | None = None,
        kind: str | None = None,
        attempts: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.attempts = attempts  # each upstream attempt (model, status, kind, message) when upstreams failed
        self.kind = kind  # the body's error type, when not the status's usual one (e.g. key_expired)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or []
        self.param = param


def from_core(exc: R42Error) -> GatewayError:
    """The HTTP status for an error of r42's core. What only configuration can fix (no provider, no
    model that can serve the request) is a 400: clients retry 408, 409, 429 and 5xx, for minutes."""
    details = attempt_details(getattr(exc, "attempts", None) or [])
    if isinstance(exc, NoCredentialsError):
        return GatewayError(400, exc.one_line(), "no_provider_configured", attempts=details or None)
    if isinstance(exc, NoCandidateError):
        code = "model_not_found" if exc.message.startswith("unknown model") else "no_candidate"
        return GatewayError(404 if code == "model_not_found" else 400, exc.one_line(), code)
    if isinstance(exc, AllFailedError):
        return _all_failed(exc, details)
    if isinstance(exc, (InputError, UsageError)):
        return GatewayError(400, exc.one_line(), "invalid_request")
    return GatewayError(500, exc.one_line(), "internal_error")


CONTEXT = re.compile(r"context|too many tokens|too long|reduce the length|token limit", re.IGNORECASE)
NOT_CONFIGURED = re.compile(r"^no (credential|base URL)|not installed", re.IGNORECASE)


def attempt_kind(status: int | None, message: str | None) -> str:
    """What went wrong in one upstream attempt, in one word a client can act on."""
    text = message or ""
    if status in (401, 403):
        return "upstream_authentication"
    if status == 429:
        return "rate_limited"
    if status in (503, 529) or "overloaded" in text.lower():
        return "overloaded"
    if status == 408 or "timed out" in text or "timeout" in text.lower():
        return "timeout"
    if status is not None and status >= 500:
        return "server_error"
    if status is not None:
        return "context_too_long" if CONTEXT.search(text) else "rejected"
    return "not_configured" if NOT_CONFIGURED.search(text) else "connection"


def attempt_details(attempts: list[Any]) -> list[dict[str, Any]]:
    """The failed attempts of a request for its error body: model, status, kind, the upstream's message."""
    return [
        {"model": a.model, "status": a.status, "kind": attempt_kind(a.status, a.error), "message": a.error}
        for a in attempts
        if not a.ok
    ]


def _described(exc: AllFailedError, details: list[dict[str, Any]]) -> str:
    """`every candidate failed (2 attempts): openai/gpt-4o: 429 rate_limited (Rate limit ...); ...`"""
    parts = []
    for d in details:
        status = f"{d['status']} " if d["status"] else ""
        text = (d["message"] or "")[:160]
        parts.append(f"{d['model']}: {status}{d['kind']}" + (f" ({text})" if text else ""))
    return " ".join(exc.message.split()) + (": " + "; ".join(parts) if parts else "")


def _all_failed(exc: AllFailedError, details: list[dict[str, Any]]) -> GatewayError:
    """Every candidate failed. The provider key of the operator rejected: 502 upstream_authentication
    (a 401 would read as a wrong gateway key). The upstream's own 4xx when it rejected the request
    itself (another model would too); 429 with the upstream's Retry-After when every attempt was
    rate limited, 529 when every one was overloaded (Anthropic's status); else 502."""
    message = _described(exc, details)
    statuses = [d["status"] for d in details]
    retry_after = getattr(exc, "retry_after", None)
    wait = [("Retry-After", str(max(1, math.ceil(retry_after))))] if retry_after is not None else []
    last = statuses[-1] if statuses else None
    if last in (401, 403):
        return GatewayError(502, message, "upstream_authentication", kind="upstream_authentication", attempts=details)
    if last is not None and 400 <= last < 500 and last not in (408, 409, 429):
        return GatewayError(last, message, "upstream_rejected", attempts=details)
    if statuses and all(s == 429 for s in statuses):
        return GatewayError(429, message, "upstream_rate_limited", wait or [("Retry-After", "1")], attempts=details)
    if statuses and all(s == 529 for s in statuses):
        return GatewayError(529, message, "upstream_overloaded", wait, attempts=details)
    return GatewayError(502, message, "all_candidates_failed", wait, attempts=details)


def openai_body(error: GatewayError, request_id: str) -> bytes:
    fallback = "server_error" if error.status >= 500 else "invalid_request_error"
    kind = error.kind or OPENAI_TYPES.get(error.status, fallback)
    body: dict[str, Any] = {"message": error.message, "type": kind, "param": error.param, "code": error.code}
    if error.attempts:
        body["attempts"] = error.attempts
    return orjson.dumps({"error": body, "request_id": request_id})


def anthropic_body(error: GatewayError, request_id: str) -> bytes:
    kind = error.kind or ANTHROPIC_TYPES.get(error.status, "api_error")
    body: dict[str, Any] = {"type": kind, "message": error.message}
    if error.attempts:
        body["attempts"] = error.attempts
    return orjson.dumps({"type": "error", "error": body, "request_id": request_id})


def sse_error_openai(error: GatewayError, request_id: str) -> bytes:
    """A failure after a stream has begun: one `data:` event with OpenAI's error object."""
    return b"data: " + openai_body(error, request_id) + b"\n\n"


def sse_error_anthropic(error: GatewayError, request_id: str) -> bytes:
    return b"event: error\ndata: " + anthropic_body(error, request_id) + b"\n\n"
