"""Provider and model health: a sliding window of attempt outcomes and a circuit breaker per key.

Every attempt the executor finishes (status, error kind, latency, time to first token) is an
`Outcome`, counted for its provider ("provider:openai") and its model ("model:openai/gpt-4o").
Only outcomes that say something about the provider's health count: an answer, a connection
failure or timeout, 408, 429, 5xx and 529. A 400 (the request's own fault), 401/403 (one user's
credential) and a provider that is not configured say nothing about it and are not recorded.

The circuit of a key, worked out by folding its outcomes in time order (`fold`):
    closed     -> open       after `health_failures` failures in a row, or when at least
                             `health_error_rate` of the window failed (once it holds
                             `health_min_attempts` attempts)
    open       -> half-open  `health_cooldown` seconds after it opened: one probe may go through
    half-open  -> closed     the probe answered (the window starts afresh)
    half-open  -> open       the probe failed (the cool-down starts again)

Because the state is a pure function of the outcomes, every process that reads the same outcomes
from the store agrees on it, and the webhook marks (provider.unhealthy / provider.recovered, one
per transition) de-duplicate across processes. Outcomes go to the store in batches by `sync()`
(the gateway's health thread; `r42 ask` after each answer), never on the request path; the store
behind `HealthStore` is SQLite today (r42.store.health) and can be another backend.

`rank` reads a `View`: dicts of the keys that are not closed, rebuilt at most every second, so
that a healthy catalog costs one empty-dict test per model.
"""

from __future__ import annotations

import sys
import threading
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol

from r42 import clock

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
STATE_NUMBER = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}  # the /metrics gauge
VIEW_TTL = 1.0  # seconds (of r42.clock) rank reuses a View


@dataclass(frozen=True)
class Outcome:
    """One finished attempt. `ts` is wall-clock seconds (r42.clock), `kind` the error kind ("ok")."""

    ts: float
    provider: str
    model: str
    ok: bool
    status: int | None
    kind: str
    latency_ms: float
    ttft_ms: float | None = None


def error_kind(status: int | None, message: str | None) -> str:
    """What kind of failure an attempt had, from its status and message."""
    text = (message or "").lower()
    if status is None:
        if "timed out" in text or "timeout" in text:
            return "timeout"
        return "connection" if text else "unknown"
    if status == 429:
        return "rate_limited"
    if status in (503, 529) or "overloaded" in text:
        return "overloaded"
    if status == 408:
        return "timeout"
    if status >= 500:
        return "server_error"
    if status in (401, 403):
        return "auth"
    return "bad_request"


def counts_for_health(ok: bool, status: int | None, kind: str) -> bool:
    """Does this outcome say anything about the provider's health? (see the module's docstring)"""
    if ok:
        return True
    return kind in ("timeout", "connection", "rate_limited", "overloaded", "server_error", "unknown")


@dataclass(frozen=True)
class Rules:
    """The breaker's settings (from Settings: health_*)."""

    window: int = 20
    window_s: float = 300.0
    failures: int = 5
    error_rate: float = 0.5
    min_attempts: int = 10
    cooldown: float = 30.0

    @classmethod
    def from_settings(cls, settings: Any) -> "Rules":
        return cls(
            settings.health_window,
            settings.health_window_s,
            settings.health_failures,
            settings.health_error_rate,
            settings.health_min_attempts,
            settings.health_cooldown,
        )


@dataclass
class Transition:
    key: str
    state: str  # OPEN or CLOSED
    ts: float
    reason: str


