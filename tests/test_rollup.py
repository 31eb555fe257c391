"""The daily rollup of the routing log (r42.store.rollup): what the query layer reads from it must
be what a scan of every row gives (counts and tokens equal, cost to the rounding the reports show,
latency percentiles within rollup.BOUND), through writes, late rows, pruning, a rolled-back batch
and the migration that fills it from an older store."""

from __future__ import annotations

import math
import random
import sqlite3
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from r42 import store
from r42.store import queries, rollup
from r42.store.db import batch, reading, store_path, writing
from r42.store.queries import Scope, panels, stats_report
from r42.store.stats import Reference, compute_stats

DAY = 86_400.0
T0 = datetime(2026, 3, 10, tzinfo=timezone.utc).timestamp()  # a midnight (UTC)
REFERENCE = Reference("openai/gpt-4o", 2.5, 10.0, "test")
PERCENTILE_KEYS = ("latency_ms", "ttft_ms")

pytestmark = pytest.mark.usefixtures("store_backend")  # each test on SQLite and on PostgreSQL (tests/conftest.py)


@pytest.fixture(autouse=True)
def fresh(isolated_env, monkeypatch):
    monkeypatch.setenv("R42_LOG_RETENTION_DAYS", "0")
    queries._cache.clear()
    yield
    queries.ROLLUP = True


def assert_close(got: Any, want: Any, path: str = "", within: float = 0.0) -> None:
    """Equal documents (key order included), except money (abs 2e-6: sums added in another order,
    then rounded to 6 places) and latency and TTFT percentiles (relative `within`)."""
    if isinstance(want, dict):
        assert list(got) == list(want), path
        for key in want:
            assert_close(got[key], want[key], f"{path}.{key}", within)
    elif isinstance(want, list):
        assert len(got) == len(want), path
        for index, (g, w) in enumerate(zip(got, want)):
            assert_close(g, w, f"{path}[{index}]", within)
    elif isinstance(want, float) and isinstance(got, float) and any(k in path for k in PERCENTILE_KEYS):
        assert got == pytest.approx(want, rel=within * 1.000001, abs=1e-12), path
    elif isinstance(want, float) and isinstance(got, float):
        assert got == pytest.approx(want, abs=2e-6), path
    else:
        assert got == want, path


def raw(function, *args, **kwargs):
    """The same query with every row read (the rollup switched off)."""
    queries.ROLLUP = False
    try:
        return function(*args, **kwargs)
    finally:
        queries.ROLLUP = True


rows_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "at": st.floats(min_value=0, max_value=4.5 * DAY),
            "user": st.sampled_from([None, "alice", "bob", ""]),
            "model": st.sampled_from([None, "openai/gpt-4o", "groq/llama", "local", ""]),
            "mode": st.sampled_from([None, "cost", "quality"]),
            "domain": st.sampled_from([None, "code", "math"]),
            "complexity": st.one_of(st.none(), st.floats(min_value=0, max_value=1)),
            "status": st.sampled_from(["ok", "ok", "ok", "error", "rejected"]),
            "input_tokens": st.one_of(st.none(), st.integers(0, 5000)),
            "output_tokens": st.one_of(st.none(), st.integers(0, 2000)),
            "cost_usd": st.one_of(st.none(), st.floats(min_value=0, max_value=0.5)),
            "latency_ms": st.one_of(st.none(), st.just(0.0), st.floats(min_value=rollup.MIN_MS, max_value=60_000)),
            "ttft_ms": st.one_of(st.none(), st.floats(min_value=rollup.MIN_MS, max_value=9_000)),
        }
    ),
    max_size=80,
)


