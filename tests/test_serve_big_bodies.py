"""Large bodies do not run on the event loop (issue 15 item 10). What this checks is where and how
a handler runs, never how long it takes: benchmarks/bench_big_bodies.py measures the latency."""

from __future__ import annotations

import http.client
import sys
import threading

import pytest

from r42.server.http import LOOP_BODY_MAX, NO_GATE, HTTPServer, Request, Response, ServerLimits


class Recorder:
    """A handler with an on_loop form that notes, for each request, where it ran."""

    def __init__(self) -> None:
        self.seen: list[dict] = []

    def on_loop(self, request: Request, channel):  # noqa: ANN001, ANN201
        async def serve() -> Response:
            self.seen.append({"where": "loop", "gate": request.heavy, "switch": sys.getswitchinterval()})
            return Response(200, b"loop")

        return serve()

    def __call__(self, request: Request, channel) -> Response:  # noqa: ANN001
        with request.heavy:
            where = threading.current_thread().name
            self.seen.append({"where": where, "gate": request.heavy, "switch": sys.getswitchinterval()})
        return Response(200, b"worker")


@pytest.fixture
def server():
    recorder = Recorder()
    http_server = HTTPServer(recorder, "127.0.0.1", 0, ServerLimits(max_body=64 * 1024 * 1024, grace=1))
    thread = threading.Thread(target=http_server.run, kwargs={"install_signals": False}, daemon=True)
    thread.start()
    assert http_server.ready.wait(10)
    yield http_server, recorder
    http_server.stop()
    thread.join(10)


def post(server: HTTPServer, size: int) -> bytes:
    conn = http.client.HTTPConnection(*server.bound, timeout=30)
    conn.request("POST", "/v1/chat/completions", b"x" * size)
    data = conn.getresponse().read()
    conn.close()
    return data


def test_a_small_body_is_served_on_the_loop_without_a_gate(server):
    http_server, recorder = server
    assert post(http_server, 1000) == b"loop"
    assert recorder.seen[-1]["gate"] is NO_GATE


def test_a_big_body_goes_to_a_worker_through_the_gate_with_a_short_switch_interval(server):
    http_server, recorder = server
    before = sys.getswitchinterval()
    assert post(http_server, LOOP_BODY_MAX + 1) == b"worker"
    seen = recorder.seen[-1]
    assert seen["where"].startswith("r42-worker") and seen["gate"] is http_server.heavy_gate
    assert seen["switch"] == pytest.approx(0.001)
    assert sys.getswitchinterval() == before  # restored once no big body is in flight


def test_ten_megabyte_bodies_in_parallel_all_pass_the_gate(server):
    http_server, recorder = server
    results: list[bytes] = []
    threads = [threading.Thread(target=lambda: results.append(post(http_server, 10 * 1024 * 1024))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == [b"worker"] * 4 and http_server.big_inflight == 0
