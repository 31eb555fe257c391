"""A small HTTP/1.1 client for the upstream calls on r42's hot path, with kept-alive connections.

Why not httpx here: behind `r42 serve`, httpx's client layer (URL merging, cookies, request and
response models) and its pool lock were most of the gateway's CPU per request, and 64 worker
threads queued on that one lock. This client does what an upstream call needs and nothing more:
one `sendall` per request on a TCP_NODELAY socket (no Nagle and delayed-ACK stall), a response
read with a plain buffer, Content-Length and chunked bodies, and idle connections kept per origin
(scheme, host, port) for any thread to take. It does not follow redirects, decompress (it asks for
identity) or speak HTTP/2; a URL that an environment proxy applies to goes through httpx instead
(see `transport_for`).

Errors are TransportError with a `kind` (connect, connect_timeout, read_timeout, broken,
invalid_header) and never contain request headers, so a credential cannot leak through them.

A request is written at most once: a kept-alive connection is checked before it is reused, and
a connection that fails once any byte of the request has gone out is an error, never a resend
(the upstream may have received the request and billed it).
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import select
import socket
import ssl
import threading
import time
import urllib.request
import weakref
from collections import deque
from contextlib import contextmanager
from typing import Any, AsyncIterator, Iterator
from urllib.parse import urlsplit

MAX_HEAD = 64 * 1024  # bytes of status line + headers we accept from an upstream
MAX_IDLE = 64  # idle connections kept per origin
READ_SIZE = 64 * 1024
# RFC 9110 field syntax for what we send: a token name; a value without control characters (CR,
# LF, NUL...) that latin-1 can carry.
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\u0100-\U0010ffff]")


class TransportError(Exception):
    """The request did not get a whole response: `kind` is connect, connect_timeout,
    read_timeout or broken."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def check_headers(headers: dict[str, str]) -> None:
    """TransportError (invalid_header) for a header that would break the request's framing, e.g. a
    provider key holding CR/LF; the message names the header, never its value."""
    for name, value in headers.items():
        if TOKEN.fullmatch(name) is None or BAD_VALUE.search(value) is not None:
            raise TransportError(
                "invalid_header",
                f"the upstream header {name[:40]!r} holds a character HTTP does not "
                "allow (CR, LF or another control character): check the provider's API key settings",
            )


class Reply:
    """A response head, and its body once read (`read`) or as it arrives (`iter_bytes`)."""

    def __init__(self, status: int, reason: str, headers: dict[str, str], body: "_Body") -> None:
        self.status = status
        self.reason = reason
        self.headers = headers  # lower-case names
        self._body = body
        self.content = b""

    def read(self) -> bytes:
        self.content = b"".join(self._body)
        return self.content

    def iter_bytes(self) -> Iterator[bytes]:
        return iter(self._body)


