"""Gateway users and their keys, per-key limits and the usage the limits are checked against.

A key is `r42_` + 43 url-safe characters from `secrets` (256 bits). Only its SHA-256 is stored: the
key is random and long, so a fast hash is as good as a slow one, and the gateway can check it on
every request. The first 12 characters (`r42_` + 8) are kept in clear as the key's name in lists.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import hmac
import secrets
import re
import sqlite3
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

from r42 import clock
from r42.errors import R42Error, UsageError
from r42.store.db import (
    add_to,
    connect,
    defer,
    insert,
    lock,
    on_postgres,
    postgres_store,
    raise_to,
    reading,
    readable_errors,
    thread_writes,
    writing,
)

KEY_PREFIX = "r42_"
PREFIX_LENGTH = len(KEY_PREFIX) + 8
KEY_LENGTH = len(KEY_PREFIX) + 43  # token_urlsafe(32)
_DUMMY_HASH = hashlib.sha256(b"r42 no such key").digest()


class NotFoundError(R42Error):
    """A user, key or credential that is not in the store (exit code 1)."""


MAX_RATE = 2**63 - 1  # the largest rpm or rpd the store holds (SQLite INTEGER, PostgreSQL BIGINT)
LATEST_EXPIRY = 253_402_300_799.0  # 9999-12-31T23:59:59Z: the last moment an ISO 8601 date can name


@dataclass(frozen=True)
class KeyRecord:
    id: int
    user: str
    prefix: str  # the first characters of the key: a name for it, not a secret
    created: float  # unix seconds
    last_used: float | None
    revoked: float | None
    rpm: int | None  # requests per minute (rolling 60 s); None = no limit
    rpd: int | None  # requests per day (rolling 24 h)
    budget_usd: float | None  # USD per calendar month (UTC)
    expires: float | None = None  # unix seconds; None = never
    admin: bool = False  # may use the admin API (/v1/admin/...)

    def expired(self, now: float | None = None) -> bool:
        return self.expires is not None and self.expires <= (clock.now() if now is None else now)

    def as_dict(self) -> dict:
        return {
            "user": self.user,
            "prefix": self.prefix,
            "created": iso(self.created),
            "last_used": iso(self.last_used),
            "revoked": iso(self.revoked),
            "rpm": self.rpm,
            "rpd": self.rpd,
            "budget_usd": self.budget_usd,
            "expires": iso(self.expires),
            "admin": self.admin,
        }


@dataclass(frozen=True)
class NewKey:
    key: str  # shown to the user once, never stored
    record: KeyRecord

    def __repr__(self) -> str:  # keep the key out of logs and tracebacks
        return f"NewKey(prefix={self.record.prefix!r}, user={self.record.user!r})"


@dataclass(frozen=True)
class Usage:
    requests_minute: int  # in the last 60 s
    requests_day: int  # in the last 24 h
    cost_month_usd: float  # since the start of this calendar month (UTC)
    oldest_minute: float | None  # time of the oldest request still in each window
    oldest_day: float | None


@dataclass(frozen=True)
class LimitHit:
    limit: str  # "rpm" | "rpd" | "budget"
    value: float
    retry_after_s: int  # when a request would be allowed again


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
EXPIRY_HINT = (
    "give a duration such as 90s, 12h, 30d or 2w, or an ISO 8601 date or time"
    " such as 2027-01-31 or 2027-01-31T18:00:00Z"
)


def parse_duration(text: str) -> float | None:
    """Seconds in `90s`, `15m`, `12h`, `30d` or `2w`; None when `text` is not a duration."""
    match = _DURATION.match(text)
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)] if match else None


def parse_when(text: str) -> float:
    """Unix seconds of an ISO 8601 date (00:00 UTC that day) or date and time (UTC unless it has an offset)."""
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
            moment = dt.datetime.combine(dt.date.fromisoformat(text.strip()), dt.time(), dt.timezone.utc)
        else:
            moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"not a duration or an ISO 8601 date: {text!r}", EXPIRY_HINT) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()


def parse_expiry(text: str, now: float | None = None, base: float | None = None) -> float:
    """When a key given `--expires TEXT` expires: `base` (default now) plus a duration, or a date."""
    now = clock.now() if now is None else now
    seconds = parse_duration(text)
    when = (base if base is not None else now) + seconds if seconds is not None else parse_when(text)
    if when > LATEST_EXPIRY:  # a date ISO 8601 (and `iso`, which lists it) can still write
        raise UsageError(f"the expiry {text!r} is after 9999-12-31", EXPIRY_HINT)
    if seconds == 0 or when <= now:
        raise UsageError(f"the expiry {text!r} is not in the future ({iso(when)}; now is {iso(now)})", EXPIRY_HINT)
    return when


def key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def _validate_limits(rpm: int | None, rpd: int | None, budget_usd: float | None) -> None:
    for name, value in (("rpm", rpm), ("rpd", rpd), ("budget", budget_usd)):
        if value is not None and value < 0:
            raise UsageError(f"--{name} must be 0 or more, got {value}")
        if name != "budget" and value is not None and value > MAX_RATE:
            raise UsageError(f"--{name} must be at most {MAX_RATE}, got {value}")


def _user_id(conn: Any, user: str, now: float) -> int:
    conn.execute("INSERT OR IGNORE INTO users (name, created) VALUES (?, ?)", (user, now))
    return conn.execute("SELECT id FROM users WHERE name = ?", (user,)).fetchone()[0]


def _insert_key(
    conn: Any,
    user: str,
    rpm: int | None,
    rpd: int | None,
    budget_usd: float | None,
    expires: float | None = None,
    admin: bool = False,
) -> NewKey:
    now = time.time()
    user_id = _user_id(conn, user, now)
    while True:
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        prefix = key[:PREFIX_LENGTH]
        try:
            row = conn.execute(
                "INSERT INTO gateway_keys (user_id, prefix, hash, created, rpm, rpd, budget_usd, expires, admin)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (user_id, prefix, key_hash(key), now, rpm, rpd, budget_usd, expires, int(admin)),
            ).fetchone()
        except sqlite3.IntegrityError:
            continue  # a prefix collision (about 1 in 2**48): draw again
        record = KeyRecord(row[0], user, prefix, now, None, None, rpm, rpd, budget_usd, expires, admin)
        return NewKey(key, record)


def create_key(
    user: str,
    rpm: int | None = None,
    rpd: int | None = None,
    budget_usd: float | None = None,
    expires: float | None = None,
    admin: bool = False,
) -> NewKey:
    """A new key for `user` (created if new). The returned key is the only copy.
    `expires`: unix seconds (see parse_expiry); `admin`: the key may use the admin API."""
    user = user.strip()
    if not user:
        raise UsageError("the user name is empty")
    _validate_limits(rpm, rpd, budget_usd)
    with writing() as conn:
        return _insert_key(conn, user, rpm, rpd, budget_usd, expires, admin)


_KEY_COLUMNS = (
    "k.id, u.name, k.prefix, k.created, k.last_used, k.revoked, k.rpm, k.rpd, k.budget_usd, k.expires, k.admin"
)


def _record(row: tuple) -> KeyRecord:
    """A KeyRecord from a row of _KEY_COLUMNS (admin is stored as 0/1)."""
    return KeyRecord(*row[:10], bool(row[10]))


_KEY_FROM = "gateway_keys k JOIN users u ON u.id = k.user_id"


def list_keys(include_revoked: bool = False) -> list[KeyRecord]:
    conn = reading()
    if conn is None:
        return []
    where = "" if include_revoked else "WHERE k.revoked IS NULL"
    with readable_errors():
        rows = conn.execute(f"SELECT {_KEY_COLUMNS} FROM {_KEY_FROM} {where} ORDER BY u.name, k.created").fetchall()
    return [_record(row) for row in rows]


def list_users() -> list[str]:
    """Names of every gateway user (also those whose keys are all revoked), sorted."""
    conn = reading()
    if conn is None:
        return []
    with readable_errors():
        return [row[0] for row in conn.execute("SELECT name FROM users ORDER BY name")]


def _find_keys(conn: Any, key_or_prefix: str, user_too: bool = False) -> list[KeyRecord]:
    """Active keys named by a whole key, a prefix of one, or (user_too) a user name."""
    text = key_or_prefix.strip().rstrip("…").rstrip(".")
    if len(text) == KEY_LENGTH and text.startswith(KEY_PREFIX):
        rows = conn.execute(
            f"SELECT {_KEY_COLUMNS}, k.hash FROM {_KEY_FROM} WHERE k.prefix = ? AND k.revoked IS NULL",
            (text[:PREFIX_LENGTH],),
        ).fetchall()
        return [_record(row[:-1]) for row in rows if hmac.compare_digest(row[-1], key_hash(text))]
    if user_too:
        rows = conn.execute(
            f"SELECT {_KEY_COLUMNS} FROM {_KEY_FROM} WHERE u.name = ? AND k.revoked IS NULL", (text,)
        ).fetchall()
        if rows:
            return [_record(row) for row in rows]
    if len(text) < len(KEY_PREFIX) + 4 or not text.startswith(KEY_PREFIX):
        return []  # too short to name one key safely
    rows = conn.execute(
        f"SELECT {_KEY_COLUMNS} FROM {_KEY_FROM} WHERE k.revoked IS NULL AND substr(k.prefix, 1, ?) = ?",
        (len(text), text),
    ).fetchall()
    if not rows and len(text) > PREFIX_LENGTH:  # a longer piece of a key: match on its prefix
        rows = conn.execute(
            f"SELECT {_KEY_COLUMNS} FROM {_KEY_FROM} WHERE k.revoked IS NULL AND k.prefix = ?", (text[:PREFIX_LENGTH],)
        ).fetchall()
    return [_record(row) for row in rows]


def _one_key(conn: Any, key_or_prefix: str) -> KeyRecord:
    found = _find_keys(conn, key_or_prefix)
    if not found:
        raise NotFoundError(f"no active gateway key matches {_shown(key_or_prefix)}", "see `r42 keys list`")
    if len(found) > 1:
        raise UsageError(f"{_shown(key_or_prefix)} matches {len(found)} keys", "give more characters of the key")
    return found[0]


def _shown(text: str) -> str:
    """Never echo a whole key back: show only what could be a prefix."""
    return repr(text[:PREFIX_LENGTH] + "…") if len(text) > PREFIX_LENGTH else repr(text)


def revoke(key_or_prefix: str) -> KeyRecord:
    """Revoke one active key, named by the key itself or a unique prefix."""
    with writing() as conn:
        record = _one_key(conn, key_or_prefix)
        conn.execute("UPDATE gateway_keys SET revoked = ? WHERE id = ?", (time.time(), record.id))
    announce([record.prefix])
    return record


def rotate(user_or_prefix: str) -> tuple[NewKey, list[KeyRecord]]:
    """Replace a key (or every active key of a user) by one new key with the same limits.

    Returns the new key and the revoked records. The old keys stop working at once.
    """
    with writing() as conn:
        old = _find_keys(conn, user_or_prefix, user_too=True)
        if not old:
            raise NotFoundError(
                f"no user or active key matches {_shown(user_or_prefix)}",
                "see `r42 keys list`, or `r42 keys create USER`",
            )
        if len({r.user for r in old}) > 1:
            raise UsageError(
                f"{_shown(user_or_prefix)} matches keys of several users", "give more characters of the key"
            )
        latest = max(old, key=lambda r: r.created)
        now = time.time()
        conn.executemany("UPDATE gateway_keys SET revoked = ? WHERE id = ?", [(now, r.id) for r in old])
        new = _insert_key(conn, latest.user, latest.rpm, latest.rpd, latest.budget_usd, latest.expires, latest.admin)
    announce([r.prefix for r in old])
    return new, old


_UNSET = object()


def update_key(
    key_or_prefix: str,
    *,
    rpm: object = _UNSET,
    rpd: object = _UNSET,
    budget_usd: object = _UNSET,
    expires: object = _UNSET,
) -> tuple[KeyRecord, KeyRecord]:
    """Change an active key's limits or expiry (None clears one; a field left out stays).
    Returns the record before and after."""
    given = (("rpm", rpm), ("rpd", rpd), ("budget_usd", budget_usd), ("expires", expires))
    changes = {name: value for name, value in given if value is not _UNSET}
    _validate_limits(changes.get("rpm"), changes.get("rpd"), changes.get("budget_usd"))  # type: ignore[arg-type]
    with writing() as conn:
        before = _one_key(conn, key_or_prefix)
        if changes:
            assignments = ", ".join(f"{name} = ?" for name in changes)
            conn.execute(f"UPDATE gateway_keys SET {assignments} WHERE id = ?", (*changes.values(), before.id))
        row = conn.execute(f"SELECT {_KEY_COLUMNS} FROM {_KEY_FROM} WHERE k.id = ?", (before.id,)).fetchone()
    if changes:
        announce([before.prefix])
    return before, _record(row)


def extend(key_or_prefix: str, text: str, now: float | None = None) -> tuple[KeyRecord, KeyRecord]:
    """`r42 keys extend`: a duration is added to the later of now and the current expiry; a date
    replaces it; `never` removes it."""
    now = clock.now() if now is None else now
    if text.strip().lower() == "never":
        return update_key(key_or_prefix, expires=None)
    conn = reading()
    current = _one_key(conn, key_or_prefix).expires if conn is not None else None
    base = max(now, current) if current is not None else now
    return update_key(key_or_prefix, expires=parse_expiry(text, now=now, base=base))


def expiring_within(seconds: float, now: float | None = None) -> list[KeyRecord]:
    """Active keys that expire before now + seconds (those already expired included), soonest first."""
    now = clock.now() if now is None else now
    soon = [r for r in list_keys() if r.expires is not None and r.expires <= now + seconds]
    return sorted(soon, key=lambda r: r.expires or 0)


def authenticate(key: str) -> KeyRecord | None:
    """The active key record for a presented key, or None. Constant-time hash comparison."""
    if not isinstance(key, str) or len(key) != KEY_LENGTH or not key.startswith(KEY_PREFIX):
        return None
    conn = connect(create=False)
    if conn is None:
        return None
    with readable_errors():
        row = conn.execute(
            f"SELECT {_KEY_COLUMNS}, k.hash FROM {_KEY_FROM} WHERE k.prefix = ? AND k.revoked IS NULL",
            (key[:PREFIX_LENGTH],),
        ).fetchone()
    stored = row[-1] if row else _DUMMY_HASH
    if hmac.compare_digest(stored, key_hash(key)) and row is not None:
        return _record(row[:-1])
    return None


_memo = threading.local()
_MISSING = object()
_generation = 0  # moved by forget_keys(): news of a key change from another host (Redis pub/sub)


def forget_keys() -> None:
    """Drop every thread's remembered key records: a key was revoked or changed elsewhere."""
    global _generation
    _generation += 1


