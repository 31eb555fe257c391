"""A fake OpenAI chat-completions server: POST {base}/chat/completions, JSON or SSE.

The stream is what api.openai.com sends: `data: {chat.completion.chunk}` events, the first with
`delta.role`, text and tool-call pieces, a chunk with `finish_reason`, a usage chunk with empty
`choices` when `stream_options.include_usage` is set, then `data: [DONE]`. Errors carry OpenAI's
body `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from tests.fakes import FakeServer, Recorded, Turn, _Handler
from tests.fakes.faults import Fault

ERRORS = {
    400: ("invalid_request_error", None, "Invalid value for 'messages'."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided: sk-fake***. You can find your API key at https://platform.openai.com/account/api-keys.",
    ),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model `missing` does not exist or you do not have access to it.",
    ),
    408: ("server_error", None, "Request timed out."),
    409: ("server_error", None, "Conflict: the request is already being processed."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again in 1s."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}
CONTEXT = (
    "invalid_request_error",
    "context_length_exceeded",
    "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens. "
    "Please reduce the length of the messages.",
)


def error(status: int, kind: str | None = None) -> dict[str, Any]:
    kind_, code, message = (
        CONTEXT if kind == "context" else ERRORS.get(status, ("server_error", None, f"HTTP {status}"))
    )
    return {
        "error": {"message": message, "type": kind_, "param": "messages" if kind == "context" else None, "code": code}
    }


class OpenAIFake(FakeServer):
    name = "openai"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def error_body(self, status: int, kind: str | None = None) -> dict[str, Any]:
        return error(status, kind)

    def handle(self, http: _Handler, request: Recorded, fault: Fault | None) -> None:
        if request.method == "GET" and request.path.rstrip("/").endswith("/models"):
            http.send_json(
                200,
                {"object": "list", "data": [{"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake"}]},
            )
            return
        if request.method != "POST" or not request.path.rstrip("/").endswith("/chat/completions"):
            http.send_json(
                404,
                {
                    "error": {
                        "message": f"Unknown request URL: {request.method} {request.path}",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "unknown_url",
                    }
                },
            )
            return
        if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
            http.send_json(401, error(401))
            return
        body = request.json
        turn = self.turn(body)
        model = body.get("model", "fake-model")
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            if fault is not None and fault.kind == "malformed":
                http.start_stream("text/event-stream")
                http.send_piece(b'data: {"id": "chatcmpl-fake", "choices": [{"delta": {"content": "Hel\n\n')
                http.end_stream()
                return
            http.start_stream("text/event-stream; charset=utf-8")
            http.stream_events(stream_events(turn, model, include_usage), fault)
            return
        if fault is not None and fault.kind == "malformed":
            http.send_json(200, b'{"id": "chatcmpl-fake", "object": "chat.completion", "choices": [{"message": ')
            return
        http.send_json(200, completion(turn, model))

    def turn(self, body: dict[str, Any]) -> Turn:
        messages = body.get("messages") or []
        texts = [text_of(m.get("content")) for m in messages]
        last = messages[-1] if messages else {}
        tool_result = text_of(last.get("content")) if last.get("role") == "tool" else None
        names = [t["function"]["name"] for t in body.get("tools") or [] if t.get("type") == "function"]
        return self.decide(texts, names, tool_result)


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _usage(turn: Turn) -> dict[str, int]:
    return {
        "prompt_tokens": turn.prompt_tokens,
        "completion_tokens": turn.completion_tokens,
        "total_tokens": turn.prompt_tokens + turn.completion_tokens,
    }


def completion(turn: Turn, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": turn.text or None, "refusal": None}
    finish = "stop"
    if turn.tool_name:
        message["tool_calls"] = [
            {
                "id": "call_fake1",
                "type": "function",
                "function": {"name": turn.tool_name, "arguments": orjson.dumps(turn.tool_args).decode()},
            }
        ]
        finish = "tool_calls"
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": _usage(turn),
    }


def stream_events(turn: Turn, model: str, include_usage: bool) -> list[bytes]:
    created = int(time.time())

    def event(delta: dict[str, Any] | None, finish: str | None = None, usage: dict[str, int] | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_fake",
        }
        chunk["choices"] = (
            [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        )
        if include_usage:
            chunk["usage"] = usage
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    events = [event({"role": "assistant", "content": "", "refusal": None})]
    if turn.tool_name:
        arguments = orjson.dumps(turn.tool_args).decode()
        events.append(
            event(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_fake1",
                            "type": "function",
                            "function": {"name": turn.tool_name, "arguments": ""},
                        }
                    ]
                }
            )
        )
        for piece in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
            events.append(event({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
        events.append(event({}, "tool_calls"))
    else:
        events.extend(event({"content": word}) for word in turn.words())
        events.append(event({}, "stop"))
    if include_usage:
        events.append(event(None, usage=_usage(turn)))
    events.append(b"data: [DONE]\n\n")
    return events
