"""A fake Gemini API: POST /{version}/models/{model}:generateContent and
:streamGenerateContent?alt=sse (each event a whole GenerateContentResponse, `\\r\\n\\r\\n`-separated,
no terminator; the last has finishReason and usageMetadata). The key arrives in `x-goog-api-key`
(or `?key=`). Errors are `{"error": {"code", "message", "status"[, "details"]}}`; a 429 carries
a google.rpc.RetryInfo detail with `retryDelay`.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from tests.fakes import FakeServer, Recorded, Turn, _Handler
from tests.fakes.faults import Fault

STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
MESSAGES = {
    400: "Invalid JSON payload received.",
    401: "API key not valid. Please pass a valid API key.",
    404: "models/missing is not found for API version v1beta, or is not supported for generateContent.",
    429: "You exceeded your current quota, please check your plan and billing details.",
    500: "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
}
PATH = re.compile(r"^/(?P<version>v[^/]+)/models/(?P<model>[^:]+):(?P<method>generateContent|streamGenerateContent)$")


class GeminiFake(FakeServer):
    name = "gemini"

    @property
    def base_url(self) -> str:
        """What GOOGLE_GEMINI_BASE_URL holds: the root, the SDK adds the version."""
        return self.url

    def error_body(self, status: int, kind: str | None = None) -> dict[str, Any]:
        message = (
            "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."
            if kind == "context"
            else MESSAGES.get(status, f"HTTP {status}")
        )
        error: dict[str, Any] = {"code": status, "message": message, "status": STATUS.get(status, "UNKNOWN")}
        if status == 429:
            error["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}]
        return {"error": error}

    def handle(self, http: _Handler, request: Recorded, fault: Fault | None) -> None:
        parts = urlsplit(request.path)
        match = PATH.match(parts.path)
        if request.method != "POST" or not match:
            http.send_json(404, self.error_body(404))
            return
        key = request.headers.get("x-goog-api-key") or (parse_qs(parts.query).get("key") or [None])[0]
        if self.api_key and key != self.api_key:
            http.send_json(
                400,
                {
                    "error": {
                        "code": 400,
                        "message": "API key not valid. Please pass a valid API key.",
                        "status": "INVALID_ARGUMENT",
                    }
                },
            )
            return
        turn = self.turn(request.json)
        model = match.group("model")
        if match.group("method") == "streamGenerateContent":
            http.start_stream("text/event-stream")
            if fault is not None and fault.kind == "malformed":
                http.send_piece(b'data: {"candidates": [{"content": \r\n\r\n')
                http.end_stream()
                return
            http.stream_events(stream_events(turn, model), fault)
            return
        if fault is not None and fault.kind == "malformed":
            http.send_json(200, b'{"candidates": [{"content": {"parts": [')
            return
        http.send_json(200, response(turn, model, [_whole(turn)], "STOP"))

    def turn(self, body: dict[str, Any]) -> Turn:
        contents = body.get("contents") or []
        texts = [p.get("text", "") for c in contents for p in c.get("parts") or []]
        system = body.get("systemInstruction") or {}
        texts += [p.get("text", "") for p in system.get("parts") or []]
        last_parts = contents[-1].get("parts", []) if contents else []
        results = [p["functionResponse"] for p in last_parts if "functionResponse" in p]
        tool_result = None
        if results:
            value = results[-1].get("response") or {}
            tool_result = value.get("result") if isinstance(value.get("result"), str) else orjson.dumps(value).decode()
        names = [d["name"] for t in body.get("tools") or [] for d in t.get("functionDeclarations") or []]
        return self.decide(texts, names, tool_result)


def _whole(turn: Turn) -> dict[str, Any]:
    if turn.tool_name:
        return {"functionCall": {"name": turn.tool_name, "args": turn.tool_args}}
    return {"text": turn.text}


def response(
    turn: Turn, model: str, parts: list[dict[str, Any]], finish: str | None, usage: bool = True
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    out: dict[str, Any] = {"candidates": [candidate], "modelVersion": model, "responseId": "fake-response"}
    if usage:
        out["usageMetadata"] = {
            "promptTokenCount": turn.prompt_tokens,
            "candidatesTokenCount": turn.completion_tokens,
            "totalTokenCount": turn.prompt_tokens + turn.completion_tokens,
        }
    return out


def stream_events(turn: Turn, model: str) -> list[bytes]:
    if turn.tool_name:
        bodies = [response(turn, model, [_whole(turn)], "STOP")]
    else:
        words = turn.words()
        bodies = [
            response(turn, model, [{"text": w}], "STOP" if i == len(words) - 1 else None, usage=i == len(words) - 1)
            for i, w in enumerate(words)
        ]
    return [b"data: " + orjson.dumps(b) + b"\r\n\r\n" for b in bodies]
