"""Gateway errors and their two wire shapes: OpenAI's on OpenAI endpoints, Anthropic's on /v1/messages.

Both carry the request id, in the body and in the X-R42-Request-Id header, so that a user can find
the routing log row of a failed request.
"""

from __future__ import annotations

from typing import Any

import orjson

from r42.errors import AllFailedError, InputError, NoCandidateError, NoCredentialsError, R42Error, UsageError

OPENAI_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
    408: "timeout_error", 413: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error",
}
ANTHROPIC_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
    408: "timeout_error", 413: "request_too_large", 422: "invalid_request_error", 429: "rate_limit_error", 529: "overloaded_error",
}


class GatewayError(Exception):
    """A request the gateway answers with an error status."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: list[tuple[str, str]] | None = None,
                 param: str | None = None, kind: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind  # the body's error type, when not the status's usual one (e.g. key_expired)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or []
        self.param = param


def from_core(exc: R42Error) -> GatewayError:
    """The HTTP status for an error of r42's core."""
    message = exc.one_line()
    if isinstance(exc, NoCredentialsError):  # a 4xx: clients must not retry what only configuration fixes
        return GatewayError(400, message, "no_provider_configured")
    if isinstance(exc, NoCandidateError):
        code = "model_not_found" if exc.message.startswith("unknown model") else "no_candidate"
        return GatewayError(404 if code == "model_not_found" else 400, message, code)
    if isinstance(exc, AllFailedError):
        return _all_failed(exc, message)
    if isinstance(exc, (InputError, UsageError)):
        return GatewayError(400, message, "invalid_request")
    return GatewayError(500, message, "internal_error")


def _all_failed(exc: AllFailedError, message: str) -> GatewayError:
    """Every candidate failed: the upstream's own 4xx when it rejected the request itself
    (another model would too), 429 when every attempt was rate limited, else 502."""
    attempts = getattr(exc, "attempts", None) or []
    statuses = [a.status for a in attempts if not a.ok]
    if statuses and statuses[-1] is not None and 400 <= statuses[-1] < 500 and statuses[-1] not in (408, 409, 429):
        return GatewayError(statuses[-1], message, "upstream_rejected")
    if statuses and all(s == 429 for s in statuses):
        return GatewayError(429, message, "upstream_rate_limited", [("Retry-After", "1")])
    return GatewayError(502, message, "all_candidates_failed")


def openai_body(error: GatewayError, request_id: str) -> bytes:
    fallback = "server_error" if error.status >= 500 else "invalid_request_error"
    kind = error.kind or OPENAI_TYPES.get(error.status, fallback)
    body: dict[str, Any] = {"message": error.message, "type": kind, "param": error.param, "code": error.code}
    return orjson.dumps({"error": body, "request_id": request_id})


def anthropic_body(error: GatewayError, request_id: str) -> bytes:
    kind = error.kind or ANTHROPIC_TYPES.get(error.status, "api_error")
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": error.message}, "request_id": request_id})


def sse_error_openai(error: GatewayError, request_id: str) -> bytes:
    """A failure after a stream has begun: one `data:` event with OpenAI's error object."""
    return b"data: " + openai_body(error, request_id) + b"\n\n"


def sse_error_anthropic(error: GatewayError, request_id: str) -> bytes:
    return b"event: error\ndata: " + anthropic_body(error, request_id) + b"\n\n"
