"""Server-sent events: encode one event, decode a byte or line stream into events.

The grammar (https://html.spec.whatwg.org/multipage/server-sent-events.html): lines of
`field: value`, an empty line ends an event, `data` lines join with newlines, lines starting with
`:` are comments (keep-alives).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import orjson


@dataclass(frozen=True)
class Event:
    data: str
    event: str | None = None
    id: str | None = None
    retry: int | None = None

    def json(self):  # noqa: ANN201 - any JSON value
        return orjson.loads(self.data)


def encode(data: object, event: str | None = None) -> bytes:
    """One event; `data` is a str sent as is or any value sent as compact JSON."""
    text = data if isinstance(data, str) else orjson.dumps(data).decode()
    head = f"event: {event}\n" if event else ""
    body = "".join(f"data: {line}\n" for line in text.split("\n"))
    return (head + body + "\n").encode()


DONE = b"data: [DONE]\n\n"  # the OpenAI stream terminator


def decode_lines(lines: Iterable[str]) -> Iterator[Event]:
    """Events from text lines (without their line endings, as httpx's iter_lines gives them)."""
    data: list[str] = []
    event = event_id = None
    retry = None
    for line in lines:
        if line == "":
            if data:
                yield Event("\n".join(data), event, event_id, retry)
            data, event, retry = [], None, None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id":
            event_id = value
        elif name == "retry" and value.isdigit():
            retry = int(value)
    if data:  # a stream cut without its final blank line still delivers what it had
        yield Event("\n".join(data), event, event_id, retry)


def decode_bytes(chunks: Iterable[bytes]) -> Iterator[Event]:
    """Events from raw byte chunks, split at any line ending (\\r\\n, \\n or \\r)."""
    yield from decode_lines(_lines(chunks))


def _lines(chunks: Iterable[bytes]) -> Iterator[str]:
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        while True:
            cut = _line_end(buffer)
            if cut is None:
                break
            end, width = cut
            yield buffer[:end].decode("utf-8", errors="replace")
            buffer = buffer[end + width :]
    if buffer:
        yield buffer.rstrip(b"\r").decode("utf-8", errors="replace")


def _line_end(buffer: bytes) -> tuple[int, int] | None:
    lf, cr = buffer.find(b"\n"), buffer.find(b"\r")
    if cr == -1 or (lf != -1 and lf < cr):
        return None if lf == -1 else (lf, 1)
    if cr + 1 == len(buffer):
        return None  # wait: this \r may be the first half of \r\n
    return cr, 2 if buffer[cr + 1 : cr + 2] == b"\n" else 1
