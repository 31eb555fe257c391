"""r42.providers.http11 against a raw loopback server whose every byte the test decides."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from r42.providers import http11
from r42.providers.http11 import Client, HttpxClient, TransportError, client_for, proxied


class RawServer:
    """Accepts connections and answers each request with the next scripted action:
    bytes to send, (bytes, "close") to send them and close, "close" (close without answering) or
    "hang" (answer nothing)."""

    def __init__(self, *script: bytes | str, default: bytes | None = None) -> None:
        self.script = list(script)
        self.default = default
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.requests: list[bytes] = []
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            self.open.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, rest = buffer.partition(b"\r\n\r\n")
                length = int(
                    next(
                        (
                            line.split(b":")[1]
                            for line in head.split(b"\r\n")
                            if line.lower().startswith(b"content-length")
                        ),
                        b"0",
                    )
                )
                while len(rest) < length:
                    rest += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + rest[:length])
                buffer = rest[length:]
                action = self.script.pop(0) if self.script else self.default
                if action == "close" or action is None:
                    conn.close()
                    return
                if action == "hang":
                    time.sleep(5)
                    return
                if isinstance(action, tuple):  # (bytes, "close"): answer, then close
                    conn.sendall(action[0])
                    conn.close()
                    return
                conn.sendall(action)
        except OSError:
            return

    def close(self) -> None:
        self.sock.close()
        for conn in self.open:
            try:
                conn.close()
            except OSError:
                pass


def ok(body: bytes = b'{"ok":true}', extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s" % (
        len(body),
        extra,
        body,
    )


@pytest.fixture
def client_of():
    servers = []

    def make(*script, default=None, read_timeout=2.0):
        server = RawServer(*script, default=default)
        servers.append(server)
        return server, Client(server.url, {"Authorization": "Bearer sk-test"}, 1.0, read_timeout)

    yield make
    for server in servers:
        server.close()


def test_a_request_goes_out_whole_with_its_headers(client_of):
    server, client = client_of(ok())
    reply = client.post("chat/completions", b'{"a":1}')
    assert reply.status == 200 and reply.content == b'{"ok":true}'
    request = server.requests[0]
    assert request.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert f"host: 127.0.0.1:{server.port}\r\n".encode() in request
    assert b"authorization: Bearer sk-test\r\n" in request and b"accept-encoding: identity\r\n" in request
    assert request.endswith(b'content-length: 7\r\n\r\n{"a":1}')


def test_connections_are_kept_alive_and_reused(client_of):
    server, client = client_of(default=ok())
    for _ in range(5):
        assert client.post("x", b"{}").status == 200
    assert server.connections == 1 and len(server.requests) == 5


def test_connection_close_is_honoured(client_of):
    server, client = client_of(default=ok(extra=b"Connection: close\r\n"))
    client.post("x", b"{}")
    client.post("x", b"{}")
    assert server.connections == 2


def test_an_idle_connection_the_server_closed_is_replaced(client_of):
    server, client = client_of(ok(), default=ok())
    client.post("x", b"{}")
    server.open[0].shutdown(socket.SHUT_RDWR)  # the server's keep-alive timeout, while the connection sat idle
    time.sleep(0.05)
    assert client.post("x", b"{}").status == 200
    assert server.connections == 2 and len(server.requests) == 2  # found dead before writing: nothing resent


def test_a_post_that_reached_the_upstream_is_never_sent_again(client_of):
    """The upstream takes the second completion and closes without answering: that is an error
    for the caller, not a resend (which the upstream would bill twice)."""
    server, client = client_of(ok(), "close", default=ok(b'{"second":1}'))
    client.post("x", b"{}")
    with pytest.raises(TransportError) as caught:
        client.post("x", b"{}")
    assert caught.value.kind == "broken"
    assert server.connections == 1 and len(server.requests) == 2


def test_a_counting_upstream_sees_each_completion_once(client_of):
    """Every other request is taken and dropped unanswered on a kept-alive connection."""
    server, client = client_of(*[ok() if i % 2 == 0 else "close" for i in range(10)])
    sent = 0
    for _ in range(10):
        sent += 1
        try:
            client.post("chat/completions", b'{"n":%d}' % sent)
        except TransportError:
            pass
    assert len(server.requests) == sent == 10
    assert sorted(r.rsplit(b"\r\n\r\n", 1)[1] for r in server.requests) == sorted(b'{"n":%d}' % n for n in range(1, 11))


def test_the_async_client_never_resends_either():
    server = RawServer(ok(), "close", default=ok())

    async def run() -> list[str]:
        client = http11.AsyncClient(server.url, {}, 1.0, 2.0)
        outcomes = []
        for _ in range(3):
            try:
                await client.post("x", b"{}")
                outcomes.append("ok")
            except TransportError as exc:
                outcomes.append(exc.kind)
        return outcomes

    try:
        assert asyncio.run(run()) == ["ok", "broken", "ok"]
        assert len(server.requests) == 3
    finally:
        server.close()


@pytest.mark.parametrize("bad", ["sk-abc\r\nX-Injected: 1", "sk-abc\nX-Injected: 1", "sk-\x00", "sk-\u2028"])
def test_a_provider_key_with_cr_or_lf_cannot_inject_a_header(client_of, bad):
    server = RawServer(default=ok())
    try:
        for make in (http11.Client, http11.AsyncClient):
            with pytest.raises(TransportError) as caught:
                if make is http11.AsyncClient:

                    async def build(make: type = make) -> None:  # the async client is made inside a loop
                        make(server.url, {"Authorization": f"Bearer {bad}"}, 1.0, 1.0)

                    asyncio.run(build())
                else:
                    make(server.url, {"Authorization": f"Bearer {bad}"}, 1.0, 1.0)
            assert caught.value.kind == "invalid_header" and "authorization" in caught.value.message
            assert "sk-" not in caught.value.message  # never the value
        assert server.requests == []
    finally:
        server.close()


def test_a_per_request_header_with_a_bare_lf_is_refused(client_of):
    server, client = client_of(default=ok())
    with pytest.raises(TransportError) as caught:
        with client.stream("x", b"{}", {"anthropic-beta": "a\nX-Injected: 1"}):
            pass
    assert caught.value.kind == "invalid_header" and server.requests == []


def test_obsolete_line_folding_in_a_response_is_unfolded(client_of):
    server, client = client_of(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Long: first\r\n  second\r\n\tthird\r\n\r\n{}"
    )
    reply = client.post("x", b"{}")
    assert reply.headers["x-long"] == "first second third" and reply.content == b"{}"


def test_a_fresh_connection_closed_without_an_answer_is_an_error(client_of):
    server, client = client_of("close")
    with pytest.raises(TransportError) as caught:
        client.post("x", b"{}")
    assert caught.value.kind == "broken"


def test_chunked_bodies_with_extensions_and_trailers(client_of):
    body = b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n"
    server, client = client_of(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body, default=ok())
    assert client.post("x", b"{}").content == b"hello, world"
    assert client.post("x", b"{}").status == 200  # the connection was left at the next response
    assert server.connections == 1


def test_a_stream_yields_chunks_as_they_come(client_of):
    events = [b"data: %d\n\n" % i for i in range(3)]
    body = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n"
    server, client = client_of(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    )
    with client.stream("x", b"{}") as reply:
        assert reply.headers["content-type"] == "text/event-stream"
        assert b"".join(reply.iter_bytes()) == b"".join(events)


def test_a_stream_left_early_closes_its_connection(client_of):
    body = b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n"
    server, client = client_of(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body, default=ok())
    with client.stream("x", b"{}") as reply:
        next(iter(reply.iter_bytes()))
    client.post("x", b"{}")
    assert server.connections == 2  # the half-read connection was not given to the next request


def test_a_body_cut_short_is_broken(client_of):
    server, client = client_of((b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", "close"))
    with pytest.raises(TransportError) as caught:
        client.post("x", b"{}")
    assert caught.value.kind == "broken"


def test_read_timeout(client_of):
    server, client = client_of("hang", read_timeout=0.2)
    with pytest.raises(TransportError) as caught:
        client.post("x", b"{}")
    assert caught.value.kind == "read_timeout" and "0.2" in caught.value.message


def test_connection_refused():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TransportError) as caught:
        Client(f"http://127.0.0.1:{port}", {}, 1.0, 1.0).post("x", b"{}")
    assert caught.value.kind == "connect"


def test_secrets_never_appear_in_transport_errors(client_of):
    server, client = client_of("close")
    with pytest.raises(TransportError) as caught:
        client.post("x", b"{}")
    assert "sk-test" not in str(caught.value)


def test_environment_proxies_choose_httpx(monkeypatch):
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    http11.environment_proxies.cache_clear()
    assert not proxied("https://api.openai.com/v1")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    http11.environment_proxies.cache_clear()  # read once per process, so again after the change
    assert proxied("https://api.openai.com/v1")
    assert not proxied("http://127.0.0.1:1234/v1")
    assert isinstance(client_for("https://api.openai.com/v1", {}, 1, 1), HttpxClient)
    assert isinstance(client_for("http://127.0.0.1:1234/v1", {}, 1, 1), Client)
    monkeypatch.undo()
    http11.environment_proxies.cache_clear()


def test_origins_are_shared_between_clients():
    a = Client("http://127.0.0.1:1/v1", {}, 1, 1)
    b = Client("http://127.0.0.1:1/other", {"x": "y"}, 2, 2)
    assert a.origin is b.origin is http11.origin_of("http://127.0.0.1:1")
