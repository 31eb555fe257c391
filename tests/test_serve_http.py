"""`r42 serve` at the HTTP level: auth bypass attempts, limits, malformed and oversized requests,
client disconnects, keep-alive and shutdown. Raw sockets and http.client, so nothing is tidied up
by a client library."""

from __future__ import annotations

import http.client
import socket
import threading
import time

import orjson
import pytest
from click.testing import CliRunner

from r42.config import load_settings
from r42.errors import UsageError
from r42.server import build, serve_in_thread
from r42.server.http import ServerLimits
from tests.fakes import OpenAIFake, faults
from tests.test_serve import DIRECT, REPLY, gateway, key, log_rows, upstreams  # noqa: F401 - fixtures

BODY = orjson.dumps({"model": DIRECT, "messages": [{"role": "user", "content": "hi"}]})


def post(
    url: str, path: str, body: bytes = BODY, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", path, body, {"Content-Type": "application/json", **(headers or {})})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def raw(url: str, data: bytes) -> bytes:
    """Send raw bytes, read until the server closes or 2 s of silence."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(data)
        sock.settimeout(2)
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
                if b"\r\n\r\n" in out and b"Content-Length: " in out:
                    head, _, body = out.partition(b"\r\n\r\n")
                    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                    if len(body) >= length:
                        break
        except socket.timeout:
            pass
    return out


# --- auth -----------------------------------------------------------------------------------------


def test_missing_wrong_and_revoked_keys_are_refused(gateway, key):
    from r42.store import create_key, revoke

    status, headers, body = post(gateway.url, "/v1/chat/completions")
    assert status == 401 and orjson.loads(body)["error"]["code"] == "missing_api_key" and "x-r42-request-id" in headers
    assert post(gateway.url, "/v1/chat/completions", headers={"Authorization": "Bearer r42_" + "x" * 43})[0] == 401
    assert post(gateway.url, "/v1/chat/completions", headers={"Authorization": f"Basic {key}"})[0] == 401
    assert post(gateway.url, "/v1/chat/completions", headers={"Authorization": f"Bearer {key[:-1]}"})[0] == 401
    other = create_key("bob").key
    assert post(gateway.url, "/v1/chat/completions", headers={"x-api-key": other})[0] == 200
    revoke(other)
    assert post(gateway.url, "/v1/chat/completions", headers={"x-api-key": other})[0] == 401


def test_header_case_does_not_matter_and_query_keys_are_ignored(gateway, key):
    assert post(gateway.url, "/v1/chat/completions", headers={"AUTHORIZATION": f"bearer {key}"})[0] == 200
    assert post(gateway.url, "/v1/chat/completions", headers={"X-Api-Key": key})[0] == 200
    for query in (f"?api_key={key}", f"?key={key}", f"?authorization=Bearer%20{key}"):
        assert post(gateway.url, "/v1/chat/completions" + query)[0] == 401


def test_duplicate_credentials_and_smuggling_shapes_are_rejected(gateway, key):
    dup = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer %s\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s"
        % (key.encode(), key.encode(), len(BODY), BODY)
    )
    assert raw(gateway.url, dup).startswith(b"HTTP/1.1 400")
    both = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    assert raw(gateway.url, both).startswith(b"HTTP/1.1 400")
    space = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello"
    assert raw(gateway.url, space).startswith(b"HTTP/1.1 400")


def test_public_endpoints_need_no_key(gateway):
    for path in ("/health", "/", "/v1/models", "/api/models"):
        conn = http.client.HTTPConnection(*gateway.url.removeprefix("http://").split(":"))
        conn.request("GET", path)
        assert conn.getresponse().status == 200, path


def test_no_auth_only_on_loopback(upstreams):
    with pytest.raises(UsageError, match="loopback"):
        build(load_settings(), "0.0.0.0", 0, no_auth=True)
    with serve_in_thread(load_settings(), no_auth=True) as running:
        assert post(running.url, "/v1/chat/completions")[0] == 200


# --- limits ---------------------------------------------------------------------------------------


def test_requests_per_minute_limit_gives_429_with_rate_headers(gateway):
    from r42.store import create_key

    limited = create_key("carol", rpm=2).key
    statuses = [post(gateway.url, "/v1/chat/completions", headers={"x-api-key": limited}) for _ in range(3)]
    assert [s for s, _, _ in statuses] == [200, 200, 429]
    status, headers, body = statuses[2]
    assert int(headers["retry-after"]) >= 1
    assert (
        headers["x-ratelimit-limit"] == "2"
        and headers["x-ratelimit-remaining"] == "0"
        and int(headers["x-ratelimit-reset"]) >= 1
    )
    assert orjson.loads(body)["error"]["type"] == "rate_limit_error"
    assert statuses[0][1]["x-ratelimit-remaining"] == "1"


def test_monthly_budget_limit(gateway):
    from r42.store import create_key

    broke = create_key("dave", budget_usd=0).key
    status, headers, _ = post(gateway.url, "/v1/chat/completions", headers={"x-api-key": broke})
    assert status == 429 and int(headers["retry-after"]) >= 1


def test_oversized_malformed_and_deep_bodies(gateway, key):
    auth = {"Authorization": f"Bearer {key}"}
    status, _, body = post(gateway.url, "/v1/chat/completions", b"{" + b" " * (300 * 1024) + b"}", auth)
    assert status == 413 and orjson.loads(body)["error"]["type"] == "invalid_request_error"
    assert post(gateway.url, "/v1/chat/completions", b"{not json", auth)[0] == 400
    assert post(gateway.url, "/v1/chat/completions", b"[1, 2]", auth)[0] == 400
    assert post(gateway.url, "/v1/chat/completions", b"", auth)[0] == 400
    deep = b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}], "x": ' + b"[" * 100 + b"]" * 100 + b"}"
    status, _, body = post(gateway.url, "/v1/chat/completions", deep, auth)
    assert status == 400 and b"nested deeper" in body
    assert post(gateway.url, "/v1/chat/completions", orjson.dumps({"model": DIRECT, "messages": "hi"}), auth)[0] == 400
    status, _, body = post(gateway.url, "/v1/messages", orjson.dumps({"model": DIRECT}), {"x-api-key": key})
    assert status == 400 and orjson.loads(body)["type"] == "error"


def test_header_limits_and_bad_request_lines(gateway):
    huge = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (40 * 1024) + b"\r\n\r\n"
    assert raw(gateway.url, huge).startswith(b"HTTP/1.1 431")
    many = b"GET /health HTTP/1.1\r\n" + b"".join(b"X-H%d: 1\r\n" % i for i in range(150)) + b"\r\n"
    assert raw(gateway.url, many).startswith(b"HTTP/1.1 431")
    assert raw(gateway.url, b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert raw(gateway.url, b"GET / HTTP/2.0\r\n\r\n").startswith(b"HTTP/1.1 505")


def test_slow_client_gets_408(upstreams):
    limits = ServerLimits(head_timeout=0.3)
    with serve_in_thread(load_settings(), limits=limits) as running:
        host, port = running.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never finishes its head
            assert sock.recv(1024).startswith(b"HTTP/1.1 408")


def test_concurrency_cap_gives_503_with_retry_after(upstreams, key):
    oa, _ = upstreams
    limits = ServerLimits(max_concurrency=1)
    with serve_in_thread(load_settings(), limits=limits) as running:
        oa.fail(faults.slow_first_byte(1.0))
        first: list = []
        thread = threading.Thread(
            target=lambda: first.append(post(running.url, "/v1/chat/completions", headers={"x-api-key": key}))
        )
        thread.start()
        while running.gateway.metrics.inflight == 0:
            time.sleep(0.01)
        status, headers, _ = post(running.url, "/v1/chat/completions", headers={"x-api-key": key})
        thread.join()
    assert status == 503 and headers["retry-after"] == "1"
    assert first[0][0] == 200


# --- connections ----------------------------------------------------------------------------------


def test_keep_alive_serves_many_requests_on_one_connection(gateway, key):
    host, port = gateway.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    for _ in range(5):
        conn.request("POST", "/v1/chat/completions", BODY, {"x-api-key": key})
        response = conn.getresponse()
        assert orjson.loads(response.read())["choices"][0]["message"]["content"] == REPLY
    sock = conn.sock
    conn.request("GET", "/health")
    conn.getresponse().read()
    assert conn.sock is sock  # the same TCP connection throughout
    conn.close()


def test_accepted_sockets_have_nodelay(gateway):
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.recv(4096)
        writers = list(gateway.server.connections)
        assert writers and all(
            w.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for w in writers
        )


class EndlessFake(OpenAIFake):
    """Streams a long answer slowly, and notes when its handler ends (the connection released)."""

    def __init__(self) -> None:
        super().__init__(reply=" ".join(["word"] * 20000))
        self.ended = threading.Event()

    def handle(self, http, request, fault):  # noqa: ANN001
        from tests.fakes.openai import stream_events

        try:
            http.start_stream("text/event-stream")
            http.stream_events(stream_events(self.turn(request.json), "m", False), None, pause=0.002)
        finally:
            self.ended.set()


def test_client_disconnect_mid_stream_releases_upstream_and_logs(monkeypatch, key):
    with EndlessFake() as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-upstream")
        with serve_in_thread(load_settings()) as running:
            host, port = running.url.removeprefix("http://").split(":")
            body = orjson.dumps({"model": DIRECT, "messages": [{"role": "user", "content": "hi"}], "stream": True})
            sock = socket.create_connection((host, int(port)), timeout=10)
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-api-key: %s\r\nContent-Length: %d\r\n\r\n%s"
                % (key.encode(), len(body), body)
            )
            received = b""
            while b"word" not in received:
                received += sock.recv(4096)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            sock.close()  # gone mid-stream
            assert fake.ended.wait(20), "the upstream stream was not released"
            for _ in range(200):
                rows = log_rows(running)
                if rows and rows[-1]["status"] == "client_closed":
                    break
                time.sleep(0.05)
            assert rows[-1]["status"] == "client_closed" and rows[-1]["model"] == DIRECT


def test_graceful_shutdown_lets_requests_in_flight_finish(upstreams, key):
    oa, _ = upstreams
    running = serve_in_thread(load_settings()).start()
    oa.fail(faults.slow_first_byte(0.5))
    result: list = []
    thread = threading.Thread(
        target=lambda: result.append(post(running.url, "/v1/chat/completions", headers={"x-api-key": key}))
    )
    thread.start()
    while running.gateway.metrics.inflight == 0:
        time.sleep(0.01)
    running.stop()
    thread.join()
    status, headers, body = result[0]
    assert status == 200 and orjson.loads(body)["choices"][0]["message"]["content"] == REPLY
    assert headers.get("connection") == "close"
    with pytest.raises(OSError):
        post(running.url, "/health")


def test_cli_serve_refuses_no_auth_on_all_interfaces():
    from r42.cli import cli

    result = CliRunner().invoke(cli, ["serve", "--no-auth", "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 2 and "loopback" in result.output
    help_text = CliRunner().invoke(cli, ["serve", "--help"]).output
    assert "--no-auth" in help_text and "R42_SERVE_PORT" in help_text
