"""Which standard-library server should `r42 serve` be built on? The same minimal forwarding proxy
(read the request, POST its body to the mock upstream over a kept-alive connection, answer with what
came back) on each candidate, measured with the same load generator in the same run:

- threading: http.server's ThreadingHTTPServer + BaseHTTPRequestHandler (a thread per connection,
  blocking upstream calls, which is what r42's executor and providers are);
- asyncio: asyncio streams, the blocking upstream call in a thread pool (run_in_executor), which is
  what an asyncio front would cost with r42's synchronous core;
- asyncio-native: asyncio streams with an asyncio upstream connection: the ceiling if the whole core
  were rewritten async (for reference; r42's providers are not).

    python benchmarks/bench_server_choice.py [--duration 3]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
PATH = "/v1/chat/completions"


def _upstream_connection(port: int) -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


_local = threading.local()


def forward_blocking(port: int, body: bytes) -> bytes:
    """POST the body upstream on this thread's kept-alive connection; the response body."""
    conn = getattr(_local, "conn", None) or _upstream_connection(port)
    _local.conn = conn
    conn.request("POST", PATH, body, {"Content-Type": "application/json"})
    return conn.getresponse().read()


# --- candidate 1: ThreadingHTTPServer ------------------------------------------------------------


def serve_threading(port: int, upstream: int) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            data = forward_blocking(upstream, body)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.request_queue_size = 1024
    print(f"port {server.server_address[1]}", flush=True)
    server.serve_forever()


# --- candidates 2 and 3: asyncio streams ---------------------------------------------------------


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return await reader.readexactly(length)


def _answer(data: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data)


async def _upstream_async(port: int, body: bytes, pool: list) -> bytes:
    reader, writer = pool.pop() if pool else await asyncio.open_connection("127.0.0.1", port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    writer.write(
        b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (PATH.encode(), len(body), body)
    )
    head = await reader.readuntil(b"\r\n\r\n")
    lower = head.lower()
    start = lower.find(b"content-length:")
    data = await reader.readexactly(int(lower[start + 15 : lower.find(b"\r\n", start)]))
    pool.append((reader, writer))
    return data


def serve_asyncio(port: int, upstream: int, native: bool) -> None:
    pool_threads = ThreadPoolExecutor(max_workers=64)
    connections: list = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        loop = asyncio.get_running_loop()
        try:
            while True:
                body = await _read_request(reader)
                if native:
                    data = await _upstream_async(upstream, body, connections)
                else:
                    data = await loop.run_in_executor(pool_threads, forward_blocking, upstream, body)
                writer.write(_answer(data))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
        print(f"port {server.sockets[0].getsockname()[1]}", flush=True)
        await server.serve_forever()

    asyncio.run(main())


# --- the run ------------------------------------------------------------------------------------


def start(command: list[str]) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if not line.startswith("port "):
        raise SystemExit(f"{command} did not start: {line!r}")
    return process, int(line.split()[1])


def load(port: int, concurrency: int, duration: float) -> dict:
    command = [
        sys.executable,
        str(HERE / "loadlib.py"),
        "load",
        "--url",
        f"http://127.0.0.1:{port}{PATH}",
        "-c",
        str(concurrency),
        "-d",
        str(duration),
    ]
    return json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--serve", choices=["threading", "asyncio", "asyncio-native"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--upstream", type=int, default=0)
    args = parser.parse_args()
    if args.serve == "threading":
        return serve_threading(args.port, args.upstream)
    if args.serve:
        return serve_asyncio(args.port, args.upstream, native=args.serve == "asyncio-native")

    upstream, upstream_port = start([sys.executable, str(HERE / "loadlib.py"), "upstream"])
    rows = []
    try:
        direct = {c: load(upstream_port, c, args.duration) for c in (1, 64)}
        rows.append(("mock upstream directly", direct))
        for name in ("threading", "asyncio", "asyncio-native"):
            server, port = start([sys.executable, __file__, "--serve", name, "--upstream", str(upstream_port)])
            try:
                rows.append((name, {c: load(port, c, args.duration) for c in (1, 64)}))
            finally:
                server.terminate()
                server.wait()
    finally:
        upstream.terminate()
        upstream.wait()
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {args.duration:g} s per point")
    print(
        f"{'server':<24} {'c=1 p50 ms':>11} {'added p50':>10} {'c=1 p99 ms':>11} {'c=64 req/s':>11} {'c=64 p99 ms':>12}"
    )
    base = rows[0][1][1]["p50_ms"]
    for name, result in rows:
        one, many = result[1], result[64]
        added = "" if name.startswith("mock") else f"{one['p50_ms'] - base:.3f}"
        print(
            f"{name:<24} {one['p50_ms']:>11.3f} {added:>10} {one['p99_ms']:>11.3f} "
            f"{many['rps']:>11.0f} {many['p99_ms']:>12.3f}"
        )


if __name__ == "__main__":
    main()