class _Connection:
    __slots__ = ("sock", "buffer", "reused", "idle_since")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.reused = False
        self.idle_since = 0.0

    def fill(self) -> None:
        data = self.sock.recv(READ_SIZE)
        if not data:
            raise EOFError
        self.buffer += data

    def read_until(self, marker: bytes, limit: int) -> bytes:
        start = 0
        while True:
            end = self.buffer.find(marker, start)
            if end >= 0:
                end += len(marker)
                data = bytes(self.buffer[:end])
                del self.buffer[:end]
                return data
            if len(self.buffer) > limit:
                raise TransportError("broken", "the upstream sent an oversized response head")
            start = max(0, len(self.buffer) - len(marker) + 1)
            self.fill()

    def alive(self) -> bool:
        """An idle kept-alive connection the server has not closed (nor sent anything on)."""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return False
        if not readable:
            return True
        self.sock.setblocking(False)
        try:
            self.sock.recv(1)
            return False  # EOF, or bytes nobody asked for: unusable
        except ssl.SSLWantReadError:
            return True  # TLS records without data (a TLS 1.3 session ticket)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        finally:
            try:
                self.sock.setblocking(True)
            except OSError:
                pass

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class BodyDecoder:
    """The body framing of one response, without I/O: `feed` raw bytes as they arrive and get the
    body's bytes back; `done` once the body is complete (bytes past its end stay in `rest`).
    Shared by the blocking and the asyncio clients."""

    def __init__(self, length: int | None, chunked: bool) -> None:
        self.chunked = chunked
        self.left = length  # bytes of the body (or of the current chunk) still to come; None: until close
        self.state = "size" if chunked else "data"
        self.pending = b""  # a partial chunk-size line, trailer line or chunk terminator
        self.rest = b""
        self.done = not chunked and length == 0

    def feed(self, data: bytes) -> list[bytes]:
        if not self.chunked:
            return self._sized(data)
        out: list[bytes] = []
        data = self.pending + data
        self.pending = b""
        while data and not self.done:
            if self.state == "data":
                take = data[: self.left]
                data = data[len(take) :]
                self.left -= len(take)  # type: ignore[operator]
                out.append(take)
                if self.left == 0:
                    self.state = "crlf"
                continue
            end = data.find(b"\r\n")
            if end < 0:
                if len(data) > MAX_HEAD:
                    raise TransportError("broken", "connection broken: malformed chunked body")
                self.pending = data
                break
            line, data = data[:end], data[end + 2 :]
            if self.state == "crlf":
                if line:
                    raise TransportError("broken", "connection broken: malformed chunk")
                self.state = "size"
            elif self.state == "size":
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise TransportError("broken", "connection broken: malformed chunk size") from None
                self.state, self.left = ("trailer", 0) if size == 0 else ("data", size)
            elif not line:  # the blank line after the trailers
                self.done = True
        if self.done:
            self.rest = data
        return out

    def _sized(self, data: bytes) -> list[bytes]:
        if self.left is None:
            return [data]
        take = data[: self.left]
        self.left -= len(take)
        if self.left == 0:
            self.done = True
            self.rest = data[len(take) :]
        return [take] if take else []

    def eof(self) -> None:
        """The server closed the connection: the end of an until-close body, else a cut one."""
        if self.left is None and not self.chunked:
            self.done = True
        elif not self.done:
            raise TransportError("broken", "connection broken: the server closed the connection mid-body")


class _Releases:
    """A response that owns its connection until its body is read: then the connection goes back
    to its origin's pool when it may be kept, and is closed otherwise."""

    origin: Any
    conn: Any

    def release(self, keep: bool) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        if keep:
            self.origin.put(conn)
        else:
            conn.close()


class _Body(_Releases):
    """Iterates over a response body once; gives its connection back to the pool when the body was
    read to its end on a connection that may be kept, closes it otherwise."""

    def __init__(self, origin: "Origin", conn: _Connection, decoder: BodyDecoder, keep: bool) -> None:
        self.origin = origin
        self.conn: _Connection | None = conn
        self.decoder = decoder
        self.keep = keep and (decoder.chunked or decoder.left is not None)

    def __iter__(self) -> Iterator[bytes]:
        conn, decoder = self.conn, self.decoder
        if conn is None:
            return
        try:
            data = bytes(conn.buffer)
            conn.buffer.clear()
            while True:
                if data:
                    for piece in decoder.feed(data):
                        if piece:
                            yield piece
                if decoder.done:
                    break
                data = conn.sock.recv(READ_SIZE)
                if not data:
                    decoder.eof()
                    self.keep = False
                    break
        except TransportError:
            self.release(False)
            raise
        except TimeoutError:
            self.release(False)
            raise TransportError("read_timeout", "read timeout") from None
        except OSError as exc:
            self.release(False)
            raise TransportError("broken", f"connection broken: {_describe(exc)}") from None
        self.release(self.keep and not decoder.rest)


