"""`r42 serve --workers N` as a real process tree, and limits shared by servers on one store: the
kernel hands connections to any worker, so limits, budgets and revocation must hold whichever
worker (or server) answers; a crashed worker is replaced; SIGTERM lets requests in flight finish."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import orjson
import pytest

from tests.fakes import OpenAIFake, faults

CLASSIFY = orjson.dumps({"messages": [{"role": "user", "content": "hi"}]})
CHAT = orjson.dumps({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})


class Served:
    def __init__(self, process: subprocess.Popen, port: int) -> None:
        self.process = process
        self.port = port

    def workers(self) -> list[int]:
        pid = self.process.pid
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(p) for p in text.split()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(*args: str) -> Served:
    """`r42 serve ARGS` on a free port in a new process; returns once it answers."""
    command = [sys.executable, "-m", "r42", "serve", "--host", "127.0.0.1", "--port", str(free_port()), *args]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert process.stderr is not None
    try:
        line = process.stderr.readline()
        match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        assert match, line
        served = Served(process, int(match.group(1)))
        wait_for(lambda: health(served.port))
    except BaseException:
        process.kill()  # never leave a server behind
        process.wait()
        raise
    return served


def stop(served: Served) -> tuple[int, str]:
    if served.process.poll() is None:
        served.process.send_signal(signal.SIGTERM)
    try:
        served.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        served.process.kill()
        served.process.wait()
    rest = served.process.stderr.read() if served.process.stderr else ""
    return served.process.returncode, rest


def wait_for(condition, timeout: float = 20.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def health(port: int) -> bool:
    try:
        return request(port, "GET", "/health")[0] == 200
    except OSError:
        return False


def request(port: int, method: str, path: str, body: bytes | None = None, key: str | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {key}"} if key else {})
        conn.request(method, path, body, headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def parallel(port: int, n: int, key: str, path: str = "/v1/classify", body: bytes = CLASSIFY) -> list[int]:
    with ThreadPoolExecutor(32) as pool:
        return list(pool.map(lambda _: request(port, "POST", path, body, key)[0], range(n)))


@pytest.fixture
def upstream(monkeypatch) -> Iterator[OpenAIFake]:
    with OpenAIFake(reply="ok", api_key="sk-upstream") as fake:
        fake._httpd.socket.listen(256)
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-upstream")
        yield fake


@pytest.fixture
def two_workers(upstream, tmp_path) -> Iterator[tuple[Served, Path]]:
    log = tmp_path / "access.log"
    served = start("--workers", "2", "--access-log", str(log))
    try:
        wait_for(lambda: len(served.workers()) == 2)
        yield served, log
    finally:
        stop(served)


def test_limits_revocation_and_one_access_log_across_workers(two_workers):
    from r42.store import create_key, revoke

    served, log = two_workers
    limited = create_key("rl", rpm=5).key
    statuses = parallel(served.port, 60, limited)
    assert statuses.count(200) == 5 and statuses.count(429) == 55
    free = create_key("free").key
    assert parallel(served.port, 20, free) == [200] * 20
    revoke(free)
    assert parallel(served.port, 20, free) == [401] * 20  # every worker, at once
    lines: list[str] = []

    def logged() -> bool:
        lines[:] = [line for line in log.read_text().splitlines() if "/health" not in line]
        return len(lines) == 100

    wait_for(logged)
    assert all(re.match(r"^\S+Z (200|401|429) POST /v1/classify - \d+ ms req_[0-9a-f]{24}$", line) for line in lines)


def test_two_servers_on_one_store_share_a_limit(upstream):
    """The issue's case: two servers on one store admitted 20 requests of a key limited to 10."""
    from r42.store import create_key

    key = create_key("shared", rpm=10).key
    first, second = start(), start()
    try:
        with ThreadPoolExecutor(2) as pool:
            a, b = pool.map(lambda s: parallel(s.port, 30, key, "/v1/chat/completions", CHAT), (first, second))
    finally:
        stop(first)
        stop(second)
    assert (a + b).count(200) == 10 and (a + b).count(429) == 50
    assert len(upstream.requests) == 10


