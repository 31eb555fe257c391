"""Malformed HTTP against a real `r42 serve` on loopback: counts 5xx answers and hangs.

Starts the mock upstream (benchmarks/loadlib.py) and `r42 serve --no-auth`, then sends `-n`
requests (default 20,000), each on its own connection, built by a seeded generator from a valid
chat completion by one or more mutations: bytes flipped, CR, LF or NUL inserted, cut short,
header lines folded, duplicated or malformed, bad Content-Length and chunk sizes, chunks that do
not end where their size says, both framings at once, odd methods, versions and targets,
absolute-form targets, HEAD, HTTP/1.0, Expect: 100-continue, oversized heads, raw noise.

Requests whose bytes are all the server needs to decide (a wrong chunk terminator, a bad size,
a bad header...) are sent as they are and the connection is left open: an answer must come
without the client closing. Requests that may legitimately leave the server waiting for more
(cut short, a Content-Length larger than the body, byte-level mutations) are followed by a
half-close, as a client going away would do. A hang is no answer nor close within `--wait`
seconds; a complete answer (its Content-Length or final chunk read) ends the wait.

A 5xx is any status >= 500 except the two that RFC 9110/9112
prescribe for well-formed but unsupported input: 501 (an unknown transfer coding) and 505 (an
HTTP major version other than 1), which are counted on their own. Bodies are JSON-level valid or
invalid as mutations make them: type errors inside valid JSON are issue 15 item 6, not framing.

    python benchmarks/fuzz_serve.py [-n 20000] [-c 32] [--seed 15] [--wait 5]

Exits 1 when a 5xx or a hang was seen.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import start_r42, start_upstream  # noqa: E402

BODY = b'{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":5}'
PATHS = [
    b"/v1/chat/completions",
    b"/v1/messages",
    b"/health",
    b"/",
    b"/v1/models",
    b"/metrics",
    b"/v1/classify",
    b"/nowhere",
]
METHODS = [b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"post", b"G-T", b"", b"GET GET", b"\x00"]
VERSIONS = [
    b"HTTP/1.1",
    b"HTTP/1.0",
    b"HTTP/2.0",
    b"HTTP/1.x",
    b"http/1.1",
    b"HTTP/1",
    b"HTTP/1.1 ",
    b"",
    b"HTTP/0.9",
    b"HTTP/11",
]
NASTY = [
    b"\r",
    b"\n",
    b"\x00",
    b"\r\n",
    b"\r\n\r\n",
    b" ",
    b"\t",
    b":",
    b"\x7f",
    b"\xff",
    b"\xc3\xa9",
    b"%00",
    b"\r\n ",
]
Parts = tuple[bytes, bytes, bytes, list[bytes], bytes]  # method, target, version, header lines, body


def request(method: bytes, target: bytes, version: bytes, headers: list[bytes], body: bytes) -> bytes:
    return method + b" " + target + b" " + version + b"\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body


def chunked(body: bytes, rng: random.Random) -> bytes:
    out, at = b"", 0
    while at < len(body):
        size = rng.randint(1, len(body) - at)
        out += b"%x\r\n%s\r\n" % (size, body[at : at + size])
        at += size
    return out + b"0\r\n\r\n"


def base(rng: random.Random) -> Parts:
    path = rng.choice(PATHS)
    method = b"POST" if rng.random() < 0.7 else rng.choice([b"GET", b"HEAD"])
    body = BODY if method == b"POST" else b""
    headers = [b"Host: 127.0.0.1", b"Content-Type: application/json", b"Content-Length: %d" % len(body)]
    return method, path, b"HTTP/1.1", headers, body


def mutate_framing(
    rng: random.Random, kind: int, method: bytes, path: bytes, version: bytes, headers: list[bytes], body: bytes
) -> Parts:
    headers = [h for h in headers if not h.lower().startswith(b"content-length")] if kind < 8 else headers
    if kind == 0:  # chunked with a size that lies
        wire = chunked(body or b"x", rng)
        size = rng.randint(0, 40)
        wire = b"%x\r\n" % size + wire.split(b"\r\n", 1)[1]
        return method, path, version, headers + [b"Transfer-Encoding: chunked"], wire
    if kind == 1:  # chunk sizes that are not hex
        bad = rng.choice([b"-3", b"0x3", b"+3", b"1_0", b" 3", b"3 3", b"ffffffffffffffffff", b"", b"g", b"3;\x00"])
        return method, path, version, headers + [b"Transfer-Encoding: chunked"], bad + b"\r\nabc\r\n0\r\n\r\n"
    if kind == 2:  # chunk terminators missing or wrong
        return (
            method,
            path,
            version,
            headers + [b"Transfer-Encoding: chunked"],
            rng.choice(
                [
                    b"3\r\nabcdef\r\n0\r\n\r\n",
                    b"3\r\nabc0\r\n\r\n",
                    b"3\r\nabc\n0\r\n\r\n",
                    b"3\r\nabc\r\n0\r\nX-T\r\n\r\n",
                ]
            ),
        )
    if kind == 3:  # both framings
        both = [b"Content-Length: %d" % len(body), b"Transfer-Encoding: chunked"]
        return method, path, version, headers + both, chunked(body or b"x", rng)
    if kind == 4:  # unknown or stacked transfer codings
        coding = rng.choice([b"gzip", b"chunked, chunked", b"gzip, chunked", b"identity", b"chunked\x00", b"CHUNKED"])
        return method, path, version, headers + [b"Transfer-Encoding: " + coding], chunked(body or b"x", rng)
    if kind == 5:  # Content-Length values
        value = rng.choice([b"-1", b"1e3", b"+5", b"0x10", b"5 5", b"99999999999999999999", b"5, 5", b"", b"\xff"])
        return method, path, version, headers + [b"Content-Length: " + value], body
    if kind == 6:  # duplicated Content-Length
        return method, path, version, headers + [b"Content-Length: %d" % len(body)] * 2, body
    if kind == 7:  # Content-Length larger or smaller than the body
        length = max(0, len(body) + rng.randint(-20, 200))
        return method, path, version, headers + [b"Content-Length: %d" % length], body
    if kind == 8:  # Expect: 100-continue
        return method, path, version, headers + [b"Expect: 100-continue"], body
    if kind == 9:  # a huge head, many headers
        if rng.random() < 0.5:
            return method, path, version, headers + [b"X-Big: " + b"a" * rng.randint(30_000, 70_000)], body
        return method, path, version, headers + [b"X-%d: 1" % i for i in range(rng.randint(90, 300))], body
    if kind == 10:  # folded, malformed or odd header lines
        line = rng.choice(
            [
                b" folded: yes",
                b"\tfolded",
                b"NoColon",
                b": empty-name",
                b"Bad Name: 1",
                b"Name : 1",
                b"X-\x01: 1",
                b"X: a\rb",
                b"X: a\nb",
                b"X: \x00",
                b"Host: a",
                b"Authorization: Bearer a",
                b"Connection: close, keep-alive",
            ]
        )
        headers = list(headers)
        headers.insert(rng.randrange(len(headers) + 1), line)
        return method, path, version, headers, body
    # odd request lines and targets
    target = rng.choice(
        [
            path,
            b"http://127.0.0.1" + path,
            b"https://x:1" + path + b"?a=1",
            b"*",
            b"",
            b"v1/chat",
            b"/a b",
            b"/\xff",
            b"//" + path,
            path + b"#frag",
            b"/" + b"a" * 9000,
            b"http://",
            b"/%00",
        ]
    )
    return rng.choice(METHODS + [method] * 6), target, rng.choice(VERSIONS + [version] * 6), headers, body


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not data:
            break
        at = rng.randrange(len(data))
        choice = rng.randrange(4)
        if choice == 0:
            data[at] = rng.randrange(256)
        elif choice == 1:
            data[at:at] = rng.choice(NASTY)
        elif choice == 2:
            del data[at]
        else:
            del data[at:]
    return bytes(data)


LIES = (0, 7)  # framing mutations whose declared lengths may exceed the bytes sent: the server must wait


def malformed(rng: random.Random) -> tuple[bytes, bool]:
    """(the request's bytes, are they all the server needs to answer without the client's EOF?)"""
    roll = rng.random()
    if roll < 0.05:
        return os.urandom(rng.randint(1, 400)), False
    parts = base(rng)
    complete = False
    if roll < 0.6:
        kind = rng.randrange(12)
        parts = mutate_framing(rng, kind, *parts)
        complete = kind not in LIES
    if rng.random() < 0.15:  # HTTP/1.0 or HEAD on top
        method, path, _, headers, body = parts
        parts = (rng.choice([method, b"HEAD"]), path, b"HTTP/1.0", headers, body)
    data = request(*parts)
    if roll >= 0.6 or rng.random() < 0.3:
        data = mutate_bytes(rng, data)
        complete = False
    return data, complete


async def one(port: int, data: bytes, complete: bool, wait: float) -> tuple[str, int | None]:
    """('answered' | 'closed' | 'hang' | 'refused', status)."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return "refused", None
    try:
        writer.write(data)
        await writer.drain()
        if not complete and writer.can_write_eof():
            writer.write_eof()
    except OSError:
        pass
    received = b""
    try:
        async with asyncio.timeout(wait):
            while not answered(received, data.startswith(b"HEAD ")) and (chunk := await reader.read(65536)):
                received += chunk
    except TimeoutError:
        writer.transport.abort()
        return "hang", status_of(received)
    except OSError:
        pass
    writer.transport.abort()
    status = status_of(received)
    return ("answered" if status else "closed"), status