@dataclass
class Circuit:
    """One key's window and circuit after folding its outcomes."""

    key: str
    state: str = CLOSED
    opened: float | None = None
    reason: str = ""
    window: deque[Outcome] = field(default_factory=deque)
    consecutive: int = 0
    transitions: list[Transition] = field(default_factory=list)

    def failures(self) -> int:
        return sum(1 for o in self.window if not o.ok)

    def why(self) -> str:
        return f"{self.failures()} of the last {len(self.window)} attempts failed"

    def add(self, o: Outcome, rules: Rules) -> None:
        if self.state == OPEN:
            if o.ok:  # a probe (or a request begun before the circuit opened) answered
                self.state, self.opened, self.consecutive = CLOSED, None, 0
                self.window.clear()
                self.transitions.append(Transition(self.key, CLOSED, o.ts, "answered again"))
            else:
                self._push(o, rules)
                if self.opened is not None and o.ts >= self.opened + rules.cooldown:  # the probe failed
                    self.opened, self.reason = o.ts, self.why()
                return
        self._push(o, rules)
        self.consecutive = 0 if o.ok else self.consecutive + 1
        if self.state == CLOSED and not o.ok and self._trips(rules):
            self.state, self.opened, self.reason = OPEN, o.ts, self.why()
            self.transitions.append(Transition(self.key, OPEN, o.ts, self.reason))

    def _push(self, o: Outcome, rules: Rules) -> None:
        self.window.append(o)
        while len(self.window) > rules.window:
            self.window.popleft()

    def _trips(self, rules: Rules) -> bool:
        if self.consecutive >= rules.failures:
            return True
        n = len(self.window)
        return n >= rules.min_attempts and self.failures() >= rules.error_rate * n

    def state_at(self, now: float, rules: Rules) -> str:
        if self.state == OPEN and self.opened is not None and now >= self.opened + rules.cooldown:
            return HALF_OPEN
        return self.state

    def summary(self, now: float, rules: Rules) -> dict[str, Any]:
        """The key's health as /health?verbose=1, r42 stats --health and the dashboard show it."""
        latencies = sorted(o.latency_ms for o in self.window if o.ok)
        ttfts = sorted(o.ttft_ms for o in self.window if o.ok and o.ttft_ms is not None)
        kinds: dict[str, int] = {}
        for o in self.window:
            if not o.ok:
                kinds[o.kind] = kinds.get(o.kind, 0) + 1
        state = self.state_at(now, rules)
        out: dict[str, Any] = {
            "state": state,
            "attempts": len(self.window),
            "failures": self.failures(),
            "consecutive_failures": self.consecutive,
            "errors": kinds,
            "latency_ms_p50": _median(latencies),
            "ttft_ms_p50": _median(ttfts),
            "last": round(self.window[-1].ts, 3) if self.window else None,
        }
        if state != CLOSED:
            out["reason"] = self.reason
            out["opened"] = self.opened
            out["probe_after"] = None if self.opened is None else round(self.opened + rules.cooldown, 3)
        return out


def _ts(o: Outcome) -> float:
    return o.ts


