"""The incremental SSE decoder: the same events however the bytes are split."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from r42.formats import sse

STREAM = (
    b': keep-alive\r\n\r\nevent: message_start\r\ndata: {"a": 1}\r\n\r\n'
    b"data: line one\ndata: line two\n\nid: 7\rretry: 100\rdata: cr only\r\r"
    b"data: [DONE]\n\ndata: cut without its blank line"
)


def events(pieces: list[bytes]) -> list[sse.Event]:
    decoder = sse.Decoder()
    out = [event for piece in pieces for event in decoder.feed(piece)]
    return out + decoder.end()


def test_the_grammar():
    got = events([STREAM])
    assert [(e.event, e.data) for e in got] == [
        ("message_start", '{"a": 1}'),
        (None, "line one\nline two"),
        (None, "cr only"),
        (None, "[DONE]"),
        (None, "cut without its blank line"),
    ]
    assert got[2].id == "7" and got[2].retry == 100


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_split_gives_the_same_events(cuts):
    points = sorted(set(cuts))
    pieces = [STREAM[a:b] for a, b in zip([0, *points], [*points, len(STREAM)])]
    assert events(pieces) == events([STREAM])
    assert list(sse.decode_bytes(pieces)) == events([STREAM])
