"""The load harness the server benchmarks share: a fast mock upstream and a keep-alive load generator.

Both run as their own processes (the generator must not share a GIL with the server it measures):

    python benchmarks/loadlib.py upstream --port 0          # prints "port N", serves until killed
    python benchmarks/loadlib.py load --url http://127.0.0.1:N/v1/chat/completions -c 8 -d 3 [--stream]

Lighter stand-ins, when Debian's `wrk` and `nginx` are installed (`NginxUpstream`, `wrk_load`): on a
2-core machine the Python generator and mock take CPU from the server they measure (bench_serve.py
reports each one's own figure in the same run). nginx answers the same chat.completion to every
POST (no streaming); wrk reports no time to first byte.

The upstream speaks just enough OpenAI chat for a gateway: POST .../chat/completions answers a fixed
chat.completion (or, with "stream": true, five chunks, a usage chunk and [DONE] in one chunked
response); GET .../models lists one model. Every response is a single write on a TCP_NODELAY
socket, with HTTP/1.1 keep-alive.

The generator keeps `c` connections busy for `d` seconds (after a short warm-up) and prints one
JSON line: requests, errors, req/s, latency p50/p99 and, for streams, time to first body byte.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

COMPLETION = orjson.dumps(
    {
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "mock-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello from the mock upstream."},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15},
    }
)


def _chunk(delta: dict | None, finish: str | None = None, usage: dict | None = None) -> bytes:
    body: dict = {
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "mock-model",
    }
    body["choices"] = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    if usage:
        body["usage"] = usage
    return b"data: " + orjson.dumps(body) + b"\n\n"


STREAM_EVENTS = (
    [_chunk({"role": "assistant", "content": "Hello"})]
    + [_chunk({"content": word}) for word in (" from", " the", " mock", " upstream.")]
    + [
        _chunk({}, "stop"),
        _chunk(None, usage={"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14}),
        b"data: [DONE]\n\n",
    ]
)
STREAM_BODY = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in STREAM_EVENTS) + b"0\r\n\r\n"
MODELS = orjson.dumps(
    {"object": "list", "data": [{"id": "mock-model", "object": "model", "created": 0, "owned_by": "mock"}]}
)


def _response(status: str, content_type: bytes, body: bytes) -> bytes:
    return b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s" % (
        status.encode(),
        content_type,
        len(body),
        body,
    )


# --- the mock upstream ---------------------------------------------------------------------------


async def _serve_upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length) if length else b""
            path = head.split(b" ", 2)[1]
            if path.endswith(b"/models"):
                writer.write(_response("200 OK", b"application/json", MODELS))
            elif b'"stream":true' in body.replace(b" ", b""):
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + STREAM_BODY
                )
            else:
                writer.write(_response("200 OK", b"application/json", COMPLETION))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def run_upstream(port: int) -> None:
    server = await asyncio.start_server(_serve_upstream, "127.0.0.1", port, backlog=1024)
    print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


# --- the load generator --------------------------------------------------------------------------


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, float | None]:
    """(status, time the first body byte arrived) after reading one whole response."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    if b"transfer-encoding: chunked" in lower:
        first = None
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if first is None:
                first = time.perf_counter()
            if size == 0:
                await reader.readline()
                return status, first
            await reader.readexactly(size + 2)
    start = lower.find(b"content-length:")
    length = int(lower[start + 15 : lower.find(b"\r\n", start)]) if start >= 0 else 0
    if length:
        await reader.readexactly(length)
    return status, None


async def _worker(host: str, port: int, request: bytes, until: float, warm_until: float, out: dict) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            start = time.perf_counter()
            if start >= until:
                return
            writer.write(request)
            status, first = await _read_response(reader)
            end = time.perf_counter()
            if start < warm_until:
                continue
            if status != 200:
                out["errors"] += 1
                continue
            out["latency"].append(end - start)
            if first is not None:
                out["ttfb"].append(first - start)
    finally:
        writer.close()


def _pct(samples: list[float], q: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)


def build_request(url: str, body: dict, headers: dict[str, str] | None = None) -> tuple[str, int, bytes]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    payload = orjson.dumps(body)
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    request = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n{extra}\r\n"
    ).encode() + payload
    return parts.hostname or "127.0.0.1", parts.port or 80, request


