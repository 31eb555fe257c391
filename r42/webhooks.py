"""Webhooks: events the gateway sends to operators' endpoints, signed, off the request path.

Events (the body is JSON {id, type, created, data}):
    rate_limit.warning   a key passes 80% of its per-minute or per-day limit (once per key, limit and UTC minute/day)
    budget.threshold     a key's spend this month passes 50%, 80% or 100% of its budget (once each per month)
    key.expiring         a key expires within 7 days (once per key and expiry date)
    key.expired          a key has expired (once per key and expiry date)
    provider.unhealthy   a provider or model is failing; provider.recovered: it answers again
                         (emitted by whoever tracks health: call provider_unhealthy()/provider_recovered())

Each delivery carries `R42-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` under
the hook's secret, and `R42-Event-Id` for de-duplication: delivery is at least once. Events go to a
persisted outbox (r42.store.hooks) first; a `Dispatcher` thread sends what is due, retrying with
exponential backoff, so a slow or dead endpoint never holds up a request. Loopback, private,
link-local and reserved addresses are refused unless the hook was added with allow_private.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import os
import secrets
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from r42 import __version__, clock
from r42.errors import R42Error, UsageError
from r42.store import hooks as hook_store
from r42.store.hooks import EVENT_TYPES, TEST_EVENT, Delivery, Hook

__all__ = ["EVENT_TYPES", "Dispatcher", "emit", "provider_recovered", "provider_unhealthy", "publish", "sign", "verify"]

SIGNATURE_HEADER = "R42-Signature"
WARN_AT = 0.8  # rate_limit.warning: the share of a per-minute or per-day limit
BUDGET_STEPS = (50, 80, 100)  # budget.threshold: percent of the monthly budget
EXPIRING_WITHIN = 7 * 86_400.0  # key.expiring: seconds before the expiry
MAX_RESPONSE = 64 * 1024


# ---- signing ---------------------------------------------------------------------------------


def sign(secret: str, body: bytes, t: int) -> str:
    """The R42-Signature header value for `body` sent at unix time `t`."""
    digest = hmac.new(secret.encode("utf-8"), str(t).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def verify(secret: str, body: bytes, header: str, tolerance: float = 300.0, now: float | None = None) -> bool:
    """Check a received R42-Signature header: the HMAC matches and t is within `tolerance` seconds."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        t = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance:
        return False
    expected = sign(secret, body, t).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


# ---- targets ---------------------------------------------------------------------------------


def check_url(url: str) -> str:
    """An http(s) URL without credentials in it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"not an http(s) URL: {url!r}", "e.g. https://ops.example.com/r42-hooks")
    if parts.username or parts.password:
        raise UsageError("the URL holds a user name or password", "authenticate the endpoint by the signature instead")
    return url


def private_address(url: str) -> str | None:
    """The first loopback, private, link-local, reserved or multicast address the URL's host resolves
    to, or None when all are public (or the name does not resolve now)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return host
    try:
        infos = socket.getaddrinfo(
            host, parts.port or (443 if parts.scheme == "https" else 80), proto=socket.IPPROTO_TCP
        )
    except (OSError, UnicodeError):
        return None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address.is_global or address.is_multicast:
            return str(address)
    return None


def check_target(url: str, allow_private: bool) -> None:
    check_url(url)
    found = None if allow_private else private_address(url)
    if found is not None:
        raise UsageError(
            f"{urlsplit(url).hostname} is a loopback or private address ({found})",
            "add --allow-private to send webhooks there on purpose",
        )


# ---- emitting --------------------------------------------------------------------------------


def new_event_id() -> str:
    return "evt_" + secrets.token_hex(12)


