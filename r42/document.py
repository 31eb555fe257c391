"""The pipe document: read text | one JSON object | NDJSON, validate requests, write JSON.

A document is a plain dict so that every key a stage does not know passes through untouched.
This module only reads, checks and extracts; stages add their keys themselves. It uses the
standard json module: it imports in a millisecond, where orjson's import costs ~15 ms of every
`r42 score` start (the gateway, where throughput matters, uses orjson).
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Iterator

from r42.errors import EmptyInputError, InputError

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


class Item:
    """One unit of input: a document, or the error that line produced (batch mode only)."""

    __slots__ = ("line", "doc", "error")

    def __init__(self, line: int, doc: dict[str, Any] | None, error: InputError | None = None) -> None:
        self.line = line  # 1-based line number in the input (1 for a single document)
        self.doc = doc
        self.error = error


def _decode(raw: bytes) -> str:
    if b"\x00" in raw:
        raise InputError("input looks binary (it contains NUL bytes)", "pipe text or JSON into r42")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"input is not UTF-8 text (bad byte at offset {exc.start})", "pipe text or JSON into r42"
        ) from None


def _parse_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        problem = (
            f"{exc.msg} at line {exc.lineno} column {exc.colno}"
            if isinstance(exc, json.JSONDecodeError)
            else "nested too deeply"
        )
        raise InputError(f"invalid JSON: {problem}", "send one JSON object, NDJSON, or plain text (--text)") from None
    if not isinstance(value, dict):
        raise InputError(f"expected a JSON object, got {type(value).__name__}", "wrap the request in {...}")
    return value


def text_document(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def read_items(raw: bytes, form: str = "auto") -> list[Item]:
    """Split stdin into items. form: auto | text | json | nl.

    auto: text that does not start with '{' is one prompt; a single JSON object is one request;
    several lines that each hold an object are a batch.
    """
    text = _decode(raw)
    stripped = text.strip()
    if not stripped:
        raise EmptyInputError()
    if form == "text" or (form == "auto" and not stripped.startswith("{")):
        return [Item(1, text_document(text.rstrip("\n")))]
    if form in ("auto", "json"):
        try:
            return [Item(1, _parse_object(stripped))]
        except InputError:
            if form == "json" or "\n" not in stripped:
                raise
    return list(_ndjson_items(text))


def _ndjson_items(text: str) -> Iterator[Item]:
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            yield Item(number, _parse_object(line))
        except InputError as exc:
            yield Item(number, None, exc)


def error_document(error: Exception, line: int, source: dict[str, Any] | None = None) -> dict[str, Any]:
    """The object written in place of a document that failed, so a batch keeps its line order."""
    body = error.as_dict() if hasattr(error, "as_dict") else {"type": type(error).__name__, "message": str(error)}
    out: dict[str, Any] = {"error": body, "line": line}
    if source and "id" in source:
        out["id"] = source["id"]
    return out


def dumps(doc: dict[str, Any]) -> bytes:
    """Compact JSON, UTF-8, no ASCII escaping (what a pipe reader expects)."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8", "surrogatepass")


# --- requests --------------------------------------------------------------------------------


def messages_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The chat messages of a document ({"messages": [...]} or {"prompt": "..."}), validated."""
    if "messages" in doc:
        messages = doc["messages"]
        _check_messages(messages)
        return messages
    prompt = doc.get("prompt")
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if "prompt" in doc:
        raise InputError("'prompt' must be a string", 'use {"prompt": "..."}')
    raise InputError("the document has no 'messages' or 'prompt'", 'send an OpenAI chat body or {"prompt": "..."}')


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise InputError("'messages' must be a non-empty list", 'e.g. [{"role": "user", "content": "hi"}]')
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise InputError(f"{where} must be an object", "each message is {role, content}")
        role = message.get("role")
        if role not in ROLES:
            raise InputError(f"{where}.role must be one of {', '.join(sorted(ROLES))}, got {role!r}")
        content = message.get("content")
        if content is None and (message.get("tool_calls") or role == "assistant"):
            continue
        if isinstance(content, str):
            continue
        if isinstance(content, list) and all(isinstance(part, dict) for part in content):
            continue
        raise InputError(f"{where}.content must be a string or a list of parts", "see the OpenAI chat format")


def part_texts(content: Any) -> Iterable[str]:
    """The text pieces of a message content (string or list of parts)."""
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            text = part.get("text")
            if isinstance(text, str):
                yield text


def has_image(messages: list[dict[str, Any]]) -> bool:
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                if part.get("type") in ("image_url", "image", "input_image"):
                    return True
    return False


def message_text(message: dict[str, Any]) -> str:
    return "\n".join(part_texts(message.get("content")))