def answered(data: bytes, head_only: bool) -> bool:
    """Is a whole final response in `data` (past any 100 Continue)? A HEAD's has no body."""
    while data.startswith(b"HTTP/1.1 100 ") and b"\r\n\r\n" in data:
        data = data.split(b"\r\n\r\n", 1)[1]
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    if head_only:
        return True
    lines = head.lower().split(b"\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in lines if line.startswith(b"content-length:")), None)
    if b"transfer-encoding: chunked" in lines:
        return body.endswith(b"0\r\n\r\n")
    return length is not None and len(body) >= length


def status_of(data: bytes) -> int | None:
    """The final status: past any 100 Continue."""
    while data.startswith(b"HTTP/1.1 100 "):
        data = data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
    parts = data.split(b" ", 2)
    return int(parts[1]) if len(parts) > 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit() else None


async def run(port: int, count: int, concurrency: int, seed: int, wait: float) -> tuple[Counter, Counter, list[bytes]]:
    rng = random.Random(seed)
    outcomes: Counter = Counter()
    statuses: Counter = Counter()
    bad: list[bytes] = []
    queue = [malformed(rng) for _ in range(count)]
    outcomes["sent without the client's EOF"] = sum(complete for _, complete in queue)

    async def worker() -> None:
        while queue:
            data, complete = queue.pop()
            outcome, status = await one(port, data, complete, wait)
            outcomes[outcome] += 1
            if status is not None:
                statuses[status] += 1
            if outcome == "hang" or (status is not None and status >= 500 and status not in (501, 505)):
                bad.append(data)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes, statuses, bad


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("-c", type=int, default=32, help="connections at once")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--wait", type=float, default=5.0, help="seconds to wait for an answer after the client's EOF")
    args = parser.parse_args()
    upstream, upstream_port = start_upstream()
    r42, port, _ = start_r42(upstream_port, tempfile.mkdtemp(prefix="r42-fuzz-"), auth=False)
    started = time.monotonic()
    try:
        outcomes, statuses, bad = asyncio.run(run(port, args.n, args.c, args.seed, args.wait))
        alive = r42.poll() is None
    finally:
        for process in (r42, upstream):
            process.terminate()
            process.wait()
    fivexx = sum(n for s, n in statuses.items() if s >= 500 and s not in (501, 505))
    hangs = outcomes["hang"]
    total = sum(n for k, n in outcomes.items() if not k.startswith("sent"))
    print(f"{total} malformed requests in {time.monotonic() - started:.0f} s (seed {args.seed}, {args.c} at once)")
    print(f"outcomes: {dict(outcomes)}; server still running: {alive}")
    print(f"statuses: {dict(sorted(statuses.items()))}")
    print(f"5xx (other than 501/505): {fivexx}; 501: {statuses[501]}; 505: {statuses[505]}; hangs: {hangs}")
    for data in bad[:5]:
        print(f"  e.g. {data[:200]!r}")
    sys.exit(1 if fivexx or hangs or not alive else 0)


if __name__ == "__main__":
    main()