def announce(prefixes: list[str]) -> None:
    """Tell every server sharing Redis (redis_url) that these keys changed, so that each refuses a
    revoked key at once. Nothing without redis_url; a Redis failure is a warning, not an error."""
    from r42.config import load_settings

    forget_keys()  # this process's threads at once (on SQLite data_version would tell them too)
    if on_postgres():  # every process on the same PostgreSQL, through LISTEN/NOTIFY (see _store_version)
        postgres_store().notify(KEYS_CHANNEL, " ".join(prefixes))
    url = load_settings().redis_url
    if not url:
        return
    from r42.store.shared import Shared, SharedError, shown

    try:
        Shared.connect(url).publish("keys", " ".join(prefixes))
    except (SharedError, OSError) as exc:
        import sys

        print(f"r42: warning: could not tell the servers on {shown(url)} of the key change: {exc}", file=sys.stderr)


MEMO_MAX = 1024  # presented keys remembered per thread (wrong ones included)


def authenticate_cached(key: str) -> KeyRecord | None:
    """authenticate(), remembered on this thread while the store is unchanged: SQLite's
    data_version moves with every commit by another connection (a revoke or a rotation from the
    CLI, another thread, the gateway's own log writer), and this thread's own writes count too.
    Saves the query on most requests under load, and a revoked key is refused at once."""
    conn = connect(create=False)
    if conn is None:
        return None
    with readable_errors():
        version = (_store_version(conn), thread_writes(), id(conn), _generation)
    memo = getattr(_memo, "state", None)
    if memo is None or memo[0] != version:
        memo = _memo.state = (version, {})
    found = memo[1].get(key, _MISSING)
    if found is _MISSING:
        if len(memo[1]) >= MEMO_MAX:
            memo[1].clear()
        found = memo[1][key] = authenticate(key)
    return found  # type: ignore[return-value]


