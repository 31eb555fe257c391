"""A small cluster, bounded: three `r42 serve` processes on different ports sharing one store and one
Redis, with nginx in front. A key limited to 60 requests a minute admits 60 across them; a key
revoked through one is refused by all three; `r42 log` reads every server's rows from the store."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers import run
from tests.services import nginx_balancer, redis_server
from tests.test_workers import CLASSIFY, request, start, stop


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    (tmp_path / "redis").mkdir()
    (tmp_path / "nginx").mkdir()
    for url in redis_server(tmp_path / "redis"):
        monkeypatch.setenv("R42_REDIS_URL", url)
        servers = [start() for _ in range(3)]
        try:
            for port in nginx_balancer(tmp_path / "nginx", [s.port for s in servers]):
                yield port, servers
        finally:
            for served in servers:
                stop(served)


def test_a_limit_and_a_revocation_hold_across_three_servers_behind_nginx(cluster):
    from r42.store import create_key

    balancer, servers = cluster
    key = create_key("team", rpm=60).key
    with ThreadPoolExecutor(32) as pool:
        statuses = list(pool.map(lambda _: request(balancer, "POST", "/v1/classify", CLASSIFY, key)[0], range(150)))
    assert abs(statuses.count(200) - 60) <= 1 and statuses.count(200) + statuses.count(429) == 150

    other = create_key("leaver").key
    assert all(request(s.port, "POST", "/v1/classify", CLASSIFY, other)[0] == 200 for s in servers)
    result = subprocess.run([sys.executable, "-m", "r42", "keys", "revoke", other[:16]], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    revoked_at = time.monotonic()
    refused: dict[int, float] = {}
    while len(refused) < 3 and time.monotonic() - revoked_at < 30:
        for served in servers:
            if served.port not in refused and request(served.port, "POST", "/v1/classify", CLASSIFY, other)[0] == 401:
                refused[served.port] = time.monotonic() - revoked_at
    assert len(refused) == 3
    print(f"revoked key refused by all three after {max(refused.values()) * 1000:.0f} ms")  # measured, not asserted

    rows = [json.loads(line) for line in run(["log", "-n", "1000"]).stdout.splitlines() if line.strip()]
    assert sum(1 for r in rows if r.get("endpoint") == "/v1/classify") >= 150
