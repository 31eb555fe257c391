"""Loopback servers that speak the providers' real wire protocols, with fault injection.

Each fake is a stdlib `http.server` in a daemon thread on 127.0.0.1 (port 0: the kernel picks a
free one). Point r42 (or any SDK) at `server.base_url`, then inspect what arrived in
`server.requests`. Used by r42's provider, executor and CLI tests, and reusable by the gateway's.

    from tests.fakes import OpenAIFake, faults

    with OpenAIFake(reply="Paris.") as server:
        server.fail(faults.status(503), faults.rate_limited(retry_after=0.05))  # the next two requests
        ...  # OPENAI_BASE_URL=server.base_url

The fakes answer deterministically:
- a request with tools whose last message is not a tool result gets a call of the first tool with
  `tool_args` (default {"city": "Paris"});
- a request whose last message is a tool result gets "The tool said: <result text>";
- anything else gets `reply`, streamed a word at a time when the client asks for a stream.
Usage counts words: prompt tokens = words in the request's texts, completion tokens = words in the reply.

Faults (tests.fakes.faults), each consumed by one request, in the order queued:
`status(code)` with the provider's real error body (429 may carry Retry-After), `rate_limited`,
`overloaded` (Anthropic's 529), `context_too_long`, `slow_first_byte(seconds)`,
`reset_mid_stream(after)` (TCP RST after `after` stream events), `malformed_json()`,
`truncated_stream(after)` (a clean end without the protocol's terminator).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterable

import orjson

from tests.fakes import faults
from tests.fakes.faults import Fault

DEFAULT_REPLY = "Hello from the fake server."
DEFAULT_TOOL_ARGS = {"city": "Paris"}


@dataclass
class Recorded:
    """One request as the fake received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or the raw text when it was not JSON

    @property
    def json(self) -> dict[str, Any]:
        assert isinstance(self.body, dict), self.body
        return self.body


@dataclass
class Turn:
    """What the fake decided to answer, before it is put in the protocol's shape."""

    text: str = ""
    tool_name: str | None = None
    tool_args: dict[str, Any] = field(default_factory=dict)
    prompt_tokens: int = 0

    @property
    def completion_tokens(self) -> int:
        return len(self.text.split()) + (len(orjson.dumps(self.tool_args).split()) if self.tool_name else 0)

    def words(self) -> list[str]:
        """The reply in streaming pieces: one word (with its leading space) per piece."""
        pieces = self.text.split(" ")
        return [piece if i == 0 else " " + piece for i, piece in enumerate(pieces) if piece or i == 0]


def decide(
    texts: Iterable[str], tool_names: list[str], tool_result: str | None, reply: str, tool_args: dict[str, Any]
) -> Turn:
    """The deterministic answer to a conversation (see the module docstring)."""
    prompt_tokens = sum(len(t.split()) for t in texts)
    if tool_result is not None:
        return Turn(text=f"The tool said: {tool_result}", prompt_tokens=prompt_tokens)
    if tool_names:
        return Turn(tool_name=tool_names[0], tool_args=dict(tool_args), prompt_tokens=prompt_tokens)
    return Turn(text=reply, prompt_tokens=prompt_tokens)


class Stop(Exception):
    """Raised inside a handler to end the response the way a fault wants."""