PG_MEMO_S = 0.5  # on PostgreSQL a remembered key is checked again after this long


KEYS_CHANNEL = "r42_keys"  # PostgreSQL NOTIFY channel of key changes


def _store_version(conn: Any) -> float:
    """What moves when another connection may have changed a key: SQLite's data_version; on
    PostgreSQL (no such counter) key news arrives by LISTEN/NOTIFY (forget_keys), and the half
    second moves too, so a key changed elsewhere is refused within PG_MEMO_S should a notification
    be missed (Redis pub/sub, when set, also forgets keys at once)."""
    if on_postgres():
        postgres_store().listen(KEYS_CHANNEL, lambda _: forget_keys())
        return time.monotonic() // PG_MEMO_S
    return conn.execute("PRAGMA data_version").fetchone()[0]


MARK_USED = "UPDATE gateway_keys SET last_used = max(coalesce(last_used, 0), ?) WHERE id = ?"

# key_spend holds, per key and UTC calendar month (month_start), the sum of cost_usd of the key's
# key_usage rows of that month: every change to key_usage.cost_usd applies the same delta here, in
# the same transaction, so a budget check reads one row instead of the month's requests.
ADD_SPEND = (
    "INSERT INTO key_spend (key_id, month, cost_usd) VALUES (?, ?, ?)"
    " ON CONFLICT (key_id, month) DO UPDATE SET cost_usd = key_spend.cost_usd + excluded.cost_usd"
)
# The month's row exists before a request is admitted (see admit), so that settle, inside the log
# writer's batch, can find it from the usage row's ts in SQL: the month start is the latest month
# of the key's rows that is not after ts.
SETTLE_SPEND = """UPDATE key_spend SET cost_usd = cost_usd + (? - (SELECT cost_usd FROM key_usage WHERE rowid = ?))
    WHERE key_id = ? AND month = (SELECT max(month) FROM key_spend
        WHERE key_id = ? AND month <= (SELECT ts FROM key_usage WHERE rowid = ?))"""
