"""OpenAI chat <-> Ollama /api/chat (https://github.com/ollama/ollama/blob/main/docs/api.md).

Ollama carries tool-call arguments as objects, images as base64 strings beside the text, and
sampling settings in `options`; a stream is NDJSON whose last line has `done: true` and the counts.
"""

from __future__ import annotations

from typing import Any, Iterator

from r42.formats import openai as oa

DONE_TO_FINISH = {"stop": "stop", "length": "length", "load": "stop", "unload": "stop"}


def request_to_ollama(request: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ollama's Client.chat (the /api/chat body without `stream`)."""
    names = _tool_names(request.get("messages") or [])
    params: dict[str, Any] = {
        "model": request["model"],
        "messages": [_message(m, names) for m in request.get("messages") or []],
    }
    if request.get("tools"):
        params["tools"] = [t for t in request["tools"] if t.get("type", "function") == "function"]
    wants_json, schema = oa.json_mode_of(request)
    if wants_json:
        params["format"] = schema or "json"
    options: dict[str, Any] = {}
    for key, name in (
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("seed", "seed"),
        ("presence_penalty", "presence_penalty"),
        ("frequency_penalty", "frequency_penalty"),
    ):
        if request.get(key) is not None:
            options[name] = request[key]
    if oa.max_tokens_of(request):
        options["num_predict"] = oa.max_tokens_of(request)
    if oa.stops_of(request):
        options["stop"] = oa.stops_of(request)
    if options:
        params["options"] = options
    return params


def _tool_names(messages: list[dict[str, Any]]) -> dict[str, str]:
    """tool_call_id -> function name, since Ollama's tool messages name the tool, not the call."""
    return {
        c.get("id", ""): (c.get("function") or {}).get("name", "") for m in messages for c in m.get("tool_calls") or []
    }


def _message(message: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    role = message.get("role")
    if role == "developer":
        role = "system"
    if role in ("tool", "function"):
        out = {"role": "tool", "content": oa.text_of(message.get("content"))}
        name = names.get(message.get("tool_call_id", "")) or message.get("name")
        if name:
            out["tool_name"] = name
        return out
    parts = oa.parts_of(message.get("content"))
    out = {"role": role, "content": oa.text_of(parts)}
    images = [
        inline[1]
        for inline in (oa.split_data_url(oa.image_url_of(p) or "") for p in parts if p.get("type") == "image_url")
        if inline
    ]
    if images:
        out["images"] = images
    calls = message.get("tool_calls") or []
    if calls:
        out["tool_calls"] = [
            {
                "function": {
                    "name": (c.get("function") or {}).get("name", ""),
                    "arguments": oa.parse_arguments((c.get("function") or {}).get("arguments")),
                }
            }
            for c in calls
        ]
    return out


def _calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    calls = []
    for index, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        calls.append(
            oa.tool_call(call.get("id") or f"call_{index}", function.get("name", ""), function.get("arguments"))
        )
    return calls


def _finish(part: dict[str, Any], has_calls: bool) -> str:
    return "tool_calls" if has_calls else DONE_TO_FINISH.get(part.get("done_reason") or "stop", "stop")


def response_to_openai(part: dict[str, Any]) -> dict[str, Any]:
    message = part.get("message") or {}
    calls = _calls(message)
    out_message = oa.assistant_message(message.get("content") or "", calls)
    if message.get("thinking"):
        out_message["reasoning_content"] = message["thinking"]
    usage = oa.usage(part.get("prompt_eval_count"), part.get("eval_count"))
    return oa.completion(part.get("model", ""), out_message, _finish(part, bool(calls)), usage)


class StreamToOpenAI:
    """Translates the NDJSON parts of an Ollama stream into OpenAI chunks."""

    def __init__(self) -> None:
        self.id = oa.new_id()
        self.started = False
        self.calls = 0
        self.done = False

    def feed(self, part: dict[str, Any]) -> Iterator[dict[str, Any]]:
        model = part.get("model", "")
        message = part.get("message") or {}
        delta: dict[str, Any] = {}
        if not self.started:
            self.started = True
            delta["role"] = "assistant"
        if message.get("content"):
            delta["content"] = message["content"]
        if message.get("thinking"):
            delta["reasoning_content"] = message["thinking"]
        calls = _calls(message)
        if calls:
            delta["tool_calls"] = [{"index": self.calls + i, **call} for i, call in enumerate(calls)]
            self.calls += len(calls)
        if delta:
            yield oa.chunk(self.id, model, delta)
        if part.get("done"):
            self.done = True
            yield oa.chunk(self.id, model, {}, _finish(part, self.calls > 0))
            yield oa.chunk(self.id, model, None, usage=oa.usage(part.get("prompt_eval_count"), part.get("eval_count")))
