"""The OpenAI chat format: builders for completions and chunks, a stream accumulator, helpers.

Also the shared vocabulary the other formats translate to and from.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import orjson

# The keys of an OpenAI chat-completions request that r42 forwards upstream (pipe keys such as
# `score`, `ranking` or a user's own `id` stay home).
REQUEST_KEYS = (
    "messages",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "response_format",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "n",
    "user",
    "reasoning_effort",
    "stream_options",
)


def request_body(doc: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The OpenAI request in a pipe document, without the pipe's own keys."""
    body = {key: doc[key] for key in REQUEST_KEYS if key in doc and doc[key] is not None}
    body["messages"] = messages
    return body


def new_id(prefix: str = "chatcmpl") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int | None, completion_tokens: int | None) -> dict[str, int] | None:
    if prompt_tokens is None and completion_tokens is None:
        return None
    p, c = int(prompt_tokens or 0), int(completion_tokens or 0)
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def completion(
    model: str,
    message: dict[str, Any],
    finish_reason: str | None,
    usage: dict[str, int] | None = None,
    id: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": id or new_id(),
        "object": "chat.completion",
        "created": created or int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}],
    }
    if usage is not None:
        out["usage"] = usage
    return out


def chunk(
    id: str,
    model: str,
    delta: dict[str, Any] | None,
    finish_reason: str | None = None,
    usage: dict[str, int] | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """One chat.completion.chunk; delta None gives the usage-only chunk (empty choices)."""
    out: dict[str, Any] = {
        "id": id,
        "object": "chat.completion.chunk",
        "created": created or int(time.time()),
        "model": model,
    }
    out["choices"] = (
        [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]
    )
    if usage is not None:
        out["usage"] = usage
    return out


def assistant_message(text: str | None, tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not tool_calls else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def tool_call(id: str, name: str, arguments: Any) -> dict[str, Any]:
    """An OpenAI tool call; `arguments` as the JSON text OpenAI uses (dicts are encoded)."""
    text = (
        arguments if isinstance(arguments, str) else orjson.dumps(arguments if arguments is not None else {}).decode()
    )
    return {"id": id, "type": "function", "function": {"name": name, "arguments": text}}


def parse_arguments(text: str | None) -> Any:
    """A tool call's arguments as a value (formats other than OpenAI carry objects, not text)."""
    if not text:
        return {}
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"_raw": text}  # keep what the model wrote rather than lose it


def text_of(content: Any) -> str:
    """The text of a message content (a string or a list of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(
        part.get("text", "")
        for part in content
        if isinstance(part, dict) and part.get("type") in ("text", "input_text", None)
    )


def parts_of(content: Any) -> list[dict[str, Any]]:
    """A message content as a list of parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return [part for part in content if isinstance(part, dict)]


def image_url_of(part: dict[str, Any]) -> str | None:
    image = part.get("image_url")
    if isinstance(image, dict):
        return image.get("url")
    return image if isinstance(image, str) else None


def split_data_url(url: str) -> tuple[str, str] | None:
    """(media type, base64 data) of a data: URL, None for any other URL."""
    if not url.startswith("data:") or "," not in url:
        return None
    head, data = url[5:].split(",", 1)
    media_type = head.split(";")[0] or "application/octet-stream"
    if ";base64" not in head:
        data = base64.b64encode(data.encode()).decode()
    return media_type, data


def max_tokens_of(request: dict[str, Any]) -> int | None:
    value = request.get("max_completion_tokens") or request.get("max_tokens")
    return int(value) if value else None


def stops_of(request: dict[str, Any]) -> list[str]:
    stop = request.get("stop")
    if not stop:
        return []
    return [stop] if isinstance(stop, str) else [s for s in stop if isinstance(s, str)]


def json_mode_of(request: dict[str, Any]) -> tuple[bool, dict[str, Any] | None]:
    """(JSON wanted?, its JSON schema or None) from response_format."""
    fmt = request.get("response_format") or {}
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "json_schema":
        return True, (fmt.get("json_schema") or {}).get("schema")
    return kind == "json_object", None


def function_tools(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The `function` objects of the request's tools ({name, description, parameters})."""
    return [
        t["function"] for t in request.get("tools") or [] if t.get("type", "function") == "function" and "function" in t
    ]


def chunk_has_token(chunk: dict[str, Any]) -> bool:
    """Does this chunk carry part of the answer (text, refusal or a tool call)?"""
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls") or delta.get("refusal") or delta.get("reasoning_content"):
            return True
    return False


class Accumulator:
    """Builds the chat.completion a stream of chunks amounts to."""

    def __init__(self) -> None:
        self.id: str | None = None
        self.model = ""
        self.created: int | None = None
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, int] | None = None
        self.role = "assistant"

    def add(self, chunk: dict[str, Any]) -> None:
        self.id = self.id or chunk.get("id")
        self.model = self.model or chunk.get("model", "")
        self.created = self.created or chunk.get("created")
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue  # n > 1 is not streamed by r42
            self._add_delta(choice.get("delta") or {})
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]

    def _add_delta(self, delta: dict[str, Any]) -> None:
        if delta.get("content"):
            self.text.append(delta["content"])
        if delta.get("reasoning_content"):
            self.reasoning.append(delta["reasoning_content"])
        for call in delta.get("tool_calls") or []:
            index = call.get("index", len(self.tool_calls))
            slot = self.tool_calls.setdefault(
                index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
            )
            if call.get("id"):
                slot["id"] = call["id"]
            function = call.get("function") or {}
            if function.get("name"):
                slot["function"]["name"] += function["name"]
            if function.get("arguments"):
                slot["function"]["arguments"] += function["arguments"]

    @property
    def content(self) -> str:
        return "".join(self.text)

    def result(self) -> dict[str, Any]:
        calls = [self.tool_calls[i] for i in sorted(self.tool_calls)]
        message = assistant_message(self.content, calls)
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        return completion(self.model, message, self.finish_reason, self.usage, self.id, self.created)


def first_choice(response: dict[str, Any]) -> dict[str, Any]:
    choices = response.get("choices") or [{}]
    return choices[0]


def answer_text(response: dict[str, Any]) -> str:
    return text_of((first_choice(response).get("message") or {}).get("content"))