def emit(
    event_type: str, data: dict[str, Any], mark: str | None = None, hook_id: str | None = None, now: float | None = None
) -> str | None:
    """Write an event to the outbox of every hook that wants it (or of `hook_id` only).
    Returns the event id, or None when no hook wants it or `mark` was used before."""
    if event_type not in EVENT_TYPES and event_type != TEST_EVENT:
        raise UsageError(f"unknown event type {event_type!r}", f"one of {', '.join(EVENT_TYPES)}")
    targets = [h.id for h in subscribers(event_type) if hook_id is None or h.id == hook_id]
    if not targets:
        return None
    now = clock.now() if now is None else now
    event_id = new_event_id()
    body = hook_store.event_body(event_id, event_type, now, data)
    return event_id if hook_store.persist_event(targets, event_id, event_type, body, mark, now) else None


_subscribers: tuple[str, float, list[Hook]] = ("", 0.0, [])
SUBSCRIBERS_TTL = 1.0  # seconds the list of hooks is reused by the gateway's checks


def subscribers(event_type: str) -> list[Hook]:
    """The hooks that want `event_type`, from a list refreshed at most every SUBSCRIBERS_TTL seconds."""
    global _subscribers
    from r42.store.db import store_name

    where = store_name()  # the file, or the PostgreSQL database
    cached_where, at, found = _subscribers
    if cached_where != where or time.monotonic() - at > SUBSCRIBERS_TTL:
        found = hook_store.list_hooks()
        _subscribers = (where, time.monotonic(), found)
    return [h for h in found if h.wants(event_type)]


def forget_subscribers() -> None:
    """Read the hooks again on the next check (after `hooks add`/`rm` in this process)."""
    global _subscribers
    _subscribers = ("", 0.0, [])


_running: Dispatcher | None = None


def publish(event_type: str, data: dict[str, Any], mark: str | None = None) -> None:
    """Emit without waiting: through the running dispatcher's queue when there is one (the
    gateway), else at once. Never raises: an event must not break its caller."""
    dispatcher = _running
    if dispatcher is not None:
        dispatcher.post(event_type, data, mark)
        return
    try:
        emit(event_type, data, mark)
    except R42Error as exc:
        print(f"r42: warning: could not queue the {event_type} webhook: {exc.one_line()}", file=sys.stderr)


def provider_unhealthy(provider: str, model: str | None, reason: str) -> None:
    """For the health tracker: a provider (or one of its models) is failing."""
    publish("provider.unhealthy", {"provider": provider, "model": model, "reason": reason})


def provider_recovered(provider: str, model: str | None, reason: str = "") -> None:
    """For the health tracker: a provider (or model) that was failing answers again."""
    publish("provider.recovered", {"provider": provider, "model": model, "reason": reason})


# ---- what the gateway watches ----------------------------------------------------------------


def usage_recorded(key: Any, at: float) -> None:
    """After a request's usage is written (on the log writer's thread): rate_limit.warning when the
    key has passed 80% of its per-minute or per-day limit, budget.threshold at 50/80/100% of its budget.
    Never raises: the routing log must be written whatever happens here."""
    try:
        _check_usage(key, at)
    except Exception as exc:  # noqa: BLE001
        print(f"r42: warning: could not check the key's usage for webhooks: {exc}", file=sys.stderr)


def _check_usage(key: Any, at: float) -> None:
    if key is None or (key.rpm is None and key.rpd is None and key.budget_usd is None):
        return
    watched = [e for e in ("rate_limit.warning", "budget.threshold") if subscribers(e)]
    if not watched:
        return
    from r42.store.keys import month_start, usage

    used = usage(key.id, at)
    who = {"user": key.user, "key_prefix": key.prefix}
    if "rate_limit.warning" in watched:
        for limit, count, window, seconds in (
            ("rpm", used.requests_minute, "minute", 60),
            ("rpd", used.requests_day, "day", 86_400),
        ):
            value = getattr(key, limit)
            if value and count >= WARN_AT * value:
                data = {**who, "limit": limit, "value": value, "used": count, "window": window}
                publish("rate_limit.warning", data, f"rate_limit.warning:{key.id}:{limit}:{int(at // seconds)}")
    if "budget.threshold" in watched and key.budget_usd:
        month = time.strftime("%Y-%m", time.gmtime(month_start(at)))
        for percent in BUDGET_STEPS:
            if used.cost_month_usd >= key.budget_usd * percent / 100:
                data = {
                    **who,
                    "percent": percent,
                    "budget_usd": key.budget_usd,
                    "spent_usd": round(used.cost_month_usd, 6),
                    "month": month,
                }
                publish("budget.threshold", data, f"budget.threshold:{key.id}:{month}:{percent}")


