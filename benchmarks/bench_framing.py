"""The cost of HTTP/1.1 framing per request: r42's parser (r42.server.http.parse_head and
encode_response) next to h11, which httpx already depends on, for the same request and reply.

Issue 15 asked whether h11 should frame `r42 serve`; this is the measurement behind the answer.

    python benchmarks/bench_framing.py [-n 20000]
"""

from __future__ import annotations

import argparse
import platform
import sys
import timeit

import h11

from r42.server.http import Response, ServerLimits, encode_response, parse_head

HEAD = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:4242\r\nContent-Type: application/json\r\n"
    b"Authorization: Bearer r42_" + b"x" * 43 + b"\r\nUser-Agent: OpenAI/Python 1.40\r\n"
    b"Accept: application/json\r\n"
    b"Content-Length: 120\r\n\r\n"
)
BODY = b"x" * 120
REPLY_HEADERS = [
    ("Content-Type", "application/json"),
    ("X-R42-Request-Id", "req_" + "0" * 24),
    ("X-R42-Model", "openai/gpt-4o-mini"),
]
LIMITS = ServerLimits()


def r42_framing() -> None:
    parse_head(HEAD, "127.0.0.1", LIMITS)
    encode_response(Response(200, b"{}", list(REPLY_HEADERS)), True)


def h11_framing() -> None:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(HEAD + BODY)
    conn.next_event()  # Request
    conn.next_event()  # Data
    conn.next_event()  # EndOfMessage
    conn.send(h11.Response(status_code=200, headers=[*REPLY_HEADERS, ("Content-Length", "2")]))
    conn.send(h11.Data(data=b"{}"))
    conn.send(h11.EndOfMessage())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=20000)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, Python {sys.version.split()[0]}, h11 {h11.__version__}")
    cases = (("r42 parse_head + encode_response", r42_framing), ("h11 Connection (server side)", h11_framing))
    for name, function in cases:
        best = min(timeit.repeat(function, number=args.n, repeat=5)) / args.n
        print(f"{name:<34} {best * 1e6:7.1f} us per request")


if __name__ == "__main__":
    main()
