"""Reversible redaction: sensitive values become placeholders before a cloud call and come back
in the answer. Per request, in memory only; the mapping is never logged or stored.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from r42.scoring.sensitive import find_sensitive_spans

PLACEHOLDER = re.compile(r"\[R42_[A-Z_]+_\d+\]")
MAX_PLACEHOLDER = 40  # longest placeholder, for holding back a partial one in a stream


class Redaction:
    def __init__(self) -> None:
        self.by_value: dict[str, str] = {}
        self.by_placeholder: dict[str, str] = {}

    def placeholder_for(self, kind: str, value: str) -> str:
        if value not in self.by_value:
            count = sum(1 for p in self.by_placeholder if p.startswith(f"[R42_{kind.upper()}_")) + 1
            placeholder = f"[R42_{kind.upper()}_{count}]"
            self.by_value[value] = placeholder
            self.by_placeholder[placeholder] = value
        return self.by_value[value]

    def redact(self, text: str) -> str:
        out, last = [], 0
        for kind, start, end in find_sensitive_spans(text):
            out += [text[last:start], self.placeholder_for(kind, text[start:end])]
            last = end
        out.append(text[last:])
        return "".join(out)

    def restore(self, text: str) -> str:
        if not self.by_placeholder:
            return text
        return PLACEHOLDER.sub(lambda m: self.by_placeholder.get(m.group(), m.group()), text)

    def kinds(self) -> dict[str, int]:
        """How many values of each kind were replaced, e.g. {"email": 2}."""
        counts: dict[str, int] = {}
        for placeholder in self.by_placeholder:
            kind = placeholder[5:].rsplit("_", 1)[0].lower()
            counts[kind] = counts.get(kind, 0) + 1
        return counts

    def __repr__(self) -> str:  # never the values
        return f"Redaction({len(self.by_placeholder)} values)"


def redact_messages(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], Redaction]:
    """A copy of the messages with every sensitive value replaced, and the mapping to undo it."""
    redaction = Redaction()
    redacted = copy.deepcopy(messages)
    for message in redacted:
        content = message.get("content")
        if isinstance(content, str):
            message["content"] = redaction.redact(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part.get("text"), str):
                    part["text"] = redaction.redact(part["text"])
    return redacted, redaction


class StreamRestorer:
    """Restores placeholders in streamed text, holding back a tail that may be half a placeholder."""

    def __init__(self, redaction: Redaction) -> None:
        self.redaction = redaction
        self.pending = ""

    def feed(self, chunk: str) -> str:
        text = self.pending + chunk
        cut = text.rfind("[")
        if cut != -1 and "]" not in text[cut:] and len(text) - cut < MAX_PLACEHOLDER:
            self.pending, text = text[cut:], text[:cut]
        else:
            self.pending = ""
        return self.redaction.restore(text)

    def flush(self) -> str:
        text, self.pending = self.pending, ""
        return self.redaction.restore(text)


def restore_response(response: dict[str, Any], redaction: Redaction) -> None:
    """Put the values back into a chat.completion: message text and tool-call arguments."""
    for choice in response.get("choices") or []:
        message = choice.get("message") or {}
        if isinstance(message.get("content"), str):
            message["content"] = redaction.restore(message["content"])
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            if isinstance(function.get("arguments"), str):
                function["arguments"] = redaction.restore(function["arguments"])


def restore_chunk(chunk: dict[str, Any], restorer: StreamRestorer) -> None:
    """Put the values back into a stream chunk's text; held-back text is released at the finish."""
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        text = delta.get("content")
        if isinstance(text, str):
            delta["content"] = restorer.feed(text)
        if choice.get("finish_reason"):
            rest = restorer.flush()
            if rest:
                delta["content"] = (delta.get("content") or "") + rest
                choice["delta"] = delta