def sweep_expiry(now: float | None = None) -> None:
    """key.expiring for keys that expire within 7 days, key.expired for those past it (each once per expiry date)."""
    if not subscribers("key.expiring") and not subscribers("key.expired"):
        return
    from r42.store.keys import expiring_within, iso

    now = clock.now() if now is None else now
    for key in expiring_within(EXPIRING_WITHIN, now):
        if (key.expires or now) < now - EXPIRING_WITHIN:
            continue  # expired long before anyone listened: not news
        kind = "key.expired" if key.expired(now) else "key.expiring"
        data = {
            "user": key.user,
            "key_prefix": key.prefix,
            "expires": iso(key.expires),
            "seconds_left": max(0, int((key.expires or now) - now)),
        }
        emit(kind, data, f"{kind}:{key.id}:{key.expires}", now=now)


# ---- delivering ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    timeout: float = 5.0  # seconds for one delivery (connect + answer)
    retry_base: float = 2.0  # seconds before the first retry; doubled each time
    retry_max: float = 3600.0  # the longest wait between two attempts
    max_attempts: int = 12  # then the delivery is marked failed (about 1.5 days at the defaults)
    lease: float = 60.0  # seconds a claimed delivery is reserved for this worker

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Policy":
        """R42_WEBHOOK_TIMEOUT, R42_WEBHOOK_RETRY_BASE, R42_WEBHOOK_RETRY_MAX and R42_WEBHOOK_MAX_ATTEMPTS."""
        env = dict(os.environ) if env is None else env
        values: dict[str, Any] = {}
        for name, kind in (("timeout", float), ("retry_base", float), ("retry_max", float), ("max_attempts", int)):
            text = env.get(f"R42_WEBHOOK_{name.upper()}")
            if text:
                try:
                    values[name] = kind(text)
                except ValueError:
                    raise UsageError(f"R42_WEBHOOK_{name.upper()} is not a number: {text!r}", "e.g. 5") from None
        return cls(**values)

    def retry_at(self, attempts: int, now: float) -> float | None:
        """When to try again after `attempts` failed attempts; None = give up."""
        if attempts >= self.max_attempts:
            return None
        return now + min(self.retry_max, self.retry_base * 2 ** (attempts - 1))


def send(
    url: str, body: bytes, headers: dict[str, str], timeout: float, allow_private: bool
) -> tuple[int | None, str | None]:
    """POST once: (HTTP status, None) or (None, what failed). Redirects are not followed."""
    found = None if allow_private else private_address(url)
    if found is not None:
        return None, f"refused: {found} is a loopback or private address"
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = kind(parts.hostname or "", parts.port, timeout=timeout)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read(MAX_RESPONSE)
        return response.status, None if 200 <= response.status < 300 else f"HTTP {response.status}"
    except (OSError, http.client.HTTPException) as exc:
        return None, f"{type(exc).__name__}: {exc}"[:200]
    finally:
        conn.close()


def deliver(delivery: Delivery, hook: Hook, secret: str, policy: Policy) -> tuple[int | None, str | None]:
    """Send one outbox row, signed now, and record the attempt. Returns (status, error)."""
    t = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"r42-webhooks/{__version__}",
        SIGNATURE_HEADER: sign(secret, delivery.body, t),
        "R42-Event-Id": delivery.event_id,
        "R42-Event-Type": delivery.type,
    }
    status, error = send(hook.url, delivery.body, headers, policy.timeout, hook.allow_private)
    retry = None if delivery.type == TEST_EVENT else policy.retry_at(delivery.attempts + 1, time.time())
    hook_store.finish(delivery, status, error, retry, time.time())
    return status, error


