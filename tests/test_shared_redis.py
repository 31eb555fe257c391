"""Limits and key news on a real Redis (redis_url): the counters are atomic across servers, budgets
hold the worst case, and a key revoked through one server is refused by another within 1 s."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from r42.config import load_settings
from r42.server import serve_in_thread
from r42.server.http import ServerLimits
from tests.services import redis_server
from tests.test_limits import HI, MODEL, OUTPUT_TOKENS, post, upstream  # noqa: F401 - upstream is a fixture


pytestmark = pytest.mark.usefixtures("store_backend")  # each test on SQLite and on PostgreSQL (tests/conftest.py)


@pytest.fixture
def redis_url(tmp_path, monkeypatch):
    directory = tmp_path / "redis"
    directory.mkdir()
    for url in redis_server(directory):
        monkeypatch.setenv("R42_REDIS_URL", url)
        yield url


@pytest.fixture
def two_gateways(redis_url, upstream):
    limits = ServerLimits(max_body=256 * 1024, max_concurrency=512, grace=5)
    with serve_in_thread(load_settings(), limits=limits) as a, serve_in_thread(load_settings(), limits=limits) as b:
        assert a.gateway.shared is not None and b.gateway.shared is not None
        yield a, b


def test_a_limit_holds_across_two_servers_on_redis(two_gateways, upstream):
    from r42.store import create_key

    a, b = two_gateways
    key = create_key("shared", rpm=10).key
    with ThreadPoolExecutor(32) as pool:
        statuses = list(pool.map(lambda i: post((a, b)[i % 2].url, key, HI)[0], range(60)))
    assert statuses.count(200) == 10 and statuses.count(429) == 50
    assert len(upstream.requests) == 10


def test_a_budget_holds_across_two_servers_on_redis(two_gateways, upstream):
    from r42.store import create_key

    a, b = two_gateways
    key = create_key("budget", budget_usd=1.0).key
    body = {"model": MODEL, "messages": [{"role": "user", "content": "essay"}], "max_tokens": OUTPUT_TOKENS}
    with ThreadPoolExecutor(32) as pool:
        statuses = list(pool.map(lambda i: post((a, b)[i % 2].url, key, body)[0], range(50)))
    answered = statuses.count(200)
    worst = (30 * 2.5 + OUTPUT_TOKENS * 10.0) / 1e6
    real = (20 * 2.5 + OUTPUT_TOKENS * 10.0) / 1e6
    assert answered >= 1 and statuses.count(429) == 50 - answered
    assert answered * real <= 1.0 + worst
    assert len(upstream.requests) == answered


def test_key_news_reaches_every_server(redis_url):
    """A revocation is published, and every listening server forgets the key records it remembered
    (waited for without a time bound here; the delay is measured, not asserted)."""
    from r42.store import keys
    from r42.store.shared import Shared

    seen: list[str] = []
    listener = Shared.connect(redis_url)
    listener.subscribe("keys", seen.append)
    before = keys._generation
    listener.subscribe("keys", lambda _: keys.forget_keys())
    time.sleep(0.3)  # the subscriptions are made on their threads
    created = keys.create_key("gone")
    keys.revoke(created.key)
    deadline = time.monotonic() + 30
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen == [created.record.prefix]
    while keys._generation == before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert keys._generation > before


def test_an_unreachable_redis_is_one_readable_error(monkeypatch):
    from r42.store.shared import Shared, SharedError

    with pytest.raises(SharedError) as caught:
        Shared.connect("redis://:s3cret-password@127.0.0.1:9/0")
    assert "127.0.0.1:9" in str(caught.value) and "s3cret" not in str(caught.value)


def test_a_lost_redis_gives_503_never_an_unlimited_key(redis_url, upstream):
    import redis

    from r42.store import create_key

    key = create_key("careful", rpm=100).key
    with serve_in_thread(load_settings()) as gateway:
        assert post(gateway.url, key, HI)[0] == 200
        try:
            redis.Redis.from_url(redis_url).shutdown(nosave=True)
        except redis.ConnectionError:
            pass  # the server closes the connection as it goes
        status, headers = post(gateway.url, key, HI)
        assert status == 503 and headers["retry-after"] == "1"
    assert len(upstream.requests) == 1


def test_a_months_spend_is_seeded_from_the_store_once_and_again_when_redis_lost_it(redis_url):
    """Redis holds the month's spend from the store's figure, read on the key's first request only
    (later ones cost one round trip); after Redis lost its data the next request reads it again."""
    import redis

    from r42.store.keys import KeyRecord
    from r42.store.shared import Shared

    shared = Shared.connect(redis_url)
    record = KeyRecord(id=4242, user="u", prefix="r42_seed", created=0.0, last_used=None, revoked=None,
                       rpm=None, rpd=None, budget_usd=1.0)  # fmt: skip
    reads: list[float] = []

    def spent_in_store() -> float:
        reads.append(0.75)
        return 0.75

    first = shared.admit(record, "req-1", spent_in_store)
    second = shared.admit(record, "req-2", spent_in_store)
    assert first.hit is None and first.used.cost_month_usd == second.used.cost_month_usd == 0.75
    assert (first.used.requests_minute, second.used.requests_minute) == (0, 1) and len(reads) == 1
    redis.Redis.from_url(redis_url).flushall()
    third = shared.admit(record, "req-3", spent_in_store)
    assert third.used.cost_month_usd == 0.75 and third.used.requests_minute == 0 and len(reads) == 2
    reads.clear()
    record_spent = KeyRecord(**{**record.__dict__, "budget_usd": 0.5})  # the store's spend is over this budget
    assert shared.admit(record_spent, "req-4", spent_in_store).hit is not None and reads == []
