"""Property tests (hypothesis) for the HTTP framing code: the gateway's head parser and chunk
decoder (r42.server.http) and the upstream client's body decoder (r42.providers.http11)."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from r42.providers.http11 import BodyDecoder, TransportError
from r42.server.http import TOKEN, HeadError, ServerLimits, parse_head, read_chunked

LIMITS = ServerLimits()
TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
FRAMING = ("content-length", "transfer-encoding")
names = st.text(TCHARS, min_size=1, max_size=20).filter(lambda n: n.lower() not in FRAMING)
values = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40).map(lambda v: v.strip())
paths = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40).map(lambda p: "/" + p)
quick = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- the head parser --------------------------------------------------------------------------


@quick
@given(
    method=st.sampled_from(["GET", "POST", "HEAD", "OPTIONS"]),
    path=paths,
    headers=st.dictionaries(names, values, max_size=12),
    version=st.sampled_from(["HTTP/1.1", "HTTP/1.0"]),
)
def test_a_well_formed_head_is_parsed_to_what_was_sent(method, path, headers, version):
    unique = {name.lower(): (name, value) for name, value in headers.items()}
    lines = [f"{method} {path} {version}"] + [f"{name}: {value}" for name, value in unique.values()]
    request = parse_head(("\r\n".join(lines) + "\r\n\r\n").encode(), "c", LIMITS)
    assert request.method == method and request.version == version
    assert request.headers == {key: value for key, (_, value) in unique.items()}
    assert request.path == (path.partition("?")[0].rstrip("/") or "/")


@quick
@given(st.binary(max_size=400))
def test_any_bytes_are_a_request_or_a_head_error_never_a_crash(data):
    head = data + b"\r\n\r\n"
    try:
        request = parse_head(head, "c", LIMITS)
    except HeadError as exc:
        assert 400 <= exc.status < 600
        return
    for name, value in request.headers.items():
        assert TOKEN.fullmatch(name.encode("latin-1"))
        assert not any(ch in value for ch in "\r\n\x00")


@quick
@given(name=names, before=values, after=values, bad=st.sampled_from(["\n", "\r", "\x00", "\x0b", "\x7f"]))
def test_a_control_character_in_a_value_is_always_refused(name, before, after, bad):
    head = f"GET / HTTP/1.1\r\nHost: x\r\n{name}: {before}{bad}{after}\r\n\r\n".encode("latin-1")
    try:
        parse_head(head, "c", LIMITS)
    except HeadError as exc:
        assert exc.status == 400
    else:
        raise AssertionError("accepted a control character")


# --- chunked wire bytes --------------------------------------------------------------------------


@st.composite
def chunked_wire(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """(body, its chunked encoding with random chunk sizes, extensions and trailers)."""
    body = draw(st.binary(max_size=3000))
    wire, at = b"", 0
    while at < len(body):
        size = draw(st.integers(1, max(1, len(body) - at)))
        ext = draw(st.sampled_from([b"", b";a=1", b";name"]))
        hexsize = draw(st.sampled_from([b"%x", b"%X", b"%04x"])) % size
        wire += hexsize + ext + b"\r\n" + body[at : at + size] + b"\r\n"
        at += size
    trailers = draw(st.sampled_from([b"", b"X-T: 1\r\n", b"A: b\r\nC: d\r\n"]))
    return body, wire + b"0\r\n" + trailers + b"\r\n"


def splits(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for point in points + [len(data)]:
        pieces.append(data[last:point])
        last = point
    return pieces


# --- the client's body decoder ------------------------------------------------------------------


@quick
@given(case=chunked_wire(), cuts=st.lists(st.integers(0, 10_000), max_size=12), extra=st.binary(max_size=20))
def test_the_body_decoder_gives_back_the_body_however_the_bytes_arrive(case, cuts, extra):
    body, wire = case
    decoder = BodyDecoder(None, chunked=True)
    out = b""
    for piece in splits(wire + extra, cuts):
        if not decoder.done:
            out += b"".join(decoder.feed(piece))
        else:
            decoder.rest += piece
    assert decoder.done and out == body and decoder.rest == extra


@quick
@given(body=st.binary(max_size=2000), cuts=st.lists(st.integers(0, 10_000), max_size=8), extra=st.binary(max_size=20))
def test_a_sized_body_is_cut_at_its_length(body, cuts, extra):
    decoder = BodyDecoder(len(body), chunked=False)
    out = b""
    for piece in splits(body + extra, cuts):
        if not decoder.done:
            out += b"".join(decoder.feed(piece))
        else:
            decoder.rest += piece
    assert decoder.done and out == body and decoder.rest == extra


@quick
@given(st.binary(max_size=600), st.lists(st.integers(0, 1000), max_size=6))
def test_the_body_decoder_on_garbage_decodes_or_raises_transport_error(data, cuts):
    decoder = BodyDecoder(None, chunked=True)
    try:
        for piece in splits(data, cuts):
            if decoder.done:
                break
            decoder.feed(piece)
    except TransportError as exc:
        assert exc.kind == "broken"


# --- the gateway's chunk decoder ----------------------------------------------------------------


def decode(wire: bytes, max_body: int = 1 << 20) -> bytes:
    async def run() -> bytes:
        reader = asyncio.StreamReader(limit=LIMITS.max_head)
        reader.feed_data(wire)
        reader.feed_eof()
        return await read_chunked(reader, max_body, LIMITS.max_head)

    return asyncio.run(run())


@quick
@given(case=chunked_wire())
def test_the_chunk_decoder_gives_back_the_body(case):
    body, wire = case
    assert decode(wire) == body


@quick
@given(case=chunked_wire(), delta=st.integers(1, 5))
def test_a_chunk_longer_than_its_size_is_a_400_not_a_wait(case, delta):
    body = case[0] + b"tail!"  # longer than delta: the declared size is at least 1
    declared = len(body) - delta
    assume(body[declared : declared + 2] != b"\r\n")  # else the bytes are a valid encoding of something shorter
    wire = b"%x\r\n%s\r\n0\r\n\r\n" % (declared, body)
    try:
        decode(wire)
    except HeadError as exc:
        assert exc.status == 400
    else:
        raise AssertionError("a chunk longer than its size was accepted")


@quick
@given(st.binary(max_size=600))
def test_the_chunk_decoder_on_garbage_returns_or_raises_a_4xx(data):
    try:
        decode(data)
    except HeadError as exc:
        assert 400 <= exc.status < 500
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass  # the bytes ran out (the connection closed): nothing to answer
