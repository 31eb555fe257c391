"""A fake Ollama server: POST /api/chat, JSON (`"stream": false`) or an NDJSON stream (the default).

Stream lines are `{"model", "created_at", "message": {"role", "content"[, "tool_calls"]}, "done": false}`
and a last line with `"done": true`, `done_reason` and the counts (prompt_eval_count, eval_count,
durations). Errors are `{"error": "..."}` with the HTTP status; an error inside a stream is an
`{"error": ...}` line.
"""

from __future__ import annotations

from typing import Any

import orjson

from tests.fakes import FakeServer, Recorded, Turn, _Handler
from tests.fakes.faults import Fault

CREATED_AT = "2026-11-22T10:00:00.000000Z"
ERRORS = {
    400: "invalid request",
    404: 'model "missing" not found, try pulling it first',
    429: "too many requests",
    500: "llama runner process has terminated: exit status 2",
    503: "server busy, please try again.  maximum pending requests exceeded",
}


class OllamaFake(FakeServer):
    name = "ollama"

    def error_body(self, status: int, kind: str | None = None) -> dict[str, Any]:
        if kind == "context":
            return {"error": "the input length exceeds the context length"}
        return {"error": ERRORS.get(status, f"HTTP {status}")}

    def handle(self, http: _Handler, request: Recorded, fault: Fault | None) -> None:
        path = request.path.split("?")[0].rstrip("/")
        if path == "/api/tags":
            http.send_json(200, {"models": [{"name": "fake:latest", "model": "fake:latest"}]})
            return
        if request.method != "POST" or path != "/api/chat":
            http.send_json(404, {"error": "404 page not found"})
            return
        body = request.json
        turn = self.turn(body)
        model = body.get("model", "fake")
        if body.get("stream", True):
            http.start_stream("application/x-ndjson")
            if fault is not None and fault.kind == "malformed":
                http.send_piece(b'{"model": "fake", "message": {"role": "assis\n')
                http.end_stream()
                return
            http.stream_events(stream_lines(turn, model), fault)
            return
        if fault is not None and fault.kind == "malformed":
            http.send_json(200, b'{"model": "fake", "message": ')
            return
        http.send_json(200, final(turn, model, whole=True))

    def turn(self, body: dict[str, Any]) -> Turn:
        messages = body.get("messages") or []
        texts = [m.get("content") or "" for m in messages]
        last = messages[-1] if messages else {}
        tool_result = last.get("content", "") if last.get("role") == "tool" else None
        names = [t["function"]["name"] for t in body.get("tools") or []]
        return self.decide(texts, names, tool_result)


def _message(turn: Turn, text: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if turn.tool_name:
        message["tool_calls"] = [{"function": {"name": turn.tool_name, "arguments": turn.tool_args}}]
    return message


def final(turn: Turn, model: str, whole: bool) -> dict[str, Any]:
    return {
        "model": model,
        "created_at": CREATED_AT,
        "message": _message(turn, turn.text) if whole else {"role": "assistant", "content": ""},
        "done_reason": "stop",
        "done": True,
        "total_duration": 5_000_000,
        "load_duration": 1_000_000,
        "prompt_eval_count": turn.prompt_tokens,
        "prompt_eval_duration": 1_000_000,
        "eval_count": turn.completion_tokens,
        "eval_duration": 3_000_000,
    }


def stream_lines(turn: Turn, model: str) -> list[bytes]:
    lines = []
    if turn.tool_name:
        lines.append({"model": model, "created_at": CREATED_AT, "message": _message(turn, ""), "done": False})
    else:
        lines.extend(
            {"model": model, "created_at": CREATED_AT, "message": {"role": "assistant", "content": w}, "done": False}
            for w in turn.words()
        )
    lines.append(final(turn, model, whole=False))
    return [orjson.dumps(line) + b"\n" for line in lines]
