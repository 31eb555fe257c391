"""A fake Anthropic Messages server: POST /v1/messages, JSON or SSE.

The stream follows Anthropic's event grammar: message_start, ping, then per content block
content_block_start / content_block_delta (text_delta or input_json_delta) / content_block_stop,
then message_delta (stop_reason, output usage) and message_stop; every event as
`event: <type>` + `data: <json>`. Errors carry `{"type": "error", "error": {"type", "message"}}`
and a `request-id` header; overloaded is 529 `overloaded_error`.
"""

from __future__ import annotations

from typing import Any

import orjson

from tests.fakes import FakeServer, Recorded, Turn, _Handler
from tests.fakes.faults import Fault

ERRORS = {
    400: ("invalid_request_error", 'messages: roles must alternate between "user" and "assistant"'),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "model: missing"),
    408: ("timeout_error", "Request timed out"),
    409: ("invalid_request_error", "Conflict"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
    500: ("api_error", "Internal server error"),
    503: ("api_error", "Service unavailable"),
    529: ("overloaded_error", "Overloaded"),
}
CONTEXT = ("invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum")


def error(status: int, kind: str | None = None) -> dict[str, Any]:
    kind_, message = CONTEXT if kind == "context" else ERRORS.get(status, ("api_error", f"HTTP {status}"))
    return {"type": "error", "error": {"type": kind_, "message": message}, "request_id": "req_fake"}


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


class AnthropicFake(FakeServer):
    name = "anthropic"

    def error_body(self, status: int, kind: str | None = None) -> dict[str, Any]:
        return error(status, kind)

    def handle(self, http: _Handler, request: Recorded, fault: Fault | None) -> None:
        if request.method != "POST" or request.path.split("?")[0].rstrip("/") != "/v1/messages":
            http.send_json(404, {"type": "error", "error": {"type": "not_found_error", "message": "Not Found"}})
            return
        # x-api-key (the documented header) or Authorization: Bearer (what recent SDKs send)
        if self.api_key and self.api_key not in (
            request.headers.get("x-api-key"),
            request.headers.get("authorization", "")[7:],
        ):
            http.send_json(401, error(401), {"request-id": "req_fake"})
            return
        body = request.json
        if not body.get("max_tokens"):
            http.send_json(
                400,
                {"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"}},
            )
            return
        turn = self.turn(body)
        model = body.get("model", "claude-fake")
        if body.get("stream"):
            http.start_stream("text/event-stream; charset=utf-8", {"request-id": "req_fake"})
            if fault is not None and fault.kind == "malformed":
                http.send_piece(b'event: message_start\ndata: {"type": "message_start", "message": {"id": \n\n')
                http.end_stream()
                return
            http.stream_events(stream_events(turn, model), fault)
            return
        if fault is not None and fault.kind == "malformed":
            http.send_json(200, b'{"id": "msg_fake", "type": "message", "content": [{"type": "te')
            return
        http.send_json(200, message(turn, model), {"request-id": "req_fake"})

    def turn(self, body: dict[str, Any]) -> Turn:
        messages = body.get("messages") or []
        texts = [_text(m.get("content")) for m in messages]
        system = body.get("system")
        if system:
            texts.append(system if isinstance(system, str) else _text(system))
        tool_result = None
        if messages and isinstance(messages[-1].get("content"), list):
            results = [b for b in messages[-1]["content"] if b.get("type") == "tool_result"]
            if results:
                tool_result = _text(results[-1].get("content"))
        names = [t["name"] for t in body.get("tools") or []]
        return self.decide(texts, names, tool_result)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def _content(turn: Turn) -> list[dict[str, Any]]:
    if turn.tool_name:
        return [{"type": "tool_use", "id": "toolu_fake1", "name": turn.tool_name, "input": turn.tool_args}]
    return [{"type": "text", "text": turn.text}]


def message(turn: Turn, model: str) -> dict[str, Any]:
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": _content(turn),
        "stop_reason": "tool_use" if turn.tool_name else "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": turn.prompt_tokens,
            "output_tokens": turn.completion_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


def stream_events(turn: Turn, model: str) -> list[bytes]:
    start = {**message(turn, model), "content": [], "stop_reason": None}
    start["usage"] = {**start["usage"], "output_tokens": 1}
    events = [sse("message_start", {"type": "message_start", "message": start}), sse("ping", {"type": "ping"})]
    if turn.tool_name:
        events.append(
            sse(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "tool_use", "id": "toolu_fake1", "name": turn.tool_name, "input": {}},
                },
            )
        )
        arguments = orjson.dumps(turn.tool_args).decode()
        for piece in ("", arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
            events.append(
                sse(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "input_json_delta", "partial_json": piece},
                    },
                )
            )
    else:
        events.append(
            sse(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            )
        )
        for word in turn.words():
            events.append(
                sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}},
                )
            )
    events.append(sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
    stop = "tool_use" if turn.tool_name else "end_turn"
    events.append(
        sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": turn.completion_tokens},
            },
        )
    )
    events.append(sse("message_stop", {"type": "message_stop"}))
    return events


def overloaded_event() -> bytes:
    """The `error` event Anthropic sends inside a stream that had started fine."""
    return sse("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
