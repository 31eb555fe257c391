"""State shared by every `r42 serve` on a Redis server (setting `redis_url`, R42_REDIS_URL): per-key
request counters and budget holds, kept atomically by Lua scripts, and messages by pub/sub (a key
revoked on one host is refused by all).

Without `redis_url`, the store (SQLite) holds the counters (keys.admit), which is shared by the
threads and processes of one host. The API is small on purpose, so other parts (provider health)
can share counters and news the same way:

    shared = Shared.connect(url)
    shared.admit(record, request_id)  -> Admission   # counts the request unless a limit is hit
    shared.reserve(record, request_id, usd)          # holds the worst case (LimitHit when spent)
    shared.settle(record, usd_held, usd_real)        # the hold becomes the real cost
    shared.publish("keys", "revoked r42_AbCd1234"); shared.subscribe("keys", callback)
    shared.incr("health:openai:fail", ttl=60) -> int  # any counter with an expiry

Spend in Redis starts, each month, from what the store says the key has spent (seeded once), then
moves with every hold and settlement; the store keeps every request's row for stats as before.
A Redis URL with a password is never printed: errors name the host and port only.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable
from urllib.parse import urlsplit

from r42 import clock
from r42.errors import R42Error
from r42.store.keys import Admission, KeyRecord, LimitHit, Usage, limit_exceeded, month_start

PREFIX = "r42:"

# KEYS: minute zset, day zset, month spend. ARGV: now, rpm, rpd, budget (-1 = none), member, seed
# ("" when not read from the store yet). Returns {"seed"} when the month's spend is not in Redis and
# no seed was given (the caller reads the store and asks again: one round trip on every other
# request), else {hit ("" = admitted), requests in the minute, in the day, spend, oldest in minute, in day}.
ADMIT = """
local now = tonumber(ARGV[1])
local rpm, rpd, budget = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if ARGV[6] == '' then
  if redis.call('EXISTS', KEYS[3]) == 0 then return {'seed'} end
else
  redis.call('SET', KEYS[3], ARGV[6], 'NX', 'EX', 40 * 86400)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 86400)
local minute, day = redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2])
local spent = redis.call('GET', KEYS[3])
local function oldest(k)
  local first = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
  if first[2] then return first[2] end
  return ''
end
local hit = ''
if rpm >= 0 and minute >= rpm then hit = 'rpm'
elseif rpd >= 0 and day >= rpd then hit = 'rpd'
elseif budget >= 0 and tonumber(spent) >= budget then hit = 'budget' end
local o1, o2 = oldest(KEYS[1]), oldest(KEYS[2])
if hit == '' then
  redis.call('ZADD', KEYS[1], now, ARGV[5])
  redis.call('ZADD', KEYS[2], now, ARGV[5])
  redis.call('EXPIRE', KEYS[1], 120)
  redis.call('EXPIRE', KEYS[2], 86400 + 60)
end
return {hit, minute, day, spent, o1, o2}
"""

# KEYS: month spend, minute zset, day zset. ARGV: budget, usd, member.
# Holds usd unless the spend already reaches the budget (then the request stops counting).
RESERVE = """
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
if spent >= tonumber(ARGV[1]) then
  redis.call('ZREM', KEYS[2], ARGV[3])
  redis.call('ZREM', KEYS[3], ARGV[3])
  return 0
end
redis.call('INCRBYFLOAT', KEYS[1], ARGV[2])
return 1
"""


class SharedError(R42Error):
    """Redis cannot be reached or answered an error (exit code 1)."""


def shown(url: str) -> str:
    """A Redis URL as it may be printed: scheme, host and port, never a password."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or 'localhost'}:{parts.port or 6379}"


