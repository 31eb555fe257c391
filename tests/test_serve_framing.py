"""`r42 serve`'s HTTP framing against raw sockets (issue 15 items 4, 9 and 11): header injection,
chunk terminators, HTTP/1.0, absolute-form targets, 100 Continue after authentication, HEAD, a
busy port and the built-in model on a gateway."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import orjson
import pytest

from r42.config import load_settings
from r42.server import serve_in_thread
from r42.server.http import ServerLimits
from tests.test_serve import DIRECT, REPLY, gateway, key, upstreams  # noqa: F401 - fixtures

BODY = orjson.dumps({"model": DIRECT, "messages": [{"role": "user", "content": "hi"}]})


def exchange(url: str, data: bytes, first_only: bool = False) -> tuple[bytes, bool]:
    """Send raw bytes; (everything read, did the server close the connection?). Gives up after
    5 s of silence, which a test treats as a hang. `first_only`: stop after the first response head."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(data)
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
                if first_only and b"\r\n\r\n" in out:
                    return out, False
            return out, True
        except socket.timeout:
            return out, False
        except ConnectionResetError:
            return out, True


def status_of(data: bytes) -> int:
    return int(data.split(b" ", 2)[1])


def head_of(data: bytes) -> dict[bytes, bytes]:
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    return {line.split(b":", 1)[0].lower(): line.split(b":", 1)[1].strip() for line in head}


def post_bytes(path: str, body: bytes, headers: str = "", version: str = "HTTP/1.1") -> bytes:
    return (
        f"POST {path} {version}\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"{headers}Connection: close\r\n\r\n"
    ).encode("latin-1") + body


# --- item 4: header injection -------------------------------------------------------------------


@pytest.mark.parametrize(
    "model",
    [
        "openai/gpt-4o-mini\r\nSet-Cookie: a=b",
        "openai/gpt-4o-mini\nX-Injected: 1",
        "openai/gpt-4o-miné",
        "openai/gpt\u2028x",
        "openai/\x00",
    ],
)
def test_a_model_with_cr_lf_or_non_ascii_is_a_400_and_never_reaches_the_upstream(gateway, key, upstreams, model):
    body = orjson.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
    for path in ("/v1/chat/completions", "/v1/messages"):
        payload = body if path.endswith("completions") else orjson.dumps({**orjson.loads(body), "max_tokens": 10})
        data, _ = exchange(gateway.url, post_bytes(path, payload, f"Authorization: Bearer {key}\r\n"))
        assert status_of(data) == 400, data[:300]
        head = head_of(data)
        assert b"set-cookie" not in head and b"x-injected" not in head and b"x-r42-model" not in head
    assert upstreams[0].requests == [] and upstreams[1].requests == []


@pytest.mark.parametrize("value", [b"a\nX-Injected: 1", b"a\rX-Injected: 1", b"a\x00b", b"a\x7fb"])
def test_a_control_character_inside_a_request_header_value_is_a_400(gateway, key, upstreams, value):
    head = (
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + key.encode()
        + b"\r\nanthropic-beta: "
        + value
        + b"\r\nContent-Length: 2\r\n\r\n{}"
    )
    data, closed = exchange(gateway.url, head)
    assert status_of(data) == 400 and closed
    assert upstreams[1].requests == []


@pytest.mark.parametrize("name", [b"X Bad", b"X\x01", b"(x)", b'X"y'])
def test_a_header_name_that_is_not_a_token_is_a_400(gateway, name):
    data, _ = exchange(gateway.url, b"GET /health HTTP/1.1\r\nHost: x\r\n" + name + b": 1\r\n\r\n")
    assert status_of(data) == 400


