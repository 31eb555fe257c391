"""The gateway's /api aliases and its access log (issue 20), on real servers on loopback."""

from __future__ import annotations

import os
import pty
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from r42.config import load_settings
from r42.server import serve_in_thread
from r42.server.app import ROUTES


def test_every_v1_route_is_also_under_api():
    v1 = {(method, path[3:]): route for (method, path), route in ROUTES.items() if path.startswith("/v1/")}
    api = {(method, path[4:]): route for (method, path), route in ROUTES.items() if path.startswith("/api/")}
    assert v1 and all(api.get(key) == route for key, route in v1.items())


def test_api_routes_answer_as_their_v1_twins():
    with serve_in_thread(load_settings(), no_auth=True) as running:
        body = {"prompt": "Prove that sqrt 2 is irrational", "id": 7}
        v1 = httpx.post(running.url + "/v1/classify", json=body).json()
        api = httpx.post(running.url + "/api/classify", json=body).json()
        assert api["id"] == 7 and api["score"] == v1["score"]
        feedback = {"request_id": "req_unknown", "verdict": "good"}
        api_status = httpx.post(running.url + "/api/feedback", json=feedback).status_code
        assert api_status == httpx.post(running.url + "/v1/feedback", json=feedback).status_code
        question = {"model": "x", "messages": [{"role": "user", "content": "hi"}]}
        counted = httpx.post(running.url + "/api/messages/count_tokens", json=question)
        assert counted.status_code == 200 and counted.json()["input_tokens"] > 0
        assert httpx.post(running.url + "/api/nope", json={}).status_code == 404


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(port: int, *args: str, stderr=subprocess.PIPE) -> subprocess.Popen:  # noqa: ANN001
    command = [sys.executable, "-m", "r42", "serve", "--no-auth", "--port", str(port), *args]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=os.environ.copy())


def _wait_healthy(url: str, proc: subprocess.Popen) -> None:
    for _ in range(600):
        assert proc.poll() is None, "r42 serve exited"
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("r42 serve did not start")


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


def test_access_log_file_gets_one_line_per_request(tmp_path: Path):
    log = tmp_path / "access.log"
    port = _free_port()
    proc = _serve(port, "--access-log", str(log))
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc)
        httpx.post(url + "/api/classify", json={"prompt": "hi"})
        httpx.get(url + "/nope")
    finally:
        _stop(proc)
    lines = log.read_text().splitlines()
    assert all(" ms req_" in line for line in lines)
    fields = [line.split() for line in lines]
    assert ["200", "GET", "/health", "-"] in [f[1:5] for f in fields]
    assert ["200", "POST", "/api/classify", "-"] in [f[1:5] for f in fields]
    assert ["404", "GET", "/nope", "-"] in [f[1:5] for f in fields]
    assert b"/api/classify" not in proc.stderr.read()  # a file was given: not on stderr too


def test_on_a_terminal_each_request_is_a_line_on_stderr_and_piped_nothing():
    leader, follower = pty.openpty()
    port = _free_port()
    proc = _serve(port, stderr=follower)
    os.close(follower)
    url = f"http://127.0.0.1:{port}"
    seen = b""
    try:
        _wait_healthy(url, proc)
        httpx.post(url + "/v1/classify", json={"prompt": "hi"})
        deadline = time.monotonic() + 30
        while b"POST /v1/classify" not in seen and time.monotonic() < deadline:
            if select.select([leader], [], [], 0.5)[0]:
                seen += os.read(leader, 4096)
    finally:
        _stop(proc)
        os.close(leader)
    assert b" 200 POST /v1/classify - " in seen and b" ms req_" in seen
    piped_port = _free_port()
    piped = _serve(piped_port)  # stderr is a pipe, no --access-log: no per-request lines
    piped_url = f"http://127.0.0.1:{piped_port}"
    try:
        _wait_healthy(piped_url, piped)
    finally:
        _stop(piped)
    assert b"GET /health" not in piped.stderr.read()