SET_COST = "UPDATE key_usage SET cost_usd = ? WHERE rowid = ?"


def record_usage(key_id: int, cost_usd: float = 0.0, at: float | None = None) -> None:
    """Count one request against a key's limits and mark the key as used. Call once per request."""
    at = time.time() if at is None else at
    cost = float(cost_usd or 0.0)
    with writing() as conn:  # in the log writer's batch: one multi-row INSERT, one UPDATE per key
        insert(conn, "INSERT INTO key_usage (key_id, ts, cost_usd) VALUES (?, ?, ?)", (key_id, at, cost))
        add_to(conn, ADD_SPEND, (key_id, month_start(at)), cost)
        raise_to(conn, MARK_USED, at, key_id)


def backfill_spend(conn: Any) -> None:
    """Fill key_spend from every key_usage row (the migration that creates the table runs this);
    a month whose rows cost nothing gets its row too (settle relies on it, see SETTLE_SPEND)."""
    spend: dict[tuple[int, float], float] = {}
    for key_id, ts, cost in conn.execute("SELECT key_id, ts, cost_usd FROM key_usage"):
        month = (key_id, month_start(ts))
        spend[month] = spend.get(month, 0.0) + float(cost)
    conn.executemany(ADD_SPEND, [(*key, cost) for key, cost in sorted(spend.items())])