def test_a_provider_key_with_crlf_cannot_inject_an_upstream_header(gateway, key, upstreams, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-upstream-openai\r\nX-Injected: 1")
    data, _ = exchange(gateway.url, post_bytes("/v1/chat/completions", BODY, f"Authorization: Bearer {key}\r\n"))
    assert status_of(data) == 502 and b"sk-upstream-openai" not in data
    assert upstreams[0].requests == []  # nothing was sent, so nothing was injected


def test_the_adapter_names_the_bad_header_and_hides_the_key():
    from r42.providers import Endpoint, ProviderError
    from r42.providers.openai_compat import OpenAICompatAdapter

    endpoint = Endpoint("openai", "openai", "http://127.0.0.1:9/v1", "sk-secret\r\nX-Injected: 1", 1.0, 1.0)
    with pytest.raises(ProviderError) as caught:
        OpenAICompatAdapter(endpoint)
    assert "'authorization'" in caught.value.message and "sk-secret" not in caught.value.message


# --- item 9: framing ----------------------------------------------------------------------------


def chunked(key: str, chunks: bytes, version: str = "HTTP/1.1") -> bytes:
    head = f"POST /v1/chat/completions {version}\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
    return (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + chunks


@pytest.mark.parametrize(
    "chunks",
    [
        b"3\r\nabcdef\r\n0\r\n\r\n",
        b"3\r\nab\r\n\r\n0\r\n\r\n",
        b"-3\r\nabc\r\n0\r\n\r\n",
        b"0x3\r\nabc\r\n0\r\n\r\n",
        b"+3\r\nabc\r\n0\r\n\r\n",
        b"1_0\r\n" + b"a" * 16 + b"\r\n0\r\n\r\n",
        b" 3\r\nabc\r\n0\r\n\r\n",
        b"3\r\nabcXY0\r\n\r\n",
    ],
)
def test_a_chunk_that_does_not_end_where_its_size_says_is_a_400_at_once(gateway, key, chunks):
    data, closed = exchange(gateway.url, chunked(key, chunks))
    assert closed, "the server waited for bytes that never come"
    assert status_of(data) == 400


def test_a_well_formed_chunked_body_with_extensions_and_trailers_is_accepted(gateway, key):
    body = BODY
    chunks = b"%x;name=value\r\n%s\r\n%x\r\n%s\r\n0\r\nX-Trailer: 1\r\n\r\n" % (
        10,
        body[:10],
        len(body) - 10,
        body[10:],
    )
    data, _ = exchange(gateway.url, chunked(key, chunks).replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
    assert status_of(data) == 200 and REPLY.encode() in data


def test_an_http_1_0_client_gets_no_chunked_encoding(gateway, key):
    body = orjson.dumps({"model": DIRECT, "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    request = post_bytes("/v1/chat/completions", body, f"Authorization: Bearer {key}\r\n", "HTTP/1.0")
    data, closed = exchange(gateway.url, request)
    head = head_of(data)
    assert status_of(data) == 200 and b"transfer-encoding" not in head and closed
    events = data.split(b"\r\n\r\n", 1)[1]
    assert events.startswith(b"data: ") and events.rstrip().endswith(b"data: [DONE]")


def test_an_http_1_0_client_gets_content_length_and_a_closed_connection(gateway):
    data, closed = exchange(gateway.url, b"GET /health HTTP/1.0\r\n\r\n")
    head = head_of(data)
    assert status_of(data) == 200 and b"content-length" in head and b"transfer-encoding" not in head and closed


def test_an_absolute_form_target_is_served_as_its_path(gateway, key):
    host = gateway.url.removeprefix("http://")
    request = post_bytes(f"http://{host}/v1/chat/completions?x=1", BODY, f"Authorization: Bearer {key}\r\n")
    data, _ = exchange(gateway.url, request)
    assert status_of(data) == 200 and REPLY.encode() in data


@pytest.mark.parametrize("target", [b"/v1/\xffx", b"/a\x01b"])
def test_a_target_with_control_or_non_ascii_bytes_is_a_400(gateway, target):
    data, _ = exchange(gateway.url, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(data) == 400


def test_expect_100_continue_waits_for_authentication(gateway, key):
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer r42_wrong\r\n"
        f"Expect: 100-continue\r\nContent-Length: {32 * 1024 * 1024}\r\n\r\n"
    ).encode()
    data, closed = exchange(gateway.url, head)
    assert status_of(data) == 401 and b"100 Continue" not in data and closed
    good = head.replace(b"r42_wrong", key.encode()).replace(b"%d" % (32 * 1024 * 1024), b"%d" % len(BODY))
    data, _ = exchange(gateway.url, good, first_only=True)
    assert data.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")


def test_expect_100_continue_to_an_unknown_endpoint_is_refused_before_the_body(gateway):
    head = b"POST /nowhere HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1000\r\n\r\n"
    data, closed = exchange(gateway.url, head)
    assert status_of(data) == 404 and b"100 Continue" not in data and closed


@pytest.mark.parametrize("path", ["/", "/health", "/v1/models"])
def test_head_is_answered_like_get_without_a_body(gateway, path):
    get, _ = exchange(gateway.url, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    head, closed = exchange(gateway.url, f"HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    assert status_of(head) == status_of(get) == 200 and closed
    assert head.endswith(b"\r\n\r\n") and int(head_of(head)[b"content-length"]) > 0


def test_head_keeps_the_connection_usable(gateway):
    two = b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    data, _ = exchange(gateway.url, two)
    assert data.count(b"HTTP/1.1 200 OK") == 2


# --- item 11: the built-in model, a busy port -----------------------------------------------------


def test_a_key_holder_cannot_start_the_built_in_model(gateway, key, upstreams):
    body = orjson.dumps({"model": "local/x", "messages": [{"role": "user", "content": "hi"}]})
    data, _ = exchange(gateway.url, post_bytes("/v1/chat/completions", body, f"Authorization: Bearer {key}\r\n"))
    assert status_of(data) == 403 and b"builtin_local_disabled" in data
    from r42.availability import BUILTIN_LOCAL

    router = gateway.gateway.router_for(None)
    assert not router.availability.check(router.catalog.providers[BUILTIN_LOCAL]).ok


def test_the_setting_allows_the_built_in_model_on_a_gateway(upstreams, monkeypatch):
    monkeypatch.setenv("R42_SERVE_BUILTIN_LOCAL", "1")
    from r42.availability import BUILTIN_LOCAL, builtin_model_installed

    with serve_in_thread(load_settings(), limits=ServerLimits(grace=1), no_auth=True) as running:
        router = running.gateway.router_for(None)
        assert router.availability.check(router.catalog.providers[BUILTIN_LOCAL]).ok == builtin_model_installed()


def test_a_busy_port_is_one_error_line_and_exit_code_2(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**os.environ, "R42_HOME": str(tmp_path)}
        done = subprocess.run(
            [sys.executable, "-m", "r42", "serve", "--no-auth", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"r42: error: cannot listen on 127.0.0.1:{port}: the address is already in use "
        "(choose another --port, or stop the server using it)"
    ]