def deliver_due(policy: Policy, hook_id: str | None = None) -> int:
    """Send every due delivery once (of one hook, or all). Returns how many were attempted."""
    hooks = {h.id: h for h in hook_store.list_hooks()}
    secrets_of: dict[str, str] = {}
    due = hook_store.claim_due(time.time(), policy.lease, hook_id=hook_id)
    for delivery in due:
        hook = hooks.get(delivery.hook_id)
        if hook is None:
            continue  # removed meanwhile (its rows go with it)
        if hook.id not in secrets_of:
            secrets_of[hook.id] = hook_store.hook_secret(hook.id)
        deliver(delivery, hook, secrets_of[hook.id], policy)
    return len(due)


class Dispatcher:
    """The gateway's webhook thread: writes queued events to the outbox, sends what is due, and
    looks for expiring keys every `sweep_every` seconds. `post()` only appends to a deque."""

    def __init__(self, policy: Policy | None = None, poll: float = 1.0, sweep_every: float = 60.0) -> None:
        self.policy = policy or Policy()
        self.poll = poll
        self.sweep_every = sweep_every
        self.queue: deque[tuple[str, dict[str, Any], str | None]] = deque()
        self.wake = threading.Event()
        self.idle = threading.Condition()
        self.rounds = 0
        self.stopping = False
        self.sweep_due = True
        self.warned = False
        self.thread = threading.Thread(target=self._run, name="r42-webhooks", daemon=True)

    def start(self) -> "Dispatcher":
        global _running
        _running = self
        self.thread.start()
        return self

    def post(self, event_type: str, data: dict[str, Any], mark: str | None = None) -> None:
        self.queue.append((event_type, data, mark))
        self.wake.set()

    def sweep_now(self) -> None:
        """Look for expiring and expired keys on the next round instead of waiting for the interval."""
        self.sweep_due = True
        self.wake.set()

    def settle(self, rounds: int = 2, timeout: float = 30.0) -> None:
        """Wait until `rounds` more rounds have run (tests: what was posted is in the outbox)."""
        with self.idle:
            target = self.rounds + rounds
            self.wake.set()
            self.idle.wait_for(lambda: self.rounds >= target or not self.thread.is_alive(), timeout)

    def close(self) -> None:
        global _running
        if _running is self:
            _running = None
        self.stopping = True
        self.wake.set()
        if self.thread.is_alive():
            self.thread.join(timeout=self.policy.timeout + 5)

    def _run(self) -> None:
        from r42.store import close_thread_connection

        last_sweep = time.monotonic()
        while not self.stopping:
            self.wake.wait(self.poll)
            self.wake.clear()
            sweep = self.sweep_due or time.monotonic() - last_sweep >= self.sweep_every
            if sweep:  # cleared before the round: a sweep_now() during it is kept for the next one
                self.sweep_due, last_sweep = False, time.monotonic()
            try:
                self._round(sweep)
            except Exception as exc:  # noqa: BLE001 - webhooks must never take the gateway down
                if not self.warned:
                    self.warned = True
                    print(f"r42: warning: webhook delivery failed: {exc}", file=sys.stderr)
            with self.idle:
                self.rounds += 1
                self.idle.notify_all()
        try:  # events posted during shutdown still reach the outbox; the next start sends them
            while self.queue:
                emit(*self.queue.popleft())
        except Exception:  # noqa: BLE001
            pass
        close_thread_connection()

    def _round(self, sweep: bool) -> None:
        while self.queue:
            emit(*self.queue.popleft())
        if sweep:
            sweep_expiry()
        while not self.stopping and deliver_due(self.policy):
            while self.queue:  # events posted while sending go out in this round too
                emit(*self.queue.popleft())
