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


class Decoder:
    """Incremental: `feed` bytes as they arrive (split anywhere, any line ending: \\r\\n, \\n or
    \\r) and get the events they complete; `end()` when the stream ends."""

    def __init__(self) -> None:
        self.buffer = b""
        self.data: list[str] = []
        self.event: str | None = None
        self.id: str | None = None
        self.retry: int | None = None

    def feed(self, chunk: bytes) -> list[Event]:
        events: list[Event] = []
        buffer = self.buffer + chunk
        while True:
            cut = _line_end(buffer)
            if cut is None:
                break
            end, width = cut
            self._line(buffer[:end].decode("utf-8", errors="replace"), events)
            buffer = buffer[end + width :]
        self.buffer = buffer
        return events

    def end(self) -> list[Event]:
        """What a stream cut without its final blank line still delivers."""
        events: list[Event] = []
        if self.buffer:
            self._line(self.buffer.rstrip(b"\r").decode("utf-8", errors="replace"), events)
            self.buffer = b""
        if self.data:
            events.append(Event("\n".join(self.data), self.event, self.id, self.retry))
            self.data = []
        return events

    def _line(self, line: str, events: list[Event]) -> None:
        if line == "":
            if self.data:
                events.append(Event("\n".join(self.data), self.event, self.id, self.retry))
            self.data, self.event, self.retry = [], None, None
            return
        if line.startswith(":"):
            return
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self.data.append(value)
        elif name == "event":
            self.event = value
        elif name == "id":
            self.id = value
        elif name == "retry" and value.isdigit():
            self.retry = int(value)


def decode_lines(lines: Iterable[str]) -> Iterator[Event]:
    """Events from text lines (without their line endings, as httpx's iter_lines gives them)."""
    decoder = Decoder()
    for line in lines:
        events: list[Event] = []
        decoder._line(line, events)
        yield from events
    yield from decoder.end()


def decode_bytes(chunks: Iterable[bytes]) -> Iterator[Event]:
    """Events from raw byte chunks, split at any line ending (\\r\\n, \\n or \\r)."""
    decoder = Decoder()
    for chunk in chunks:
        yield from decoder.feed(chunk)
    yield from decoder.end()


def _line_end(buffer: bytes) -> tuple[int, int] | None:
    lf, cr = buffer.find(b"\n"), buffer.find(b"\r")
    if cr == -1 or (lf != -1 and lf < cr):
        return None if lf == -1 else (lf, 1)
    if cr + 1 == len(buffer):
        return None  # wait: this \r may be the first half of \r\n
    return cr, 2 if buffer[cr + 1 : cr + 2] == b"\n" else 1
