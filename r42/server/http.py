"""HTTP/1.1 on asyncio streams; handlers run on the event loop when they can, else on worker threads.

Why this shape (benchmarks/bench_server_choice.py measures it): connections, parsing, keep-alive and
slow clients live on one event loop, where an idle or slow connection costs no thread. A handler
that can await its upstream (chat completions to OpenAI-protocol providers: `on_loop`) runs on the
loop itself: the same small forwarder did ~30,000 req/s that way against ~4,400 with the upstream
call on a worker thread, whose hop and GIL hand-overs cost ~0.15 ms per request. Everything else
(the SDK adapters, the Anthropic passthrough, the store-heavy endpoints) runs on a bounded pool of
workers, which still beat http.server's ThreadingHTTPServer (per-request email.parser headers and a
thread per connection).

Latency habits: every response leaves in as few writes as possible (head and body together, a
stream's head together with its first event), on sockets with TCP_NODELAY, so that no small
segment waits for a delayed ACK (the Nagle trap that adds ~40 ms per request).

Limits enforced here: request head size and header count (431), body size (413), time to receive
the head and the body (slow clients get 408 or are dropped: one deadline per connection, checked
by a sweeper), keep-alive idle time, concurrent requests (503 with Retry-After). Shutdown stops
accepting, closes idle connections, lets requests in flight finish within a grace period, then
closes the rest.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Protocol
from urllib.parse import parse_qs, urlsplit

REASONS = {
    100: "Continue",
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    505: "HTTP Version Not Supported",
    529: "Overloaded",
}
# RFC 9110 field syntax. A name is a token; a received value may hold visible ASCII, obs-text,
# spaces and tabs, never another control character (a bare CR or LF would split it downstream).
# What r42 writes is stricter: visible ASCII, spaces and tabs only.
TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
TOKEN_TEXT = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
SAFE_VALUE_TEXT = re.compile(r"[\t\x20-\x7e]*")
BAD_TARGET = re.compile(rb"[\x00-\x20\x7f-\xff]")
HEX = frozenset(b"0123456789abcdefABCDEF")
SINGLE_HEADERS = frozenset({"content-length", "authorization", "x-api-key", "host", "transfer-encoding"})
WRITE_HIGH_WATER = 256 * 1024  # a streaming worker waits for the client once this much is buffered
# Bodies above LOOP_BODY_MAX are handled on a worker, never on the loop, and their parsing and
# scoring passes one at a time through a gate: a 10 MB body holds the GIL in single C calls of
# tens of ms (JSON parsing, copies), and six of them at once starved the loop for ~1 s at a time.
LOOP_BODY_MAX = 256 * 1024
BIG_BODY_SWITCH_S = 0.001
NO_GATE = nullcontext()


@dataclass
class ServerLimits:
    max_body: int = 32 * 1024 * 1024  # bytes (413 above)
    max_head: int = 32 * 1024  # bytes of request line + headers (431 above)
    max_headers: int = 100  # header lines (431 above)
    head_timeout: float = 10.0  # seconds to receive a request's head once it has begun (408)
    body_timeout: float = 60.0  # seconds to receive the body (408)
    idle_timeout: float = 75.0  # seconds a kept-alive connection may wait for its next request
    write_timeout: float = 30.0  # seconds a stream waits for a client that does not read
    max_concurrency: int = 256  # requests being handled at once (503 above); also the worker threads
    grace: float = 10.0  # seconds in-flight requests get to finish at shutdown


class Request:
    __slots__ = (
        "method",
        "path",
        "query_string",
        "version",
        "headers",
        "body",
        "client",
        "keep_alive",
        "id",
        "started",
        "_query",
        "heavy",
    )

    def __init__(self, method: str, target: str, version: str, headers: dict[str, str], client: str) -> None:
        self.method = method
        path, _, self.query_string = origin_form(target).partition("?")
        self.path = path.rstrip("/") or "/"
        self.version = version
        self.headers = headers  # lower-case names
        self.body = b""
        self.client = client
        # An HTTP/1.0 connection is closed after its response: no chunked coding, no keep-alive to negotiate.
        self.keep_alive = version == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
        self.id = ""
        self.started = time.perf_counter()
        self._query: dict[str, list[str]] | None = None
        # Handlers parse and score the body inside `with request.heavy:`: a no-op for ordinary
        # bodies, a gate one big body at a time passes (see LOOP_BODY_MAX).
        self.heavy: AbstractContextManager[Any] = NO_GATE

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    @property
    def query(self) -> dict[str, list[str]]:
        if self._query is None:
            self._query = parse_qs(self.query_string)
        return self._query


def origin_form(target: str) -> str:
    """An absolute-form target (`http://host/path?q`, as sent to proxies) as its path and query."""
    if target[:1] == "/" or "://" not in target:
        return target
    parts = urlsplit(target)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def header_safe(value: str) -> bool:
    """Could this text be written as a header value (visible ASCII, spaces and tabs)?"""
    return SAFE_VALUE_TEXT.fullmatch(value) is not None


def field_ok(name: str, value: str) -> bool:
    """May r42 write this header? A token name and a value of visible ASCII, spaces and tabs."""
    return TOKEN_TEXT.fullmatch(name) is not None and SAFE_VALUE_TEXT.fullmatch(value) is not None


class InvalidHeader(ValueError):
    """A header r42 was about to write breaks RFC 9110 field syntax (CR, LF, non-ASCII...)."""


class Response:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, body: bytes = b"", headers: list[tuple[str, str]] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers or []


class ClientGone(Exception):
    """The client closed its connection (or stopped reading) while a stream was being written."""


class Handler(Protocol):
    """Called on a worker thread for each request. A handler may also have
    `on_loop(request, channel) -> Awaitable[Response | None] | None`: an awaitable serves the
    request on the event loop instead (no thread hop), None sends it to a worker as usual."""

    def __call__(self, request: Request, channel: "Channel") -> Response | None:
        """A whole Response, or None after streaming through the channel."""


def encode_head(
    status: int, headers: list[tuple[str, str]], keep_alive: bool, length: int | None, chunked: bool = True
) -> bytes:
    """The status line and headers. `length` None: a body of unknown length, chunked, or (for an
    HTTP/1.0 client, `chunked` False) delimited by closing the connection. Raises InvalidHeader
    rather than write a header that could split the response."""
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}"]
    for name, value in headers:
        if not field_ok(name, value):
            raise InvalidHeader(f"invalid response header {name[:40]!r}")
        lines.append(f"{name}: {value}")
    if length is not None:
        lines.append(f"Content-Length: {length}")
    elif chunked:
        lines.append("Transfer-Encoding: chunked")
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def encode_response(response: Response, keep_alive: bool, head_only: bool = False) -> bytes:
    head = encode_head(response.status, response.headers, keep_alive, len(response.body))
    return head if head_only else head + response.body


class Channel:
    """A handler's way to stream a response on the event loop's connection: `write` from a worker
    thread (it waits when the client reads slowly), `send` then `await drain()` on the loop.

    `start` sends nothing by itself: the head goes out with the first write, in one segment.
    Every write checks that the client is still there and raises ClientGone otherwise.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        keep_alive: bool,
        write_timeout: float,
        pool: ThreadPoolExecutor | None = None,
        chunked: bool = True,
        head_only: bool = False,
    ) -> None:
        self.loop = loop
        # HTTP/1.0 has no chunked coding: the body runs until the connection closes.
        self.chunked = chunked
        self.head_only = head_only  # HEAD: the head goes out, the body does not
        self.loop_thread = threading.get_ident()  # channels are made on the loop
        self.reader = reader
        self.writer = writer
        self.keep_alive = keep_alive and chunked
        self.write_timeout = write_timeout
        self.pool = pool
        self.head: bytes | None = None
        self.started = False
        self.finished = False

    def gone(self) -> bool:
        return self.writer.transport.is_closing() or self.reader.at_eof() or self.reader.exception() is not None

    def start(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.head = encode_head(status, headers, self.keep_alive, None, self.chunked)
        self.started = True

    def write(self, data: bytes) -> None:
        """From a worker thread."""
        self.send(data)
        if self.writer.transport.get_write_buffer_size() > WRITE_HIGH_WATER:
            self._wait_for_client()

    def send(self, data: bytes) -> None:
        """One chunk of the body (with the head before the first); on the loop, follow with drain()."""
        if self.gone():
            raise ClientGone()
        if self.head_only or not data:
            piece = b""
        else:
            piece = b"%x\r\n%s\r\n" % (len(data), data) if self.chunked else data
        if self.head is not None:
            piece, self.head = self.head + piece, None
        if piece:
            self._put(piece)

    async def drain(self) -> None:
        """On the loop: wait while the client is more than WRITE_HIGH_WATER behind."""
        if self.writer.transport.get_write_buffer_size() <= WRITE_HIGH_WATER:
            return
        try:
            async with asyncio.timeout(self.write_timeout):
                await self.writer.drain()
        except (TimeoutError, ConnectionError):
            self.writer.transport.abort()
            raise ClientGone() from None

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        tail = (self.head or b"") + (b"0\r\n\r\n" if self.chunked and not self.head_only else b"")
        self.head = None
        if tail and not self.writer.transport.is_closing():
            self._put(tail)

    async def in_worker(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run a blocking part of a handler that runs on the loop on a worker thread."""
        return await self.loop.run_in_executor(self.pool, function, *args)

    def _put(self, piece: bytes) -> None:
        if threading.get_ident() == self.loop_thread:
            self.writer.write(piece)
        else:
            self.loop.call_soon_threadsafe(self.writer.write, piece)

    def _wait_for_client(self) -> None:
        future = asyncio.run_coroutine_threadsafe(self.writer.drain(), self.loop)
        try:
            future.result(self.write_timeout)
        except Exception:  # noqa: BLE001 - a timeout or a reset: either way the client is gone
            future.cancel()
            self.loop.call_soon_threadsafe(self.writer.transport.abort)
            raise ClientGone() from None


class HeadError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_head(head: bytes, client: str, limits: ServerLimits) -> Request:
    """The request line and headers (lower-case names). Strict where ambiguity helps attackers:
    whitespace before a colon, duplicate Content-Length or credentials, obsolete line folding,
    a bare CR or LF, a name that is not a token, control characters in a value."""
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[1] or BAD_TARGET.search(parts[1]):
        raise HeadError(400, "malformed request line")
    method, target, version = (p.decode("latin-1") for p in parts)
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise HeadError(505, f"unsupported protocol {version[:20]!r}")
    if len(lines) - 1 > limits.max_headers:
        raise HeadError(431, f"more than {limits.max_headers} headers")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or TOKEN.fullmatch(name) is None:  # also a folded line (leading space or tab)
            raise HeadError(400, "malformed header line")
        value = value.strip(b" \t")
        if BAD_VALUE.search(value):
            raise HeadError(400, "control character (CR, LF, NUL...) in a header value")
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        if key in headers:
            if key in SINGLE_HEADERS:
                raise HeadError(400, f"duplicate {key} header")
            text = headers[key] + ", " + text
        headers[key] = text
    return Request(method, target, version, headers, client)


def chunk_size(line: bytes) -> int:
    """The size on a chunk-size line (with its CRLF): hex digits, then optional extensions (ignored)."""
    digits, _, extension = line[:-2].partition(b";")
    digits = digits.rstrip(b" \t")
    if not digits or len(digits) > 15 or not HEX.issuperset(digits) or BAD_VALUE.search(extension):
        raise HeadError(400, "malformed chunk size")
    return int(digits, 16)


async def read_chunked(reader: asyncio.StreamReader, max_body: int, max_trailers: int) -> bytes:
    """A chunked body: each chunk's data must end in CRLF where its size says (a wrong size is a
    400 at once, not a wait for bytes that never come); trailers are read and dropped."""
    parts: list[bytes] = []
    total = 0
    while True:
        size = chunk_size(await reader.readuntil(b"\r\n"))
        if size == 0:
            break
        total += size
        if total > max_body:
            raise HeadError(413, f"request body over {max_body} bytes")
        data = await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise HeadError(400, "chunk data longer than its size")
        parts.append(data)
    trailers = 0
    while (line := await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers, dropped
        trailers += len(line)
        if trailers > max_trailers:
            raise HeadError(431, "trailers too large")
        if b":" not in line or BAD_VALUE.search(line[:-2]):
            raise HeadError(400, "malformed trailer")
    return b"".join(parts)


class _Deadline:
    """Which wait a connection is in and until when: the sweeper cancels the connection's task
    once the deadline passes. One float per phase instead of an asyncio.timeout() context
    (a timer handle and its cancellation) per wait, which cost ~10% of the loop's time."""

    __slots__ = ("task", "phase", "until", "expired")

    def __init__(self, task: asyncio.Task | None) -> None:
        self.task = task
        self.phase = "idle"
        self.until: float | None = None
        self.expired: str | None = None  # the phase whose deadline passed

    def set(self, phase: str, seconds: float | None) -> None:
        self.phase = phase
        self.until = None if seconds is None else time.monotonic() + seconds


class HTTPServer:
    """Serves `handler` on host:port until stopped (signal, `stop()`, or the loop ending)."""

    def __init__(
        self,
        handler: Handler,
        host: str = "127.0.0.1",
        port: int = 4242,
        limits: ServerLimits | None = None,
        on_error: Callable[[Request | None, int, str], Response] | None = None,
        before_body: Callable[[Request], Response | None] | None = None,
    ) -> None:
        self.handler = handler
        # Asked on a worker before `100 Continue` is sent: a Response (401, 404...) refuses the
        # upload, so that a client with a wrong key does not send its body first.
        self.before_body = before_body
        self.host = host
        self.port = port
        self.limits = limits or ServerLimits()
        self.on_error = on_error or _plain_error
        self.pool = ThreadPoolExecutor(max_workers=self.limits.max_concurrency, thread_name_prefix="r42-worker")
        self.inflight = 0
        self.heavy_gate = threading.Semaphore(1)
        self.big_inflight = 0
        self.switch_interval = sys.getswitchinterval()
        self.idle: set[asyncio.StreamWriter] = set()
        self.connections: set[asyncio.StreamWriter] = set()
        self.deadlines: dict[asyncio.StreamWriter, _Deadline] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.stopping = False
        self.bound: tuple[str, int] | None = None
        self.sock: socket.socket | None = None

    def bind(self) -> tuple[str, int]:
        """Open the listening socket now (OSError when the port is taken), so that a caller can
        report a busy port before it says it is listening; `serve` binds itself otherwise."""
        if self.sock is None:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            self.sock = socket.create_server((self.host, self.port), family=family, backlog=1024, reuse_port=False)
            self.bound = self.sock.getsockname()[:2]
        return self.bound  # type: ignore[return-value]

    # --- lifecycle --------------------------------------------------------------------------

    def run(self, install_signals: bool = True) -> None:
        asyncio.run(self.serve(install_signals))

    async def serve(self, install_signals: bool = True) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.bind()
        server = await asyncio.start_server(self._connection, sock=self.sock, limit=self.limits.max_head, backlog=1024)
        if install_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.loop.add_signal_handler(sig, self._stop.set)
        sweeper = asyncio.create_task(self._sweep())
        self.ready.set()
        try:
            await self._stop.wait()
        finally:
            sweeper.cancel()
            await self._shutdown(server)

    async def _sweep(self) -> None:
        """Cancel the connections whose current wait has outlived its limit (408 or close)."""
        limits = self.limits
        tick = min(1.0, max(0.02, min(limits.head_timeout, limits.body_timeout, limits.idle_timeout) / 4))
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for deadline in list(self.deadlines.values()):
                if (
                    deadline.until is not None
                    and now > deadline.until
                    and deadline.expired is None
                    and deadline.task is not None
                ):
                    deadline.expired = deadline.phase
                    deadline.task.cancel()

    def stop(self) -> None:
        """Thread-safe: begin a graceful shutdown."""
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)

    async def _shutdown(self, server: asyncio.base_events.Server) -> None:
        self.stopping = True
        server.close()
        for writer in list(self.idle):
            writer.close()
        deadline = time.monotonic() + self.limits.grace
        while self.inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for writer in list(self.connections):
            writer.transport.abort()
        self.pool.shutdown(wait=False, cancel_futures=True)

    # --- one connection ---------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = writer.get_extra_info("peername")
        client = peer[0] if isinstance(peer, tuple) else str(peer)
        self.connections.add(writer)
        deadline = self.deadlines[writer] = _Deadline(asyncio.current_task())
        try:
            while not self.stopping:
                request = await self._read_request(reader, writer, client, deadline)
                if request is None:
                    break
                deadline.set("busy", None)
                keep_alive = await self._respond(request, reader, writer)
                if not keep_alive:
                    break
        except asyncio.CancelledError:
            if deadline.expired in ("head", "body"):
                await self._late(writer)
        except ConnectionError:
            pass
        finally:
            self.connections.discard(writer)
            self.idle.discard(writer)
            self.deadlines.pop(writer, None)
            writer.close()

    async def _late(self, writer: asyncio.StreamWriter) -> None:
        try:
            await self._send(writer, self.on_error(None, 408, "the request took too long to arrive"), keep_alive=False)
        except (ConnectionError, asyncio.CancelledError):
            pass

    async def _read_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: str, deadline: _Deadline
    ) -> Request | None:
        """The next request, or None when the connection is done. A wait that outlives its limit
        ends in the sweeper's cancellation (handled in _connection)."""
        self.idle.add(writer)
        deadline.set("idle", self.limits.idle_timeout)  # waiting for a request to begin
        try:
            first = await reader.read(1)
        except ConnectionError:
            return None
        finally:
            self.idle.discard(writer)
        if first == b"" and reader.at_eof():
            return None
        deadline.set("head", self.limits.head_timeout)
        try:
            head = first + await reader.readuntil(b"\r\n\r\n")
            request = parse_head(head, client, self.limits)
            deadline.set("body", self.limits.body_timeout)
            refusal = await self._refuse_upload(request)
            if refusal is not None:
                await self._send(writer, refusal, keep_alive=False)
                return None
            request.body = await self._read_body(request, reader, writer)
            return request
        except HeadError as exc:
            await self._send(writer, self.on_error(None, exc.status, exc.message), keep_alive=False)
        except (asyncio.LimitOverrunError, ValueError):  # StreamReader raises ValueError past its limit
            await self._send(writer, self.on_error(None, 431, "request head too large"), keep_alive=False)
        except asyncio.IncompleteReadError:
            pass
        return None

    async def _refuse_upload(self, request: Request) -> Response | None:
        """before_body's answer for a request that waits for `100 Continue`, else None."""
        if self.before_body is None or request.headers.get("expect", "").lower() != "100-continue":
            return None
        if not (request.headers.get("transfer-encoding") or request.headers.get("content-length", "0") != "0"):
            return None
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, self.before_body, request)
        except Exception:  # noqa: BLE001 - the handler answers once the body is in, as without the check
            return None

    async def _read_body(self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        encoding = request.headers.get("transfer-encoding", "").lower()
        length_text = request.headers.get("content-length")
        if encoding and length_text is not None:
            raise HeadError(400, "both Content-Length and Transfer-Encoding")
        if encoding and encoding != "chunked":
            raise HeadError(501, f"unsupported transfer encoding {encoding[:20]!r}")
        if length_text is not None and (not length_text.isdigit() or len(length_text) > 15):
            raise HeadError(400, "invalid Content-Length")
        length = int(length_text or 0)
        if length > self.limits.max_body:
            raise HeadError(413, f"request body over {self.limits.max_body} bytes")
        if request.headers.get("expect", "").lower() == "100-continue" and (length or encoding):
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if not encoding:
            return await reader.readexactly(length) if length else b""
        return await self._read_chunked(reader)

    async def _read_chunked(self, reader: asyncio.StreamReader) -> bytes:
        return await read_chunked(reader, self.limits.max_body, self.limits.max_head)

    async def _respond(self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        keep_alive = request.keep_alive and not self.stopping
        if self.inflight >= self.limits.max_concurrency:
            response = self.on_error(request, 503, "the gateway is at its limit of concurrent requests; retry shortly")
            response.headers.append(("Retry-After", "1"))
            await self._send(writer, response, keep_alive)
            return keep_alive
        self.inflight += 1
        loop = asyncio.get_running_loop()
        head_only = request.method == "HEAD"
        if head_only:  # answered as GET without its body (Claude Code sends HEAD / first)
            request.method = "GET"
        channel = Channel(
            loop,
            reader,
            writer,
            keep_alive,
            self.limits.write_timeout,
            self.pool,
            chunked=request.version == "HTTP/1.1",
            head_only=head_only,
        )
        big = len(request.body) > LOOP_BODY_MAX
        if big:
            self._big_bodies(+1)
        try:
            on_loop = self.handler.on_loop(request, channel) if self._loop_may_serve(request) else None
            if on_loop is not None:
                response = await self._work_on_loop(on_loop, request, channel)
            else:
                response = await loop.run_in_executor(self.pool, self._work, request, channel)
        finally:
            self.inflight -= 1
            if big:
                self._big_bodies(-1)
        if response is not None:
            await self._send(writer, response, keep_alive and not self.stopping, head_only)
            return keep_alive and not self.stopping
        await writer.drain()
        return channel.keep_alive and channel.finished and not channel.gone() and not self.stopping

    def _loop_may_serve(self, request: Request) -> bool:
        """A big body is parsed and scored on a worker (through the heavy gate), never on the loop."""
        if len(request.body) > LOOP_BODY_MAX:
            request.heavy = self.heavy_gate
            return False
        return hasattr(self.handler, "on_loop")

    def _big_bodies(self, delta: int) -> None:
        """While a big body is handled, threads hand the GIL over every 1 ms instead of 5 ms, so
        that the loop waits less behind a worker that is parsing or scoring."""
        self.big_inflight += delta
        if self.big_inflight == delta == 1:
            self.switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(BIG_BODY_SWITCH_S)
        elif self.big_inflight == 0 and delta == -1:
            sys.setswitchinterval(self.switch_interval)

    def _work(self, request: Request, channel: Channel) -> Response | None:
        """On a worker thread: the handler, with crashes turned into a 500."""
        try:
            response = self.handler(request, channel)
        except ClientGone:
            return None
        except Exception as exc:  # noqa: BLE001 - the one place a handler bug becomes a 500
            return self._crashed(request, channel, exc)
        if response is None:
            channel.finish()
        return response

    async def _work_on_loop(
        self, handling: Awaitable[Response | None], request: Request, channel: Channel
    ) -> Response | None:
        """_work for a handler that runs on the loop."""
        try:
            response = await handling
        except ClientGone:
            return None
        except Exception as exc:  # noqa: BLE001 - a handler bug becomes a 500
            return self._crashed(request, channel, exc)
        if response is None:
            channel.finish()
        return response

    def _crashed(self, request: Request, channel: Channel, exc: Exception) -> Response | None:
        if os.environ.get("R42_DEBUG"):
            import traceback

            traceback.print_exception(exc)
        if channel.started:
            channel.finish()
            return None
        return self.on_error(request, 500, f"internal error ({type(exc).__name__})")

    async def _send(
        self, writer: asyncio.StreamWriter, response: Response, keep_alive: bool, head_only: bool = False
    ) -> None:
        try:
            data = encode_response(response, keep_alive, head_only)
        except InvalidHeader as exc:  # a handler bug; never a header that splits the response
            data = encode_response(self.on_error(None, 500, f"internal error ({exc})"), keep_alive, head_only)
        writer.write(data)
        await writer.drain()


def _plain_error(request: Request | None, status: int, message: str) -> Response:
    return Response(status, message.encode() + b"\n", [("Content-Type", "text/plain; charset=utf-8")])