class Origin:
    """Kept-alive connections to one scheme://host:port, shared by every thread."""

    def __init__(self, scheme: str, host: str, port: int) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        default = 443 if scheme == "https" else 80
        self.host_header = (f"[{host}]" if ":" in host else host) + ("" if port == default else f":{port}")
        self.idle: deque[_Connection] = deque()

    def get(self, connect_timeout: float) -> _Connection:
        while True:
            try:
                conn = self.idle.pop()
            except IndexError:
                return self._connect(connect_timeout)
            # Checked before any byte is written: the one moment a dead connection can be replaced
            # without risking that the upstream receives the request twice.
            if conn.alive():
                conn.reused = True
                return conn
            conn.close()

    def put(self, conn: _Connection) -> None:
        if len(self.idle) < MAX_IDLE:
            conn.idle_since = time.monotonic()
            self.idle.append(conn)
        else:
            conn.close()

    def _connect(self, timeout: float) -> _Connection:
        where = f"{self.scheme}://{self.host_header}"
        try:
            sock = socket.create_connection((self.host, self.port), timeout=timeout)
        except TimeoutError:
            raise TransportError("connect_timeout", f"connect timeout after {timeout:g}s") from None
        except OSError as exc:
            raise TransportError("connect", f"cannot connect to {where} ({_describe(exc)})") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.scheme == "https":
            try:
                sock = tls_context().wrap_socket(sock, server_hostname=self.host)
            except (OSError, ssl.SSLError) as exc:
                sock.close()
                raise TransportError("connect", f"TLS with {where} failed ({_describe(exc)})") from None
        return _Connection(sock)


_origins: dict[tuple[str, str, int], Origin] = {}
_origins_lock = threading.Lock()


def origin_of(url: str) -> Origin:
    origin = _origins_by_url.get(url)
    if origin is None:
        origin = _origins_by_url[url] = _origin_of(url)
    return origin


_origins_by_url: dict[str, Origin] = {}  # a URL parsed once, not on every request


def _origin_of(url: str) -> Origin:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise TransportError("connect", f"not an http(s) URL: {url[:80]!r}")
    key = (scheme, parts.hostname, parts.port or (443 if scheme == "https" else 80))
    origin = _origins.get(key)
    if origin is None:
        with _origins_lock:
            origin = _origins.setdefault(key, Origin(*key))
    return origin


class _RequestHead:
    """What every request to one base URL shares: the path prefix and the header lines."""

    def __init__(self, base_url: str, headers: dict[str, str], host_header: str) -> None:
        self.prefix = urlsplit(base_url).path.rstrip("/") + "/"
        fixed = {"host": host_header, "accept-encoding": "identity", **{k.lower(): v for k, v in headers.items()}}
        check_headers(fixed)
        self.tail = "".join(f"{name}: {value}\r\n" for name, value in fixed.items()).encode("latin-1")

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
        """The request's bytes; `headers` adds this request's own (after the shared ones)."""
        tail = self.tail
        if headers:
            check_headers(headers)
            tail += "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode("latin-1")
        return b"POST %s HTTP/1.1\r\n%scontent-length: %d\r\n\r\n%s" % (
            (self.prefix + path).encode("latin-1"),
            tail,
            len(body),
            body,
        )