def write(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        store.write_route(endpoint="ask", retention_days=0, **{**row, "at": T0 + row["at"]})


def empty_store() -> None:
    with writing() as conn:
        conn.execute("DELETE FROM routes")
        conn.execute("DELETE FROM route_rollup")


SCOPES = (
    Scope(),
    Scope(user="alice"),
    Scope(user=""),
    Scope(since=T0 + 0.5 * DAY),
    Scope(since=T0 + DAY, until=T0 + 3 * DAY),
    Scope(since=T0 + 0.25 * DAY, until=T0 + 3.75 * DAY, user="bob"),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows_strategy, exact_max=st.sampled_from([0, 2, 32]))
def test_reports_from_the_rollup_equal_a_scan_of_every_row(rows, exact_max):
    empty_store()
    old, rollup.EXACT_MAX = rollup.EXACT_MAX, exact_max  # small cells: exercise the binned latencies too
    try:
        write(rows)
    finally:
        rollup.EXACT_MAX = old
    within = rollup.BOUND if exact_max < 32 else 0.0  # at most 80 rows over 5 days: 32 keeps them exact
    for scope in SCOPES:
        rows_in = [
            r
            for r in store.iter_routes(since=scope.since, user=scope.user)
            if scope.until is None or r["ts"] < scope.until
        ]
        for reference in (REFERENCE, None):
            assert_close(stats_report(scope, reference), compute_stats(rows_in, reference), within=within)
        # the dashboard's panels: day buckets over 5 days (the 30-day view's shape)
        since = scope.since if scope.since is not None else T0
        until = scope.until if scope.until is not None else T0 + 5 * DAY
        whole = Scope(since, until, scope.user)
        got = panels(whole, REFERENCE, 86_400, now=T0 + 5 * DAY)
        want = raw(panels, whole, REFERENCE, 86_400, now=T0 + 5 * DAY)
        for name in ("keys", "generated"):
            got.pop(name), want.pop(name)
        assert_close(got, want, within=within)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(
        st.one_of(st.just(0.0), st.floats(min_value=rollup.MIN_MS, max_value=rollup.MAX_MS)), min_size=1, max_size=300
    )
)
def test_binned_percentiles_are_within_the_stated_bound(values):
    old, rollup.EXACT_MAX = rollup.EXACT_MAX, 0
    try:
        binned = rollup.Dist.loads(*rollup.Dist(list(values)).stored())
    finally:
        rollup.EXACT_MAX = old
    assert not binned.exact and len(binned) == len(values)
    exact = sorted(values)
    for p in (1, 50, 90, 95, 99, 100):
        want = exact[max(1, math.ceil(p / 100 * len(exact))) - 1]
        got = binned.percentiles((p,))[f"p{p}"]
        assert got is not None
        if want == 0:
            assert got == 0.0
        else:
            assert abs(got / want - 1) <= rollup.BOUND * 1.000001


def seed(n: int = 600, days: float = 5.0) -> None:
    rng = random.Random(5)
    for index in range(n):
        ok = rng.random() > 0.1
        store.write_route(
            endpoint="/v1/chat/completions",
            status="ok" if ok else "error",
            user=rng.choice(("alice", "bob", None)),
            model=rng.choice(("openai/gpt-4o", "groq/llama", None)),
            mode=rng.choice(("cost", "quality")),
            domain=rng.choice(("code", None)),
            complexity=rng.random(),
            input_tokens=rng.randint(1, 900),
            output_tokens=rng.randint(1, 300),
            cost_usd=rng.random() / 1000,
            latency_ms=rng.uniform(50, 5000),
            ttft_ms=rng.uniform(10, 500) if ok else None,
            at=T0 + days * DAY * index / n,
            retention_days=0,
        )


def test_a_prune_drops_the_days_that_went_and_rebuilds_the_day_it_cut():
    seed()
    now = T0 + 5 * DAY
    gone = store.prune(2.4, now=now)  # the cut falls at 14:24 on the third day
    assert gone > 0
    cut_day = rollup.day_of(now - 2.4 * DAY)
    conn = reading()
    assert conn is not None and conn.execute("SELECT min(day) FROM route_rollup").fetchone()[0] == cut_day
    rows = list(store.iter_routes())
    assert rows and min(r["ts"] for r in rows) >= now - 2.4 * DAY
    assert_close(stats_report(Scope(), REFERENCE), compute_stats(rows, REFERENCE), within=rollup.BOUND)
    assert_close(stats_report(Scope(), REFERENCE), raw(stats_report, Scope(), REFERENCE), within=rollup.BOUND)


def test_a_rolled_back_batch_leaves_neither_rows_nor_rollup_cells():
    seed(5)
    before = stats_report(Scope(), None)
    with pytest.raises(RuntimeError):
        with batch() as conn, rollup.deferred(conn):  # as the gateway's log writer
            for index in range(3):
                store.write_route(endpoint="ask", model="late/one", at=T0 + index, retention_days=0)
            raise RuntimeError("disk full")
    assert stats_report(Scope(), None) == before
    assert_close(stats_report(Scope(), None), raw(stats_report, Scope(), None))


def test_a_batch_adds_its_cells_once_and_equal_to_its_rows():
    seed(40)
    rng = random.Random(2)
    with batch() as conn, rollup.deferred(conn):  # as the gateway's log writer
        for index in range(300):
            store.write_route(
                endpoint="ask",
                model=rng.choice(("late/one", "openai/gpt-4o")),
                user=rng.choice(("alice", None)),
                at=T0 + DAY + index,
                latency_ms=float(index),
                ttft_ms=float(index % 7) if index % 3 else None,
                complexity=index / 300,
                retention_days=0,
            )
    for scope in (Scope(), Scope(user="alice"), Scope(since=T0 + DAY, until=T0 + 2 * DAY)):
        assert_close(stats_report(scope, REFERENCE), raw(stats_report, scope, REFERENCE), within=rollup.BOUND)
        got = panels(scope, REFERENCE, 86_400, now=T0 + 5 * DAY)
        want = raw(panels, scope, REFERENCE, 86_400, now=T0 + 5 * DAY)
        assert got["complexity"] == want["complexity"] and got["series"] == want["series"]


