"""One request as the endpoints see it (`Call`), and what every endpoint module shares: JSON in
and out, the routing headers, the SSE head.

A `Call` is created by the gateway when the request arrives and finished by it when the request
ends: `call.finish()` records the routing-log row once, from what the endpoint noted on the call
along the way (`planned()` when the request was scored and ranked, `ended()` when the answer's
outcome is known). This module imports neither the gateway nor the endpoint modules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import orjson

from r42.errors import R42Error
from r42.executor import CandidatesFailed, StreamBrokenError
from r42.server.errors import GatewayError
from r42.server.http import Channel, Request, Response

MAX_JSON_DEPTH = 64
JSON = "application/json"
SSE_HEADERS = [
    ("Content-Type", "text/event-stream; charset=utf-8"),
    ("Cache-Control", "no-cache"),
    ("X-Accel-Buffering", "no"),
]


@dataclass
class Caller:
    """Who is calling: the user and key record (None for both under --no-auth)."""

    user: str | None = None
    key: Any = None  # r42.store.KeyRecord
    rate_headers: list[tuple[str, str]] = field(default_factory=list)


Recorder = Callable[["Call"], None]
Reserver = Callable[["Call", list[str], dict[str, Any]], None]


@dataclass
class Call:
    """One request: who sent it, how it was routed and how it ended, recorded once by finish()."""

    request: Request
    channel: Channel
    caller: Caller
    endpoint: str
    flavour: str  # "openai" | "anthropic": the error and response shape
    status: int = 200  # the HTTP status answered (499: the client went away)
    error_kind: str | None = None
    record: Recorder | None = None  # set by the gateway for requests that go into the routing log
    reserve: Reserver | None = None  # set by the gateway for keys with a budget: holds the worst case
    usage_id: int | None = None  # the key_usage row counting this admitted request (keys with limits)
    shared: bool = False  # admitted by the Redis counters (redis_url): settled there and in the store
    held_usd: float = 0.0  # the budget hold of this request (Redis), replaced by its real cost
    # What the routing log says, noted by the endpoint as it learns it:
    score: dict[str, Any] | None = None
    mode: str | None = None  # None for a direct request (a model named)
    route: dict[str, Any] | None = None
    outcome: str | None = None  # "ok" | "error" | "client_closed"; None: from the HTTP status
    error: str | None = None
    finished: bool = False

    @property
    def id(self) -> str:
        return self.request.id

    def planned(
        self,
        score: dict[str, Any],
        mode: str | None,
        candidates: list[str] | None = None,
        request: dict[str, Any] | None = None,
    ) -> None:
        """The request was scored (and ranked, when routed); given the candidates and the upstream
        request, a key's budget holds the request's worst-case cost from here on (429 when spent)."""
        self.score, self.mode = score, mode
        if self.reserve is not None and candidates:
            self.reserve(self, candidates, request or {})

    def ended(self, outcome: str, route: dict[str, Any] | None = None, error: str | None = None) -> None:
        """How the answer ended, for the log: "ok", "error" or "client_closed", with its route."""
        self.outcome, self.route, self.error = outcome, route, error

    def failed_upstream(self, exc: Exception) -> None:
        """A routed request failed in the executor: the attempts go into the log (once planned, the
        error's class names it; before that, its code does, as for any other failure)."""
        if self.outcome is None and self.score is not None and isinstance(exc, R42Error):
            self.ended("error", failure_route(exc), type(exc).__name__)

    def finish(self) -> None:
        """Record the request (once; nothing for requests the gateway does not log)."""
        if self.finished or self.record is None:
            return
        self.finished = True
        if self.outcome is None:
            self.outcome, self.error = ("ok" if self.status < 400 else "error"), self.error_kind
        self.record(self)

    def route_headers(self, model: str | None) -> list[tuple[str, str]]:
        """X-R42-* headers of an answer: request id, the model, complexity and mode."""
        headers = [("X-R42-Request-Id", self.id)]
        if model:
            headers.append(("X-R42-Model", model))
        if self.score is not None and self.score.get("complexity") is not None:
            headers.append(("X-R42-Complexity", f"{self.score['complexity']:g}"))
        headers.append(("X-R42-Mode", self.mode or "direct"))
        judged = ((self.score or {}).get("signals") or {}).get("privacy_judge")
        if judged:  # the gateway's privacy judge looked at this prompt (privacy_judge on)
            from r42.privacy_judge import verdict_line

            headers.append(("X-R42-Privacy-Judge", verdict_line(judged)))
        return headers + self.caller.rate_headers


def failure_route(exc: R42Error) -> dict[str, Any]:
    if isinstance(exc, CandidatesFailed):
        return {"attempts": [a.as_dict() for a in exc.attempts]}
    if isinstance(exc, StreamBrokenError):
        return exc.route
    return {}


def presented_key(request: Request) -> str | None:
    """The gateway key from `Authorization: Bearer` or `x-api-key` (never from the query string)."""
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    key = request.headers.get("x-api-key")
    return key.strip() if key else None


def json_response(data: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, orjson.dumps(data), [("Content-Type", JSON), *(headers or [])])


def read_json(call: Call) -> dict[str, Any]:
    """The request body as a JSON object, with a depth limit (400 otherwise)."""
    body = call.request.body
    if not body:
        raise GatewayError(400, "the request has no body; send a JSON object", "invalid_json")
    try:
        with call.request.heavy:  # a big body waits its turn (r42.server.http.LOOP_BODY_MAX)
            data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise GatewayError(400, f"invalid JSON: {exc}", "invalid_json") from None
    if not isinstance(data, dict):
        raise GatewayError(400, f"expected a JSON object, got {type(data).__name__}", "invalid_json")
    # Depth needs at least as many brackets as levels: most bodies are cleared by two counts.
    if body.count(b"{") + body.count(b"[") > MAX_JSON_DEPTH and too_deep(data, MAX_JSON_DEPTH):
        raise GatewayError(400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels", "invalid_json")
    return data


def too_deep(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, (dict, list)))
    return False