class Client:
    """Requests to one base URL. Cheap to create: connections live in the shared Origin."""

    def __init__(self, base_url: str, headers: dict[str, str], connect_timeout: float, read_timeout: float) -> None:
        self.origin = origin_of(base_url)
        self.head = _RequestHead(base_url, headers, self.origin.host_header)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout

    def post(self, path: str, body: bytes) -> Reply:
        """The whole response, body read."""
        reply = self._send(path, body)
        reply.read()
        return reply

    @contextmanager
    def stream(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> Iterator[Reply]:
        """The response with its body unread; leaving the block early closes the connection."""
        reply = self._send(path, body, headers)
        try:
            yield reply
        finally:
            reply._body.release(False)  # a no-op when the body was read to its end

    def close(self) -> None:
        pass  # connections belong to the shared Origin

    def _send(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> Reply:
        request = self.head.post(path, body, headers)
        conn = self.origin.get(self.connect_timeout)  # a reused one was checked alive: sent once, never again
        try:
            conn.sock.settimeout(self.read_timeout)
            conn.sock.sendall(request)
            head = conn.read_until(b"\r\n\r\n", MAX_HEAD)
        except TimeoutError:
            conn.close()
            raise TransportError("read_timeout", f"no data for {self.read_timeout:g}s (read timeout)") from None
        except (EOFError, OSError) as exc:
            conn.close()
            raise TransportError("broken", f"connection broken: {_describe(exc)}") from None
        return self._reply(conn, head)

    def _reply(self, conn: _Connection, head: bytes) -> Reply:
        try:
            status, reason, headers, keep, decoder = parse_reply_head(head)
            while status < 200:  # 100 Continue and friends: the real response follows
                status, reason, headers, keep, decoder = parse_reply_head(conn.read_until(b"\r\n\r\n", MAX_HEAD))
        except (TransportError, EOFError, OSError):
            conn.close()
            raise TransportError("broken", "connection broken: not an HTTP/1.1 response") from None
        return Reply(status, reason, headers, _Body(self.origin, conn, decoder, keep))


def parse_reply_head(head: bytes) -> tuple[int, str, dict[str, str], bool, BodyDecoder]:
    """(status, reason, lower-case headers, may the connection be kept, the body's decoder)."""
    lines = head[:-4].decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise TransportError("broken", "connection broken: not an HTTP/1.1 response")
    headers: dict[str, str] = {}
    name = ""
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and name:  # obsolete line folding: the previous value continues
            headers[name] = f"{headers[name]} {line.strip()}".strip()
            continue
        name, _, value = line.partition(":")
        name = name.strip().lower()
        headers[name] = f"{headers[name]}, {value.strip()}" if name in headers else value.strip()
    status = int(code)
    keep = version == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    length_text = headers.get("content-length")
    length = int(length_text) if length_text and length_text.isdigit() and not chunked else None
    if status in (204, 304) or 100 <= status < 200:
        length, chunked = 0, False
    return status, reason, headers, keep, BodyDecoder(length, chunked)


# --- the asyncio client: the same requests and parsing, for the gateway's event loop --------------


class _AsyncConnection:
    __slots__ = ("reader", "writer", "reused", "idle_since")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.reused = False
        self.idle_since = 0.0

    def usable(self) -> bool:
        # The loop reads idle sockets too: a server's close shows up here with no poll.
        return not (self.reader.at_eof() or self.writer.is_closing())

    def close(self) -> None:
        self.writer.transport.abort()


class AsyncOrigin:
    """Kept-alive asyncio connections to one scheme://host:port (on the loop that made them)."""

    def __init__(self, scheme: str, host: str, port: int, host_header: str) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        self.host_header = host_header
        self.idle: list[_AsyncConnection] = []

    async def get(self, connect_timeout: float) -> _AsyncConnection:
        while self.idle:
            conn = self.idle.pop()
            if conn.usable():
                conn.reused = True
                return conn
            conn.close()
        where = f"{self.scheme}://{self.host_header}"
        tls = {"ssl": tls_context(), "server_hostname": self.host} if self.scheme == "https" else {}
        try:
            async with asyncio.timeout(connect_timeout):
                reader, writer = await asyncio.open_connection(self.host, self.port, limit=MAX_HEAD, **tls)
        except TimeoutError:
            raise TransportError("connect_timeout", f"connect timeout after {connect_timeout:g}s") from None
        except OSError as exc:
            raise TransportError("connect", f"cannot connect to {where} ({_describe(exc)})") from None
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _AsyncConnection(reader, writer)

    def put(self, conn: _AsyncConnection) -> None:
        if len(self.idle) < MAX_IDLE and conn.usable():
            self.idle.append(conn)
        else:
            conn.close()


class AsyncReply(_Releases):
    """A response head; its body with `read()` or `async for piece in reply.iter_bytes()`."""

    def __init__(
        self,
        origin: AsyncOrigin,
        conn: _AsyncConnection,
        status: int,
        reason: str,
        headers: dict[str, str],
        decoder: BodyDecoder,
        keep: bool,
        read_timeout: float | None,
    ) -> None:
        self.origin = origin
        self.conn: _AsyncConnection | None = conn
        self.status = status
        self.reason = reason
        self.headers = headers
        self.decoder = decoder
        self.keep = keep and (decoder.chunked or decoder.left is not None)
        self.read_timeout = read_timeout
        self.content = b""

    async def read(self) -> bytes:
        self.content = b"".join([piece async for piece in self.iter_bytes()])
        return self.content

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        conn, decoder = self.conn, self.decoder
        if conn is None:
            return
        try:
            while not decoder.done:
                async with asyncio.timeout(
                    self.read_timeout
                ):  # no data for read_timeout: give up (None: timed by the caller)
                    data = await conn.reader.read(READ_SIZE)
                if not data:
                    decoder.eof()
                    self.keep = False
                    break
                for piece in decoder.feed(data):
                    if piece:
                        yield piece
        except TransportError:
            self.release(False)
            raise
        except TimeoutError:
            self.release(False)
            raise TransportError("read_timeout", f"no data for {self.read_timeout:g}s (read timeout)") from None
        except OSError as exc:
            self.release(False)
            raise TransportError("broken", f"connection broken: {_describe(exc)}") from None
        except BaseException:  # cancelled (the caller's timeout, a client gone): the body is unread
            self.release(False)
            raise
        self.release(self.keep and not decoder.rest)


# Per event loop: a connection belongs to the loop that opened it (and goes when the loop goes).
_async_origins: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, AsyncOrigin]]" = (
    weakref.WeakKeyDictionary()
)  # by URL