def _median(values: list[float]) -> float | None:
    return None if not values else round(values[len(values) // 2], 1)


def keys_of(o: Outcome) -> tuple[str, str]:
    return "provider:" + o.provider, "model:" + o.model


def fold(outcomes: Iterable[Outcome], rules: Rules) -> dict[str, Circuit]:
    """Every key's circuit from outcomes in time order."""
    circuits: dict[str, Circuit] = {}
    for o in outcomes:
        for key in keys_of(o):
            circuit = circuits.get(key)
            if circuit is None:
                circuit = circuits[key] = Circuit(key)
            circuit.add(o, rules)
    return circuits


class HealthStore(Protocol):
    """Where outcomes are shared between processes (r42.store.health.SQLiteHealthStore; a Redis
    one needs the same three methods)."""

    def append(self, outcomes: list[Outcome]) -> None: ...

    def recent(self, since: float) -> list[Outcome]: ...

    def prune(self, before: float) -> None: ...


MAX_SHARED = 20_000  # outcomes a sync folds at most (the newest); also SQLiteHealthStore.recent's read cap


@dataclass(frozen=True)
class View:
    """What rank reads: reasons by provider id and by model id for the keys whose circuit is not
    closed, and a tie-break penalty by model id (share failed, then median latency)."""

    providers: dict[str, str]
    models: dict[str, str]
    penalty: dict[str, tuple[float, float]]
    half_open: frozenset[str]
    board: "Board | None" = None

    def reason(self, kind: str, ident: str) -> str | None:
        """Why this provider or model is skipped now; None lets it through (a half-open one is
        let through once: it is the probe)."""
        found = (self.providers if kind == "provider" else self.models).get(ident)
        if found is None:
            return None
        key = f"{kind}:{ident}"
        if key in self.half_open and self.board is not None and self.board.claim_probe(key):
            return None
        return found


EMPTY_VIEW = View({}, {}, {}, frozenset())


class Board:
    """One process's health: outcomes recorded here at once (in memory), shared through `store`
    by `sync()`; `view()` for rank, `circuits()` for the reports. Thread-safe."""

    def __init__(self, rules: Rules, store: HealthStore | None = None, announce: bool = True) -> None:
        self.rules = rules
        self.store = store
        self.announce = announce  # emit provider.unhealthy / provider.recovered webhooks
        self._lock = threading.Lock()
        self._pending: list[Outcome] = []  # recorded here, not yet written
        self._circuits: dict[str, Circuit] = {}
        self._view: View = EMPTY_VIEW
        self._view_at = -1.0e9
        self._probes: dict[str, float] = {}  # key -> when its probe lease ends (this process)
        self._announced: set[str] = set()
        self._synced = -1.0e9
        # The store's outcomes in the window as of the last sync, by (ts, id), and the highest id
        # read: a sync then reads only the rows added since (see _shared_outcomes).
        self._seen: list[tuple[float, int, Outcome]] = []
        self._seen_id: int | None = None
        self._seen_since = -1.0e9
        self._warned = False
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # --- recording ---------------------------------------------------------------------------

    def record(self, outcome: Outcome) -> None:
        """Count one attempt (the executor calls this as each attempt ends). Cheap: no I/O."""
        if not counts_for_health(outcome.ok, outcome.status, outcome.kind):
            return
        transitions: list[Transition] = []
        with self._lock:
            self._pending.append(outcome)
            for key in keys_of(outcome):
                circuit = self._circuits.get(key)
                if circuit is None:
                    circuit = self._circuits[key] = Circuit(key)
                before = len(circuit.transitions)
                circuit.add(outcome, self.rules)
                self._probes.pop(key, None)  # the probe (or any attempt) reported: the lease ends
                if len(circuit.transitions) != before:
                    transitions += circuit.transitions[before:]
                    self._view_at = -1.0e9  # rank sees the change at once
        self._announce(transitions)

    # --- reading -----------------------------------------------------------------------------

    def view(self) -> View:
        """The View for rank, rebuilt at most every VIEW_TTL seconds (at once after a transition).
        Without a sync thread (the CLI) a stale store is read first."""
        now = clock.now()
        if 0.0 <= now - self._view_at < VIEW_TTL:
            return self._view
        if self._thread is None and self.store is not None and not 0.0 <= now - self._synced < VIEW_TTL:
            self.sync()
        providers: dict[str, str] = {}
        models: dict[str, str] = {}
        penalty: dict[str, tuple[float, float]] = {}
        half_open: set[str] = set()
        with self._lock:
            for key, circuit in self._circuits.items():
                kind, _, ident = key.partition(":")
                state = circuit.state_at(now, self.rules)
                if state != CLOSED:
                    reason = f"unhealthy: {circuit.reason}"
                    (providers if kind == "provider" else models)[ident] = reason
                    if state == HALF_OPEN and self._probes.get(key, 0.0) <= now:
                        half_open.add(key)
                elif kind == "model" and circuit.window:
                    failed = circuit.failures() / len(circuit.window)
                    latencies = sorted(o.latency_ms for o in circuit.window if o.ok)
                    penalty[ident] = (round(failed, 1), latencies[len(latencies) // 2] if latencies else 0.0)
        self._view = View(providers, models, penalty, frozenset(half_open), self)
        self._view_at = now
        return self._view

    def claim_probe(self, key: str) -> bool:
        """Take the one probe of a half-open key (in this process), leased for a cool-down: a
        ranking that is not run then frees it again."""
        now = clock.now()
        with self._lock:
            if self._probes.get(key, 0.0) > now:
                return False
            self._probes[key] = now + self.rules.cooldown
            self._view_at = -1.0e9
        return True

    def circuits(self) -> dict[str, dict[str, Any]]:
        """Every key's summary, by key ("provider:openai", "model:openai/gpt-4o")."""
        now = clock.now()
        with self._lock:
            return {key: c.summary(now, self.rules) for key, c in sorted(self._circuits.items())}

    # --- sharing -----------------------------------------------------------------------------

    def sync(self) -> None:
        """Write the pending outcomes, read everyone's recent ones and fold them again. Errors are
        reported once and never raised (health must not break a request)."""
        if self.store is None:
            return
        self._synced = clock.now()
        with self._lock:
            pending, self._pending = self._pending, []
        now = clock.now()
        try:
            if pending:
                self.store.append(pending)
            shared = self._shared_outcomes(now - self.rules.window_s)
        except Exception as exc:  # noqa: BLE001 - the store may be locked or gone: keep going in memory
            with self._lock:
                self._pending = pending + self._pending
            if not self._warned:
                self._warned = True
                print(f"r42: warning: could not share provider health: {exc}", file=sys.stderr)
            return
        with self._lock:
            recorded = len(self._pending)
            unwritten = list(self._pending)
        # Folded without the lock (record() on the request path never waits for it), then the
        # outcomes recorded meanwhile are added before the result replaces the circuits.
        # `shared` is in time order already: only outcomes recorded meanwhile need sorting in
        ordered = sorted([*shared, *unwritten], key=_ts) if unwritten else shared
        circuits = fold(ordered, self.rules)
        with self._lock:
            for o in self._pending[recorded:]:
                for key in keys_of(o):
                    circuits.setdefault(key, Circuit(key)).add(o, self.rules)
            self._circuits = circuits
            self._view_at = -1.0e9
            transitions = [t for c in circuits.values() for t in c.transitions]
        self._announce(transitions)

    def _shared_outcomes(self, since: float) -> list[Outcome]:
        """store.recent(since), the newest MAX_SHARED outcomes in the window in time order, kept
        from one sync to the next so that only the rows added since the last read are read (a
        process re-reading a busy window of 20,000 rows every second spent ~7% of a core on it,
        idle or not, and every worker did). A store without `recent_after`, the first read, a clock
        that went back or a burst of MAX_SHARED new rows read the whole window, as before."""
        assert self.store is not None
        after = getattr(self.store, "recent_after", None)
        if after is None:
            return self.store.recent(since)
        fresh = None
        if self._seen_id is not None and since >= self._seen_since:
            fresh = after(since, self._seen_id)
            if len(fresh) >= MAX_SHARED:  # maybe more: newest by time is no longer newest by id
                fresh = None
        if fresh is None:
            self._seen, self._seen_id = [], -1
            fresh = after(since, -1)
        for ident, _ in fresh:
            self._seen_id = max(self._seen_id, ident)
        seen = self._seen + [(o.ts, ident, o) for ident, o in fresh]
        seen.sort()  # two sorted runs: one merge, by (ts, id) (ids are unique: outcomes are never compared)
        self._seen = seen[max(bisect_left(seen, (since,)), len(seen) - MAX_SHARED) :]
        self._seen_since = since
        return [o for _, _, o in self._seen]

    def prune(self) -> None:
        if self.store is not None:
            self.store.prune(clock.now() - max(self.rules.window_s, 3600.0))

    def start(self, every: float) -> "Board":
        """Sync every `every` seconds on a thread of its own (the gateway)."""
        if self.store is None or self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, args=(every,), name="r42-health", daemon=True)
        self._thread.start()
        return self

    def _run(self, every: float) -> None:
        from r42.store import close_thread_connection

        rounds = 0
        while not self._stop.wait(every):
            self.sync()
            rounds += 1
            if rounds % 600 == 0:
                self.prune()
        self.sync()
        close_thread_connection()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        else:
            self.sync()

    # --- webhooks ----------------------------------------------------------------------------

    def _announce(self, transitions: list[Transition]) -> None:
        """provider.unhealthy / provider.recovered once per transition (the mark de-duplicates
        across processes, which all see the same transitions)."""
        if not self.announce:
            return
        horizon = clock.now() - self.rules.window_s
        for t in transitions:
            mark = f"health:{t.key}:{t.state}:{t.ts:.6f}"
            if mark in self._announced or t.ts < horizon:
                continue
            if len(self._announced) > 10_000:
                self._announced.clear()
            self._announced.add(mark)
            _publish(t, mark)


def _publish(t: Transition, mark: str) -> None:
    try:
        from r42.webhooks import publish
    except ImportError:  # pragma: no cover - webhooks are part of r42; guarded for partial installs
        return
    kind, _, ident = t.key.partition(":")
    provider = ident if kind == "provider" else ident.split("/", 1)[0]
    model = None if kind == "provider" else ident
    event = "provider.unhealthy" if t.state == OPEN else "provider.recovered"
    try:
        publish(event, {"provider": provider, "model": model, "reason": t.reason}, mark=mark)
    except Exception as exc:  # noqa: BLE001 - a webhook must never break the request that caused it
        print(f"r42: warning: could not queue the {event} webhook: {exc}", file=sys.stderr)


def board_for(settings: Any) -> Board | None:
    """The process's Board for these settings (None when `health` is off)."""
    if not settings.health:
        return None
    from r42.store.health import SQLiteHealthStore

    return Board(Rules.from_settings(settings), SQLiteHealthStore())


def prometheus_lines(circuits: dict[str, dict[str, Any]]) -> list[str]:
    """Gauges for /metrics: circuit state (0 closed, 1 half-open, 2 open), attempts and failures
    in the window, median latency."""
    lines = [
        "# HELP r42_health_circuit_state Circuit per provider and model: 0 closed, 1 half-open, 2 open.",
        "# TYPE r42_health_circuit_state gauge",
    ]
    rows = [(key.partition(":"), s) for key, s in circuits.items()]
    lines += [f'r42_health_circuit_state{{{k}="{_label(i)}"}} {STATE_NUMBER[s["state"]]}' for (k, _, i), s in rows]
    lines += [
        "# HELP r42_health_window_attempts Attempts in the health window.",
        "# TYPE r42_health_window_attempts gauge",
    ]
    lines += [f'r42_health_window_attempts{{{k}="{_label(i)}"}} {s["attempts"]}' for (k, _, i), s in rows]
    lines += [
        "# HELP r42_health_window_failures Failed attempts in the health window.",
        "# TYPE r42_health_window_failures gauge",
    ]
    lines += [f'r42_health_window_failures{{{k}="{_label(i)}"}} {s["failures"]}' for (k, _, i), s in rows]
    lines += [
        "# HELP r42_health_latency_seconds Median latency of the answered attempts in the window.",
        "# TYPE r42_health_latency_seconds gauge",
    ]
    lines += [
        f'r42_health_latency_seconds{{{k}="{_label(i)}"}} {s["latency_ms_p50"] / 1000:.3f}'
        for (k, _, i), s in rows
        if s["latency_ms_p50"] is not None
    ]
    return lines


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def shared_circuits(settings: Any) -> dict[str, dict[str, Any]]:
    """Every provider's and model's circuit from the outcomes in the store (r42 stats --health,
    the report), without emitting webhooks."""
    from r42.store.health import SQLiteHealthStore

    board = Board(Rules.from_settings(settings), SQLiteHealthStore(), announce=False)
    board.sync()
    return board.circuits()