@pytest.mark.sqlite_file  # makes an older store by hand in the SQLite file
def test_the_migration_fills_the_rollup_from_an_older_store():
    seed()
    written = stats_report(Scope(), REFERENCE)
    cells = rollup_cells()
    # make the store what r42 before the rollup left behind: schema 4, no rollup table
    store.close_thread_connection()
    conn = sqlite3.connect(store_path())
    conn.execute("DROP TABLE route_rollup")
    conn.execute("DROP INDEX routes_failed_ts")
    conn.execute("DROP TABLE privacy_prompts")  # migration 6, after the rollup's
    conn.execute("DROP TABLE key_spend")  # migration 7
    conn.execute("PRAGMA user_version = 4")
    conn.commit()
    conn.close()
    assert stats_report(Scope(), REFERENCE) == written  # opening the store migrates and backfills
    assert rollup_cells() == cells


def rollup_cells() -> dict[tuple, tuple]:
    """The rollup's rows, latencies as sorted values or bins (the order values came in differs)."""
    conn = sqlite3.connect(store_path())
    out = {}
    for row in conn.execute("SELECT * FROM route_rollup"):
        *head, latency, latency_bins, ttft, ttft_bins, _version = row
        dists = tuple(
            (sorted(d.exact), d.packed)
            for d in (rollup.Dist.loads(latency, latency_bins), rollup.Dist.loads(ttft, ttft_bins))
        )
        out[tuple(head[:4])] = (*(round(v, 9) if isinstance(v, float) else v for v in head[4:]), dists)
    conn.close()
    return out


def test_a_late_row_in_a_rolled_up_day_is_counted_at_once():
    seed(100, days=3)
    scope = Scope(since=T0, until=T0 + 3 * DAY)
    before = panels(scope, None, 86_400, now=T0 + 3 * DAY)
    store.write_route(endpoint="ask", model="late/one", at=T0 + 1.5 * DAY, cost_usd=0.5, retention_days=0)
    after = panels(scope, None, 86_400, now=T0 + 3 * DAY)
    assert after["totals"]["requests"] == before["totals"]["requests"] + 1
    assert after["series"][1]["requests"] == before["series"][1]["requests"] + 1
    assert after["by_model"]["late/one"]["cost_usd"] == 0.5


def test_nan_and_infinite_values_count_as_the_rows_count_them():
    nan, inf = float("nan"), float("inf")
    for complexity, latency, cost in ((nan, nan, nan), (inf, 5.0, 0.25), (-inf, 7.0, None), (0.7, 3.0, 0.5)):
        store.write_route(endpoint="ask", complexity=complexity, latency_ms=latency, cost_usd=cost, at=T0)
    got, want = stats_report(Scope(), REFERENCE), raw(stats_report, Scope(), REFERENCE)
    assert_close(got, want)  # SQLite keeps a NaN as NULL: not a latency, no cost, no complexity
    assert (
        panels(Scope(T0, T0 + DAY), None, 86_400)["complexity"]
        == raw(panels, Scope(T0, T0 + DAY), None, 86_400)["complexity"]
    )


def test_parallel_batches_on_shared_cells_neither_deadlock_nor_lose_a_row():
    """Several log writers (the servers of a cluster) add batches that share cells, some with
    latencies and some without, at once: on PostgreSQL they must not lock cells in different orders
    (a deadlock costs a second and fails the batch); every row is counted once."""
    from concurrent.futures import ThreadPoolExecutor

    def writer(seed_: int) -> None:
        rng = random.Random(seed_)
        for _ in range(12):
            with batch() as conn, rollup.deferred(conn):
                for _ in range(rng.randint(1, 6)):
                    timed = rng.random() < 0.5
                    store.write_route(
                        endpoint="ask",
                        model=rng.choice(("a/one", "b/two", "c/three")),
                        user=rng.choice(("alice", "bob")),
                        at=T0 + rng.random(),
                        latency_ms=rng.uniform(5, 500) if timed else None,
                        retention_days=0,
                    )
        store.close_thread_connection()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(writer, range(4)))  # re-raises a writer's error (a deadlock: StoreError)
    assert_close(stats_report(Scope(), REFERENCE), raw(stats_report, Scope(), REFERENCE), within=rollup.BOUND)