def async_origin_of(url: str) -> AsyncOrigin:
    loop = asyncio.get_running_loop()
    origins = _async_origins.get(loop)
    if origins is None:
        origins = _async_origins[loop] = {}
    origin = origins.get(url)
    if origin is None:
        sync = origin_of(url)  # validates the URL
        key = (sync.scheme, sync.host, sync.port)
        same = next((o for o in origins.values() if (o.scheme, o.host, o.port) == key), None)
        origin = origins[url] = same or AsyncOrigin(sync.scheme, sync.host, sync.port, sync.host_header)
    return origin


class AsyncClient:
    """Client's requests on the running event loop (one loop: the gateway's)."""

    def __init__(self, base_url: str, headers: dict[str, str], connect_timeout: float, read_timeout: float) -> None:
        self.origin = async_origin_of(base_url)
        self.head = _RequestHead(base_url, headers, self.origin.host_header)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout

    async def post(self, path: str, body: bytes) -> AsyncReply:
        """The whole response within read_timeout (one timer for the head and the body)."""
        try:
            async with asyncio.timeout(self.read_timeout):
                reply = await self.send(path, body, timed=False)
                reply.read_timeout = None
                await reply.read()
        except TimeoutError:
            raise TransportError("read_timeout", f"no data for {self.read_timeout:g}s (read timeout)") from None
        return reply

    async def send(self, path: str, body: bytes, timed: bool = True) -> AsyncReply:
        """The response with its body unread: read it, or `release(False)` it. `timed=False`:
        the caller times the wait itself."""
        request = self.head.post(path, body)
        conn = await self.origin.get(self.connect_timeout)  # a reused one is open: sent once, never again
        try:
            conn.writer.write(request)
            async with asyncio.timeout(self.read_timeout if timed else None):
                head = await conn.reader.readuntil(b"\r\n\r\n")
                status, reason, headers, keep, decoder = parse_reply_head(head)
                while status < 200:
                    status, reason, headers, keep, decoder = parse_reply_head(await conn.reader.readuntil(b"\r\n\r\n"))
        except asyncio.IncompleteReadError:
            conn.close()
            raise TransportError("broken", "connection broken: the server closed the connection") from None
        except TimeoutError:
            conn.close()
            raise TransportError("read_timeout", f"no data for {self.read_timeout:g}s (read timeout)") from None
        except (asyncio.LimitOverrunError, ValueError):
            conn.close()
            raise TransportError("broken", "the upstream sent an oversized response head") from None
        except TransportError:
            conn.close()
            raise
        except OSError as exc:
            conn.close()
            raise TransportError("broken", f"connection broken: {_describe(exc)}") from None
        except BaseException:  # cancelled mid-response: this connection cannot be reused
            conn.close()
            raise
        return AsyncReply(self.origin, conn, status, reason, headers, decoder, keep, self.read_timeout)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return "the server closed the connection"
    return getattr(exc, "strerror", None) or type(exc).__name__