class Shared:
    """Counters and messages on one Redis server."""

    def __init__(self, client: Any, url: str) -> None:
        self.client = client
        self.url = url
        self._admit = client.register_script(ADMIT)
        self._reserve = client.register_script(RESERVE)
        self._threads: list[threading.Thread] = []

    @classmethod
    def connect(cls, url: str) -> "Shared":
        try:
            import redis
        except ImportError:
            raise SharedError(
                "redis_url is set but the redis package is not installed", "pip install 'r42[team]'"
            ) from None
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30)
        try:
            client.ping()
        except redis.RedisError as exc:
            raise SharedError(
                f"cannot reach Redis at {shown(url)}: {type(exc).__name__}", "check redis_url (R42_REDIS_URL)"
            ) from None
        return cls(client, url)

    def _keys(self, key_id: int, now: float) -> tuple[str, str, str]:
        month = time.strftime("%Y-%m", time.gmtime(month_start(now)))
        base = f"{PREFIX}key:{key_id}:"
        return base + "minute", base + "day", base + "spend:" + month

    def admit(self, record: KeyRecord, member: str, spent_in_store: Callable[[], float]) -> Admission:
        """Count one request of the key unless a limit is hit (atomic across every host)."""
        with self._errors():
            return self._admit_one(record, member, spent_in_store)

    def _errors(self) -> Any:
        """Redis errors as SharedError (the gateway answers 503: limits are never skipped)."""
        import contextlib

        import redis

        url = self.url

        @contextlib.contextmanager
        def translated() -> Any:
            try:
                yield
            except redis.RedisError as exc:
                raise SharedError(
                    f"Redis at {shown(url)} failed: {type(exc).__name__}", "check that Redis runs"
                ) from None

        return translated()

    def _admit_one(self, record: KeyRecord, member: str, spent_in_store: Callable[[], float]) -> Admission:
        now = clock.now()
        keys = self._keys(record.id, now)
        limits = [-1 if v is None else v for v in (record.rpm, record.rpd, record.budget_usd)]
        answer = self._admit(keys=list(keys), args=[now, *limits, member, ""])
        if _text(answer[0]) == "seed":  # the month's first request here, or Redis lost its data
            answer = self._admit(keys=list(keys), args=[now, *limits, member, spent_in_store()])
        hit_name, minute, day, spent, oldest_minute, oldest_day = answer
        used = Usage(int(minute), int(day), float(spent), _float(oldest_minute), _float(oldest_day))
        hit = limit_exceeded(record, used, now) if _text(hit_name) else None
        return Admission(used, hit, None)

    def reserve(self, record: KeyRecord, member: str, usd: float) -> LimitHit | None:
        """Hold `usd` against the key's budget unless it is spent (then the request does not count)."""
        if record.budget_usd is None:
            return None
        now = clock.now()
        minute, day, month = self._keys(record.id, now)
        with self._errors():
            held = int(self._reserve(keys=[month, minute, day], args=[record.budget_usd, usd, member]))
        if held:
            return None
        return limit_exceeded(record, Usage(0, 0, float(record.budget_usd), None, None), now)

    def settle(self, record: KeyRecord, held: float, real: float) -> None:
        if record.budget_usd is not None and real != held:
            with self._errors():
                self.client.incrbyfloat(self._keys(record.id, clock.now())[2], real - held)

    def incr(self, name: str, ttl: float | None = None) -> int:
        """Add one to a shared counter (created at 0), with an expiry in seconds."""
        pipe = self.client.pipeline()
        pipe.incr(PREFIX + name)
        if ttl is not None:
            pipe.expire(PREFIX + name, max(1, int(ttl)))
        return int(pipe.execute()[0])

    def publish(self, channel: str, message: str) -> None:
        self.client.publish(PREFIX + channel, message)

    def subscribe(self, channel: str, callback: Callable[[str], None]) -> None:
        """Call `callback(message)` on a background thread for every message on `channel`
        (reconnecting after an error)."""

        def listen() -> None:
            while True:
                try:
                    pubsub = self.client.pubsub(ignore_subscribe_messages=True)
                    pubsub.subscribe(PREFIX + channel)
                    for item in pubsub.listen():
                        if item.get("type") == "message":
                            callback(_text(item["data"]))
                except Exception:  # noqa: BLE001 - Redis went away: try again shortly
                    time.sleep(0.5)

        thread = threading.Thread(target=listen, name=f"r42-sub-{channel}", daemon=True)
        thread.start()
        self._threads.append(thread)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _float(value: Any) -> float | None:
    text = _text(value) if value is not None else ""
    return float(text) if text else None