def month_spend(conn: Any, key_id: int, month: float) -> float:
    """What key_spend holds for the key's month (0 when it has no row)."""
    row = conn.execute("SELECT cost_usd FROM key_spend WHERE key_id = ? AND month = ?", (key_id, month)).fetchone()
    return float(row[0]) if row else 0.0


def has_limits(record: KeyRecord) -> bool:
    return record.rpm is not None or record.rpd is not None or record.budget_usd is not None


@dataclass(frozen=True)
class Admission:
    """What `admit` decided: the usage before this request (in the windows of the key's own limits:
    checked_since), the limit it hit (None: admitted) and the key_usage row that counts the admitted
    request (its reservation, settled later)."""

    used: Usage
    hit: LimitHit | None
    usage_id: int | None


def admit(record: KeyRecord, now: float | None = None) -> Admission:
    """Check a key's limits and, when none is hit, count the request at once: the check and the
    count are one `BEGIN IMMEDIATE` transaction, so every thread and every process sharing the
    store sees the same count (a refused request adds nothing). The row's cost starts at 0;
    `reserve` raises it to the request's worst case and `settle` sets the real cost."""
    with writing() as conn:
        lock(conn, "key", record.id)  # PostgreSQL: one admission of this key at a time (SQLite: BEGIN IMMEDIATE)
        now = clock.now() if now is None else now  # read under the write lock: admissions are in order
        used = _usage(conn, record.id, now, checked_since(record, now))
        if record.budget_usd is not None:  # the month's spend from its counter, not its rows
            used = replace(used, cost_month_usd=month_spend(conn, record.id, month_start(now)))
        hit = limit_exceeded(record, used, now)
        if hit is not None:
            return Admission(used, hit, None)
        row = conn.execute(
            "INSERT INTO key_usage (key_id, ts, cost_usd) VALUES (?, ?, 0) RETURNING rowid", (record.id, now)
        ).fetchone()
        _add_spend(conn, record.id, month_start(now), 0.0)  # the row settle will look for
        return Admission(used, None, row[0])