# --- choosing the transport ---------------------------------------------------------------------


def client_for(
    base_url: str, headers: dict[str, str], connect_timeout: float, read_timeout: float
) -> "Client | HttpxClient":
    """This client, or httpx's when an environment proxy applies to the URL."""
    cls = HttpxClient if proxied(base_url) else Client
    return cls(base_url, headers, connect_timeout, read_timeout)


class HttpxClient:
    """The same interface over httpx, for URLs behind an environment proxy."""

    def __init__(self, base_url: str, headers: dict[str, str], connect_timeout: float, read_timeout: float) -> None:
        import httpx

        check_headers(headers)
        self._httpx = httpx
        timeout = httpx.Timeout(connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout)
        verify = tls_context() if base_url.startswith("https:") else False
        self.client = httpx.Client(base_url=base_url.rstrip("/") + "/", headers=headers, timeout=timeout, verify=verify)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.base_url = base_url

    def post(self, path: str, body: bytes) -> Reply:
        with self.stream(path, body) as reply:
            reply.read()
        return reply

    @contextmanager
    def stream(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> Iterator[Reply]:
        with self._errors():
            with self.client.stream("POST", path, content=body, headers=headers) as response:
                yield Reply(
                    response.status_code, response.reason_phrase, dict(response.headers), self._chunks(response)
                )

    def _chunks(self, response) -> Iterator[bytes]:  # noqa: ANN001
        with self._errors():
            yield from response.iter_bytes()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        httpx = self._httpx
        try:
            yield
        except httpx.ConnectTimeout:
            raise TransportError("connect_timeout", f"connect timeout after {self.connect_timeout:g}s") from None
        except httpx.ReadTimeout:
            raise TransportError("read_timeout", f"no data for {self.read_timeout:g}s (read timeout)") from None
        except httpx.TimeoutException:
            raise TransportError("read_timeout", "timeout") from None
        except httpx.ConnectError:
            raise TransportError("connect", f"cannot connect to {self.base_url}") from None
        except httpx.HTTPError as exc:
            raise TransportError("broken", f"connection broken: {type(exc).__name__}") from None

    def close(self) -> None:
        self.client.close()


def proxied(url: str) -> bool:
    """Does an environment proxy (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY) apply to this URL?"""
    proxies = environment_proxies()
    parts = urlsplit(url)
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass_environment(parts.hostname or "", proxies)


@functools.cache
def environment_proxies() -> dict[str, str]:
    """Read once per process: scanning the environment cost ~0.2 ms, on every gateway request."""
    return urllib.request.getproxies_environment()


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One verified TLS context per process (loading a CA bundle costs tens of milliseconds):
    SSL_CERT_FILE / SSL_CERT_DIR when set (a company's own CA, as httpx honours them), else
    certifi's bundle."""
    cafile, capath = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
    cafile = cafile if cafile and os.path.isfile(cafile) else None
    capath = capath if capath and os.path.isdir(capath) else None
    if cafile or capath:
        return ssl.create_default_context(cafile=cafile, capath=capath)
    import certifi

    return ssl.create_default_context(cafile=certifi.where())