async def run_load(
    url: str, body: dict, headers: dict[str, str], concurrency: int, duration: float, warmup: float
) -> dict:
    host, port, request = build_request(url, body, headers)
    out: dict = {"latency": [], "ttfb": [], "errors": 0}
    now = time.perf_counter()
    warm_until, until = now + warmup, now + warmup + duration
    results = await asyncio.gather(
        *(_worker(host, port, request, until, warm_until, out) for _ in range(concurrency)), return_exceptions=True
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    return {
        "concurrency": concurrency,
        "requests": len(out["latency"]),
        "errors": out["errors"] + len(failures),
        "first_failure": repr(failures[0]) if failures else None,
        "rps": round(len(out["latency"]) / duration, 1),
        "p50_ms": _pct(out["latency"], 0.5),
        "p99_ms": _pct(out["latency"], 0.99),
        "ttfb_p50_ms": _pct(out["ttfb"], 0.5),
        "ttfb_p99_ms": _pct(out["ttfb"], 0.99),
    }


# --- the lighter stand-ins: nginx as the mock upstream, wrk as the load generator -----------------

NGINX_CONF = """daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log error;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    client_body_temp_path {dir}/body;
    server {{
        listen 127.0.0.1:{port} backlog=1024;
        location ~ /models$ {{ default_type application/json; return 200 '{models}'; }}
        location / {{ default_type application/json; return 200 '{completion}'; }}
    }}
}}
"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


class NginxUpstream:
    """nginx answering every POST with COMPLETION: one process (master_process off), no log."""

    def __init__(self, port: int) -> None:
        binary = nginx_binary()
        if binary is None:
            raise SystemExit("nginx is not installed (apt-get install nginx-light)")
        self.dir = tempfile.mkdtemp(prefix="r42-bench-nginx-")
        conf = Path(self.dir) / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(dir=self.dir, port=port, models=MODELS.decode(), completion=COMPLETION.decode())
        )
        self.process = subprocess.Popen([binary, "-c", str(conf), "-p", self.dir], stderr=subprocess.PIPE, text=True)
        self.port = port

    def terminate(self) -> None:
        self.process.terminate()

    def wait(self) -> None:
        self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


WRK_SCRIPT = """wrk.method = "POST"
wrk.body = {body}
{headers}
"""
WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def wrk_load(url: str, body: dict, headers: dict[str, str], concurrency: int, duration: float) -> dict:
    """What `load` reports (no time to first byte), measured by wrk: one thread, `concurrency`
    keep-alive connections, whole seconds (wrk's unit)."""
    lines = "\n".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items())
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            WRK_SCRIPT.format(body=json.dumps(orjson.dumps(body).decode()), headers=lines)
            + 'wrk.headers["Content-Type"] = "application/json"\n'
        )
    seconds = max(1, round(duration))
    command = ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--latency", "-s", script.name, url]
    try:
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    finally:
        Path(script.name).unlink()
    return parse_wrk(out, concurrency)


def parse_wrk(out: str, concurrency: int) -> dict:
    """wrk's report as `load`'s JSON: requests answered 2xx/3xx in the run, their req/s, p50/p99."""
    run = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m),", out)
    if run is None:
        raise SystemExit(f"wrk: unexpected report: {out[:200]!r}")
    total, seconds = int(run.group(1)), float(run.group(2)) * WRK_UNITS[run.group(3)] / 1000
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())

    def percentile(q: str) -> float | None:
        found = re.search(rf"^\s+{q}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
        return round(float(found.group(1)) * WRK_UNITS[found.group(2)], 3) if found else None

    answered = max(0, total - (int(bad.group(1)) if bad else 0))
    return {
        "concurrency": concurrency,
        "requests": answered,
        "errors": errors,
        "first_failure": None,
        "rps": round(answered / seconds, 1),
        "p50_ms": percentile("50"),
        "p99_ms": percentile("99"),
        "ttfb_p50_ms": None,
        "ttfb_p99_ms": None,
        "generator": "wrk",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("upstream")
    up.add_argument("--port", type=int, default=0)
    load = sub.add_parser("load")
    load.add_argument("--url", required=True)
    load.add_argument("-c", "--concurrency", type=int, default=1)
    load.add_argument("-d", "--duration", type=float, default=3.0)
    load.add_argument("--warmup", type=float, default=0.5)
    load.add_argument("--stream", action="store_true")
    load.add_argument("--model", default="mock-model")
    load.add_argument("--header", action="append", default=[], help="NAME:VALUE")
    args = parser.parse_args()
    if args.command == "upstream":
        asyncio.run(run_upstream(args.port))
        return
    body = {"model": args.model, "messages": [{"role": "user", "content": "Say hello."}], "stream": args.stream}
    headers = dict(h.split(":", 1) for h in args.header)
    result = asyncio.run(run_load(args.url, body, headers, args.concurrency, args.duration, args.warmup))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