def test_a_killed_worker_is_replaced(two_workers):
    from r42.store import create_key

    served, _ = two_workers
    key = create_key("k").key
    victim = served.workers()[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: victim not in served.workers() and len(served.workers()) == 2)
    assert parallel(served.port, 10, key) == [200] * 10
    code, err = stop(served)
    assert code == 0 and f"worker {victim} was killed by signal 9; starting another" in err


def test_sigterm_lets_a_request_in_flight_finish(two_workers, upstream):
    from r42.store import create_key

    served, _ = two_workers
    key = create_key("slow").key
    upstream.fail(faults.slow_first_byte(1.5))
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(request, served.port, "POST", "/v1/chat/completions", CHAT, key)
        wait_for(lambda: len(upstream.requests) == 1)
        served.process.send_signal(signal.SIGTERM)
        status, body = pending.result(timeout=30)
    assert status == 200 and orjson.loads(body)["choices"][0]["message"]["content"] == "ok"
    code, err = stop(served)
    assert code == 0 and "r42 serve: stopped" in err
    assert not health(served.port)


def test_workers_option_errors():
    result = subprocess.run(
        [sys.executable, "-m", "r42", "serve", "--workers", "0"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "--workers must be 1 or more" in result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "r42", "serve", "--workers", "many"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "whole number or auto" in result.stderr


def test_worker_count():
    from r42.server.workers import worker_count

    assert worker_count("auto") == len(os.sched_getaffinity(0)) and worker_count("3") == 3
    with pytest.raises(ValueError):
        worker_count("-1")


def established_on(pid: int, port: int) -> int:
    """How many connections to `port` process `pid` holds (its socket fds matched to /proc/net/tcp)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":  # local port, ESTABLISHED
            inodes.add(fields[9])
    held = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        held += target.startswith("socket:[") and target[8:-1] in inodes
    return held


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT spreads connections on Linux only")
def test_connections_opened_at_once_are_spread_over_the_workers(two_workers):
    """A client that opens its pool at once (64 keep-alive connections) must not land on one
    worker: with one shared socket, the first worker to wake accepted all of them."""
    served, _ = two_workers
    connections = [http.client.HTTPConnection("127.0.0.1", served.port, timeout=30) for _ in range(32)]
    try:
        for conn in connections:
            conn.connect()
        for conn in connections:
            conn.request("GET", "/health")
        assert all(conn.getresponse().read() for conn in connections)  # each one accepted and served
        held = [established_on(pid, served.port) for pid in served.workers()]
        assert sum(held) == 32 and min(held) >= 4, held  # the kernel hashes them: 16 ± 3 each
    finally:
        for conn in connections:
            conn.close()


def test_workers_on_a_busy_port_are_one_error_line(upstream):
    """SO_REUSEPORT must not let a second `--workers` server join the port of a running one."""
    served = start("--workers", "2")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "r42", "serve", "--port", str(served.port), "--workers", "2"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        stop(served)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"r42: error: cannot listen on 127.0.0.1:{served.port}: the address is already in use "
        "(choose another --port, or stop the server using it)"
    ]


def test_connections_for_a_worker_being_restarted_wait_for_it(two_workers):
    """The supervisor keeps each worker's socket: connections the kernel hands to a worker that
    just died queue there until its replacement accepts them; none is refused or reset."""
    from r42.store import create_key

    served, _ = two_workers
    key = create_key("k").key
    victim = served.workers()[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: victim not in served.workers())
    assert parallel(served.port, 40, key) == [200] * 40  # about half hash to the dead worker's socket
    code, err = stop(served)
    assert code == 0 and f"worker {victim} was killed by signal 9; starting another" in err