def reserve(record: KeyRecord, usage_id: int, cost_usd: float, now: float | None = None) -> LimitHit | None:
    """Hold `cost_usd` (the request's worst case) against the key's monthly budget, unless what is
    spent and held by other requests already reaches it: then the request's row is removed (it
    does not count) and the budget's LimitHit returned. Atomic like `admit`, so parallel requests
    overspend by at most one request's worst case."""
    now = clock.now() if now is None else now
    with writing() as conn:
        if record.budget_usd is not None:
            lock(conn, "key", record.id)
        row = conn.execute("SELECT ts, cost_usd FROM key_usage WHERE rowid = ?", (usage_id,)).fetchone()
        month, held = (month_start(row[0]), float(row[1])) if row else (None, 0.0)
        if record.budget_usd is not None:
            hit = limit_exceeded(
                replace(record, rpm=None, rpd=None), _spent_by_others(conn, record.id, now, month, held), now
            )
            if hit is not None:
                conn.execute("DELETE FROM key_usage WHERE rowid = ?", (usage_id,))
                _add_spend(conn, record.id, month, -held)
                return hit
        conn.execute(SET_COST, (float(cost_usd), usage_id))
        _add_spend(conn, record.id, month, float(cost_usd) - held)
    return None


def _spent_by_others(conn: Any, key_id: int, now: float, month: float | None, held: float) -> Usage:
    """The key's spend this month, but for what the request's own row (of `month`) holds."""
    this_month = month_start(now)
    return Usage(0, 0, month_spend(conn, key_id, this_month) - (held if month == this_month else 0.0), None, None)


def _add_spend(conn: Any, key_id: int, month: float | None, delta: float) -> None:
    """Apply a key_usage row's change of cost to its month (none when the row was not there). At
    once even inside a batch: admit and reserve read the counter in the same transaction."""
    if month is not None:
        conn.execute(ADD_SPEND, (key_id, month, delta))


def settle(key_id: int, usage_id: int, cost_usd: float = 0.0, at: float | None = None) -> None:
    """Replace an admitted request's reservation by its real cost, and mark the key as used."""
    at = time.time() if at is None else at
    cost = float(cost_usd or 0.0)
    with writing() as conn:
        # The delta (new cost - old) is taken in SQL before the UPDATE, both at the log writer's
        # batch end: reading the old cost here would cost a round trip in PostgreSQL's pipeline.
        defer(conn, (key_id,), (SETTLE_SPEND, (cost, usage_id, key_id, key_id, usage_id)), (SET_COST, (cost, usage_id)))
        raise_to(conn, MARK_USED, at, key_id)