class FakeServer:
    """The HTTP plumbing shared by every fake; subclasses speak one protocol in `handle`."""

    name = "fake"

    def __init__(
        self, reply: str = DEFAULT_REPLY, tool_args: dict[str, Any] | None = None, api_key: str | None = None
    ) -> None:
        self.reply = reply
        self.tool_args = DEFAULT_TOOL_ARGS if tool_args is None else tool_args
        self.api_key = api_key  # when set, requests without it get the provider's 401
        self.requests: list[Recorded] = []
        self.faults: deque[Fault] = deque()
        self.stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.connections: set[socket.socket] = set()  # accepted, for stop() to close

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "FakeServer":
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=f"{self.name}-fake", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Like a server process ending: no more connections, and the kept-alive ones closed
        (otherwise their handler threads would answer a client's pooled connection after a new
        fake took this port)."""
        self.stopping.set()  # wakes handlers sleeping in a slow-first-byte fault
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        for conn in list(self.connections):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> "FakeServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start the server first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        """The URL a client of this protocol is configured with (subclasses add /v1 etc.)."""
        return self.url

    # --- scripting ---------------------------------------------------------------------------

    def fail(self, *queued: Fault) -> "FakeServer":
        """Queue faults: the next len(queued) requests get them, in order."""
        self.faults.extend(queued)
        return self

    def next_fault(self) -> Fault | None:
        return self.faults.popleft() if self.faults else None

    def decide(self, texts: Iterable[str], tool_names: list[str], tool_result: str | None) -> Turn:
        return decide(texts, tool_names, tool_result, self.reply, self.tool_args)

    # --- protocol hooks (subclasses) ---------------------------------------------------------

    def handle(self, http: "_Handler", request: Recorded, fault: Fault | None) -> None:
        raise NotImplementedError

    def error_body(self, status: int, kind: str | None = None) -> dict[str, Any]:
        raise NotImplementedError


class _Handler(BaseHTTPRequestHandler):
    """Request parsing, faults and the writing primitives the protocol fakes use."""

    protocol_version = "HTTP/1.1"
    server_fake: FakeServer

    def setup(self) -> None:
        super().setup()
        self.server_fake.connections.add(self.connection)

    def finish(self) -> None:
        self.server_fake.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # keep test output clean

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._serve()

    def do_POST(self) -> None:  # noqa: N802
        self._serve()

    def _serve(self) -> None:
        fake = self.server_fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = raw.decode("utf-8", "replace")
        request = Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        fake.requests.append(request)
        fault = fake.next_fault()
        self.fault = fault
        if fault is not None and fault.kind == "slow":
            if fake.stopping.wait(fault.delay):
                return
        try:
            if fault is not None and fault.kind == "status":
                self.send_json(
                    fault.status, fault.body or fake.error_body(fault.status, fault.error_kind), fault.headers
                )
                return
            fake.handle(self, request, fault)
        except Stop:
            return
        except (BrokenPipeError, ConnectionResetError):
            return

    # --- writing -----------------------------------------------------------------------------

    def send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        if getattr(self, "fault", None) is not None and self.fault.kind == "reset":
            self.reset()  # a whole-body answer: the connection dies before any byte of it
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()
        self.close_connection = True

    def start_stream(self, content_type: str, headers: dict[str, str] | None = None) -> None:
        """Headers of a chunked streaming response."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True

    def send_piece(self, data: bytes) -> None:
        """One HTTP chunk, flushed at once so the client sees it now."""
        if data:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    def end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def reset(self) -> None:
        """Abort the connection with a TCP RST (SO_LINGER 0), as a crashed upstream does."""
        try:
            self.wfile.flush()
        except OSError:
            pass
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        raise Stop

    def stream_events(self, events: list[bytes], fault: Fault | None, pause: float = 0.0) -> None:
        """Write stream events, applying reset/truncate/malformed faults; ends the stream."""
        for index, event in enumerate(events):
            if fault is not None and fault.kind == "reset" and index == fault.after:
                self.reset()
            if fault is not None and fault.kind == "truncate" and index == fault.after:
                break
            self.send_piece(event)
            if pause:
                time.sleep(pause)
        self.end_stream()


__all__ = [
    "FakeServer",
    "Recorded",
    "Turn",
    "decide",
    "faults",
    "Fault",
    "OpenAIFake",
    "AnthropicFake",
    "GeminiFake",
    "OllamaFake",
]


def __getattr__(name: str) -> Any:  # the protocol fakes, imported on first use
    modules = {"OpenAIFake": "openai", "AnthropicFake": "anthropic", "GeminiFake": "gemini", "OllamaFake": "ollama"}
    if name in modules:
        import importlib

        return getattr(importlib.import_module(f"tests.fakes.{modules[name]}"), name)
    raise AttributeError(name)
