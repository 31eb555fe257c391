"""Seeded routing logs and signed-in clients for the dashboard tests (HTTP and browser)."""

from __future__ import annotations

import http.client
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from r42 import store

MODELS = ("openai/gpt-4o-mini", "openai/gpt-4o", "anthropic/claude-sonnet-4", "groq/llama-3.1-8b")
PRICES = {
    "openai/gpt-4o-mini": (0.15, 0.6),
    "openai/gpt-4o": (2.5, 10.0),
    "anthropic/claude-sonnet-4": (3.0, 15.0),
    "groq/llama-3.1-8b": (0.05, 0.08),
}
WEIGHTS = (5, 2, 1, 4)  # a router sends most prompts to the cheap models
XSS = '<script>alert("x")</script>'


def price(model: str, tokens_in: int, tokens_out: int) -> float:
    price_in, price_out = PRICES[model]
    return round((tokens_in * price_in + tokens_out * price_out) / 1e6, 8)


@dataclass
class Seeded:
    admin_key: str
    bob_key: str
    alice_failed_id: int  # the row of a failed request of alice with a three-attempt chain
    alice_failed_request: str
    bob_request: str
    now: float
    rows: list[int] = field(default_factory=list)


def seed_log(n: int = 200, now: float | None = None, rng_seed: int = 7) -> Seeded:
    """Keys for alice (admin), bob and carol, and n requests in the last day (alice, bob, carol),
    one old request 40 days back, a few failed ones, feedback, and one row with markup in it."""
    now = time.time() if now is None else now
    rng = random.Random(rng_seed)
    admin = store.create_key("alice", admin=True)  # r42 keys create alice --admin
    bob = store.create_key("bob", rpm=100, rpd=1000, budget_usd=5.0)
    carol = store.create_key("carol")
    ids = []
    for index in range(n):
        user, key = rng.choice((("alice", admin), ("bob", bob), ("carol", carol)))
        model = rng.choices(MODELS, WEIGHTS)[0]
        tokens_in, tokens_out = rng.randint(10, 2000), rng.randint(5, 800)
        failed = index % 17 == 5
        attempts = (
            [{"model": "openai/gpt-4o", "ok": False, "status": 429, "ms": 40, "error": "rate limited"}]
            if index % 5 == 0
            else []
        )
        if failed:
            attempts.append(
                {
                    "model": "groq/llama-3.1-8b",
                    "ok": False,
                    "status": None,
                    "ms": 30000,
                    "error": "timed out after 30 s",
                }
            )
        else:
            attempts.append({"model": model, "ok": True, "status": 200, "ms": 300})
        at = now - rng.uniform(60, 20 * 3600)
        ids.append(
            store.write_route(
                endpoint="/v1/chat/completions",
                status="error" if failed else "ok",
                model=None if failed else model,
                user=user,
                key_id=key.record.id,
                mode=rng.choice(("balanced", "cost", "quality")),
                complexity=round(rng.random(), 3),
                domain=rng.choice(("code", "math", "writing")),
                attempts=attempts,
                input_tokens=None if failed else tokens_in,
                output_tokens=None if failed else tokens_out,
                cost_usd=None if failed else price(model, tokens_in, tokens_out),
                latency_ms=rng.uniform(100, 5000),
                ttft_ms=None if failed else rng.uniform(20, 800),
                request_id=f"req_seed_{index:05d}",
                error="AllFailedError" if failed else None,
                at=at,
                retention_days=0,
            )
        )
        store.record_usage(key.record.id, 0.001, at=at)
    chain = [
        {"model": "openai/gpt-4o", "ok": False, "status": 503, "ms": 120, "error": "overloaded"},
        {"model": "anthropic/claude-sonnet-4", "ok": False, "status": 429, "ms": 80, "error": "rate limited"},
        {"model": "groq/llama-3.1-8b", "ok": False, "status": None, "ms": 30000, "error": "timed out after 30 s"},
    ]
    failed_id = store.write_route(
        endpoint="/v1/chat/completions",
        status="error",
        user="alice",
        key_id=admin.record.id,
        mode="cost",
        complexity=0.55,
        domain="code",
        attempts=chain,
        latency_ms=30300.0,
        request_id="req_chain_alice",
        error="AllFailedError",
        at=now - 30,
        retention_days=0,
    )
    store.write_route(
        endpoint="/v1/chat/completions",
        status="ok",
        user="bob",
        key_id=bob.record.id,
        model="openai/gpt-4o-mini",
        attempts=[{"model": "openai/gpt-4o-mini", "ok": True, "status": 200, "ms": 10}],
        input_tokens=10,
        output_tokens=10,
        cost_usd=0.0001,
        latency_ms=50.0,
        request_id="req_bob_only",
        at=now - 20,
        retention_days=0,
    )
    store.write_route(
        endpoint="/v1/chat/completions",
        status="error",
        user="carol",
        model=None,
        domain=XSS,
        mode=XSS,
        attempts=[{"model": XSS, "ok": False, "status": 500, "ms": 1, "error": XSS}],
        error=XSS,
        latency_ms=5.0,
        request_id="req_xss",
        at=now - 10,
        retention_days=0,
    )
    store.write_route(
        endpoint="ask",
        status="ok",
        user="alice",
        model="openai/gpt-4o",
        input_tokens=5,
        output_tokens=5,
        cost_usd=0.01,
        latency_ms=10.0,
        request_id="req_old",
        at=now - 40 * 86_400,
        retention_days=0,
    )
    from r42.store.feedback import add_feedback

    add_feedback("req_seed_00001", "good", user=None)
    add_feedback("req_bob_only", "bad", "too short", user="bob")
    return Seeded(admin.key, bob.key, failed_id, "req_chain_alice", "req_bob_only", now, ids)


# ---- a small HTTP client that keeps one cookie ----------------------------------------------------------


class Client:
    """http.client against the gateway, remembering the session cookie like a browser would."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port
        self.cookie: str | None = None

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        sent = dict(headers or {})
        if self.cookie and "Cookie" not in sent:
            sent["Cookie"] = self.cookie
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        data = response.read()
        found = {k.lower(): v for k, v in response.getheaders()}
        conn.close()
        cookie = found.get("set-cookie")
        if cookie:
            pair = cookie.split(";", 1)[0]
            self.cookie = pair if pair.split("=", 1)[1] else None
        return response.status, found, data

    def post_form(
        self, path: str, fields: dict[str, str], headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        return self.request(
            "POST",
            path,
            urlencode(fields).encode(),
            {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})},
        )


# Fixtures shared by tests/test_dashboard.py and tests/test_dashboard_browser.py (imported there).
@pytest.fixture
def seeded() -> Seeded:
    """The seeded routing log and its keys."""
    return seed_log()


@pytest.fixture
def gateway(seeded: Seeded) -> Iterator[Any]:
    """A real `r42 serve` over the seeded store, in a thread."""
    from r42.config import load_settings
    from r42.server import serve_in_thread

    with serve_in_thread(load_settings()) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh(isolated_env, monkeypatch):
    """An empty store that keeps every logged row (no retention cut), for each dashboard test."""
    monkeypatch.setenv("R42_LOG_RETENTION_DAYS", "0")