def month_start(now: float) -> float:
    t = time.gmtime(now)
    return float(calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0)))


def usage(key_id: int, now: float | None = None) -> Usage:
    """A key's requests in the last minute and day as they stood at `now` (requests admitted later are
    not counted), and its spend in the month of `now` (reservations included) from the month's counter
    (key_spend): one row read instead of the month's requests, which the webhooks' check after every
    request and /v1/me/usage would otherwise sum."""
    now = clock.now() if now is None else now
    conn = connect(create=False)
    if conn is None:
        return Usage(0, 0, 0.0, None, None)
    with readable_errors():
        used = _usage(conn, key_id, now, since=now - 86_400, upto=now)
        return replace(used, cost_month_usd=month_spend(conn, key_id, month_start(now)))


def checked_since(record: KeyRecord, now: float) -> float:
    """The start of the longest request-count window among the limits a key has (rpm, rpd): what
    admitting it must read. A key limited per minute only reads its last minute's rows, not the
    day's (at 100 requests a second, 8.6 million of them), and a budget reads the month's counter
    (key_spend), not its rows: the admission's cost, paid under the store's write lock, stays flat."""
    starts = [now - 60] if record.rpm is not None else []
    if record.rpd is not None:
        starts.append(now - 86_400)
    return min(starts, default=now)


def spent_this_month(key_id: int, now: float | None = None) -> float:
    """A key's spend this UTC month (reservations included), from its counter: what Redis is
    seeded with when it has no figure for the month."""
    now = clock.now() if now is None else now
    conn = connect(create=False)
    if conn is None:
        return 0.0
    with readable_errors():
        return month_spend(conn, key_id, month_start(now))


def _usage(conn: Any, key_id: int, now: float, since: float, upto: float = float("inf")) -> Usage:
    """The requests of the minute and day windows ending at `now`, from the rows since `since` (a
    window that starts earlier is then counted in part: admit reads only what the key's limits check);
    with `upto`, none admitted after it. The month's spend is left at 0: it comes from its counter
    (month_spend)."""
    minute, day = now - 60, now - 86_400
    row = conn.execute(
        """SELECT coalesce(sum(ts > :minute), 0), coalesce(sum(ts > :day), 0),
                  min(CASE WHEN ts > :minute THEN ts END), min(CASE WHEN ts > :day THEN ts END)
           FROM key_usage WHERE key_id = :key AND ts >= :since AND ts <= :upto""",
        {"minute": minute, "day": day, "key": key_id, "upto": upto, "since": since},
    ).fetchone()
    return Usage(int(row[0]), int(row[1]), 0.0, row[2], row[3])


def limit_exceeded(record: KeyRecord, used: Usage, now: float | None = None) -> LimitHit | None:
    """The first limit that one more request would break, with when to retry; None = go ahead."""
    now = clock.now() if now is None else now
    if record.rpm is not None and used.requests_minute >= record.rpm:
        return LimitHit("rpm", record.rpm, _retry(used.oldest_minute, 60, now))
    if record.rpd is not None and used.requests_day >= record.rpd:
        return LimitHit("rpd", record.rpd, _retry(used.oldest_day, 86_400, now))
    if record.budget_usd is not None and used.cost_month_usd >= record.budget_usd:
        t = time.gmtime(now)
        next_month = calendar.timegm((t.tm_year + t.tm_mon // 12, t.tm_mon % 12 + 1, 1, 0, 0, 0))
        return LimitHit("budget", record.budget_usd, max(1, int(next_month - now)))
    return None


def _retry(oldest: float | None, window: int, now: float) -> int:
    return max(1, int((oldest or now) + window - now) + 1)


def check_limits(record: KeyRecord, now: float | None = None) -> LimitHit | None:
    """usage() and limit_exceeded() in one call: what the gateway asks before each request."""
    return limit_exceeded(record, usage(record.id, now), now)
