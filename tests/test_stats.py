"""The routing log and `r42 stats` / `r42 log`: what is kept, what is summed, many writers at once."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timezone

import orjson
import pytest
from click.testing import CliRunner

from r42 import store
from r42.catalog import Catalog, Model, Provider, load_catalog
from r42.cli import cli
from r42.errors import UsageError
from r42.store.stats import Reference, choose_reference, compute_stats, parse_since, percentile
from r42.terminal import Terminal
from tests.helpers import json_lines, run


pytestmark = pytest.mark.usefixtures("store_backend")  # each test on SQLite and on PostgreSQL (tests/conftest.py)

DAY = 86_400.0
T0 = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc).timestamp()


@pytest.fixture(autouse=True)
def fresh_connections(isolated_env, monkeypatch):
    monkeypatch.setenv("R42_LOG_RETENTION_DAYS", "0")  # rows at fixed past times must survive the writers' pruning


def route(**fields):
    base = {
        "endpoint": "ask",
        "status": "ok",
        "model": "cheap/small",
        "mode": "cost",
        "domain": "code",
        "complexity": 0.4,
        "input_tokens": 1000,
        "output_tokens": 500,
        "cost_usd": 0.001,
        "latency_ms": 100.0,
        "ttft_ms": 20.0,
        "at": T0,
    }
    base.update(fields)
    return store.write_route(**base)


# ---- the log -------------------------------------------------------------------------------


def test_write_route_keeps_the_fields_and_cleans_attempts():
    attempts = [
        {
            "model": "a/x",
            "ok": False,
            "status": 503,
            "ms": 120,
            "error": "overloaded " * 100,
            "prompt": "SECRET PROMPT",
            "body": {"x": 1},
        },
        {"model": "cheap/small", "ok": True, "status": 200, "ms": 90},
    ]
    row_id = route(attempts=attempts, user="alice", request_id="req-1", key_id=7)
    [row] = store.read_routes()
    assert row["id"] == row_id and row["user"] == "alice" and row["request_id"] == "req-1" and row["key_id"] == 7
    assert row["time"] == "2026-03-10T12:00:00Z" and row["n_attempts"] == 2
    assert (
        set(row["attempts"][0]) == {"model", "ok", "status", "ms", "error"} and len(row["attempts"][0]["error"]) == 200
    )
    assert row["input_tokens"] == 1000 and row["cost_usd"] == 0.001 and row["status"] == "ok"


def test_the_log_never_holds_the_prompt_or_the_answer(isolated_env):
    doc = {
        "id": "req-42",
        "messages": [{"role": "user", "content": "PROMPT-TEXT-that-must-not-be-logged"}],
        "score": {"complexity": 0.71, "domain": "reasoning", "level": "complex"},
        "ranking": {"mode": "quality", "candidates": []},
        "response": {"choices": [{"message": {"role": "assistant", "content": "ANSWER-TEXT-that-must-not-be-logged"}}]},
        "route": {
            "model": "big/one",
            "attempts": [{"model": "big/one", "ok": True, "status": 200, "ms": 800}],
            "usage": {"input_tokens": 12, "output_tokens": 34},
            "cost_usd": 0.002,
            "latency_ms": 810,
            "ttft_ms": 95,
        },
    }
    store.write_route_from_document(doc, endpoint="ask", user="alice")
    [row] = store.read_routes()
    assert (row["request_id"], row["mode"], row["domain"], row["complexity"], row["model"]) == (
        "req-42",
        "quality",
        "reasoning",
        0.71,
        "big/one",
    )
    assert (row["input_tokens"], row["output_tokens"], row["cost_usd"], row["latency_ms"], row["ttft_ms"]) == (
        12,
        34,
        0.002,
        810,
        95,
    )
    assert row["status"] == "ok"
    blob = b"".join(p.read_bytes() for p in isolated_env.glob("r42.db*"))
    assert b"PROMPT-TEXT" not in blob and b"ANSWER-TEXT" not in blob
    store.write_route_from_document({"messages": doc["messages"]}, endpoint="ask", error="AllFailedError")
    assert store.read_routes()[-1]["status"] == "error"


def test_read_routes_gives_the_most_recent_rows_oldest_first():
    for index in range(10):
        route(at=T0 + index, model=f"m/{index}", user="alice" if index % 2 else "bob")
    assert [r["model"] for r in store.read_routes(limit=3)] == ["m/7", "m/8", "m/9"]
    assert [r["model"] for r in store.read_routes(since=T0 + 8)] == ["m/8", "m/9"]
    assert [r["model"] for r in store.read_routes(user="alice", limit=2)] == ["m/7", "m/9"]


def test_retention_prunes_old_rows():
    route(at=T0 - 40 * DAY, model="old/one")
    route(at=T0 - 10 * DAY, model="new/one")
    assert store.prune(0, now=T0) == 0  # 0 keeps everything
    assert store.prune(30, now=T0) == 1
    assert [r["model"] for r in store.read_routes()] == ["new/one"]


def test_a_writer_prunes_with_the_retention_setting(monkeypatch):
    import r42.store.log as log

    route(at=time.time() - 5 * DAY, model="old/one")
    monkeypatch.setattr(log, "_last_prune", 0.0)  # as in a fresh process
    monkeypatch.setenv("R42_LOG_RETENTION_DAYS", "2")
    route(at=time.time(), model="new/one")
    assert [r["model"] for r in store.read_routes()] == ["new/one"]


# ---- many writers, one reader --------------------------------------------------------------


def test_many_threads_write_the_log_while_stats_reads():
    writers, per_writer = 8, 40
    failures: list[BaseException] = []
    done = threading.Event()
    snapshots: list[int] = []

    def write(n: int) -> None:
        try:
            for index in range(per_writer):
                route(model=f"w{n}/m", at=T0 + index, user=f"user{n}")
                if index % 10 == 0:
                    store.record_usage(n, 0.01)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
        finally:
            store.close_thread_connection()

    def read() -> None:
        try:
            while not done.is_set():
                result = compute_stats(store.iter_routes(), None)
                totals = result["totals"]
                assert totals["requests"] == sum(g["requests"] for g in result["by_model"].values())
                snapshots.append(totals["requests"])
        except BaseException as exc:  # noqa: BLE001
            failures.append(exc)
        finally:
            store.close_thread_connection()

    route(model="seed/m")  # create the store before the crowd arrives
    reader = threading.Thread(target=read)
    reader.start()
    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    reader.join()
    assert failures == []
    assert snapshots == sorted(snapshots)  # each read saw a consistent, growing log
    result = compute_stats(store.iter_routes(), None)
    assert result["totals"]["requests"] == writers * per_writer + 1
    assert all(result["by_user"][f"user{n}"]["requests"] == per_writer for n in range(writers))


def test_processes_and_threads_write_at_once():
    code = textwrap.dedent(
        """
        import sys, threading
        from r42 import store
        def work(t):
            for i in range(25):
                store.write_route(endpoint="serve", model=f"p{sys.argv[1]}/t{t}", status="ok", cost_usd=0.001)
            store.close_thread_connection()
        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        """
    )
    route(model="seed/m")
    env = {**os.environ}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(n)], env=env, stderr=subprocess.PIPE) for n in range(3)]
    reads = 0
    while any(p.poll() is None for p in procs):
        compute_stats(store.iter_routes(), None)
        reads += 1
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    result = compute_stats(store.iter_routes(), None)
    assert result["totals"]["requests"] == 3 * 4 * 25 + 1
    assert len(result["by_model"]) == 3 * 4 + 1
    assert reads >= 1


# ---- stats ---------------------------------------------------------------------------------


def test_parse_since():
    now = T0
    assert parse_since("7d", now) == now - 7 * DAY
    assert parse_since("24h", now) == now - DAY
    assert parse_since("30m", now) == now - 1800
    assert parse_since("2w", now) == now - 14 * DAY
    assert parse_since("2026-03-01", now) == datetime(2026, 3, 1, tzinfo=timezone.utc).timestamp()
    assert parse_since("2026-03-01T10:00:00+02:00", now) == datetime(2026, 3, 1, 8, tzinfo=timezone.utc).timestamp()
    with pytest.raises(UsageError):
        parse_since("last tuesday", now)


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 95) == 95.0
    assert percentile([7.0], 95) == 7.0 and percentile([], 50) is None


def test_compute_stats_totals_groups_savings_and_latency():
    reference = Reference("big/one", 10.0, 30.0, "chosen")  # USD per 1M tokens
    for index in range(20):
        route(at=T0 + index, latency_ms=float(index + 1) * 10, user="alice", mode="cost")
    route(
        at=T0 + DAY,
        status="error",
        error="AllFailedError",
        model=None,
        input_tokens=None,
        output_tokens=None,
        cost_usd=None,
        latency_ms=5000.0,
        mode="quality",
        user="bob",
    )
    route(at=T0 + DAY, model="big/one", cost_usd=0.025, mode="quality", user="bob", latency_ms=1000.0, domain="math")
    result = compute_stats(store.iter_routes(), reference)
    totals = result["totals"]
    assert (
        totals["requests"] == 22 and totals["errors"] == 1 and totals["error_rate"] == pytest.approx(1 / 22, abs=1e-4)
    )
    assert totals["input_tokens"] == 21_000 and totals["output_tokens"] == 10_500
    assert totals["cost_usd"] == pytest.approx(20 * 0.001 + 0.025)
    # each answered request on the reference would cost 1000*10/1e6 + 500*30/1e6 = 0.025
    assert totals["reference_cost_usd"] == pytest.approx(21 * 0.025)
    assert totals["savings_usd"] == pytest.approx(20 * 0.024)
    assert totals["savings_pct"] == pytest.approx(100 * 20 * 0.024 / (21 * 0.025), abs=0.1)
    # latencies of answered requests only: 10..200 and 1000; the failed 5000 ms is left out
    assert totals["latency_ms"] == {"p50": 110.0, "p95": 200.0}
    assert totals["ttft_ms"] == {"p50": 20.0, "p95": 20.0}
    assert list(result["by_model"]) == ["cheap/small", "(none)", "big/one"]  # most requests first, then by name
    assert result["by_model"]["big/one"]["savings_usd"] == pytest.approx(0.0)
    assert result["by_mode"]["quality"]["errors"] == 1 and result["by_mode"]["quality"]["error_rate"] == 0.5
    assert result["by_user"]["alice"]["requests"] == 20
    assert list(result["by_day"]) == ["2026-03-10", "2026-03-11"]
    assert result["by_domain"]["math"]["requests"] == 1
    assert result["reference"]["model"] == "big/one"
    assert (result["first"], result["last"]) == ("2026-03-10T12:00:00Z", "2026-03-11T12:00:00Z")


def test_compute_stats_of_nothing():
    result = compute_stats([], None)
    assert result["totals"]["requests"] == 0 and result["totals"]["latency_ms"] == {"p50": None, "p95": None}
    assert result["reference"] is None and result["by_model"] == {}


def make_model(model_id: str, overall: float, price: float | None, local: bool = False) -> Model:
    return Model(
        id=model_id,
        provider=model_id.split("/")[0],
        name=model_id,
        aliases=(),
        price_input=price,
        price_output=price,
        context=100_000,
        max_output=None,
        tools=True,
        vision=False,
        json=True,
        reasoning=False,
        local=local,
        quality={"overall": overall},
        quality_estimated=False,
        quality_method="",
        tokens_per_s=None,
        ttft_s=None,
    )


def small_catalog() -> Catalog:
    providers = {
        pid: Provider(pid, pid, "openai", None, (f"{pid.upper()}_API_KEY",), None, pid == "ollama")
        for pid in ("openai", "anthropic", "ollama")
    }
    models = (
        make_model("openai/mini", 0.5, 0.5),
        make_model("openai/big", 0.8, 10.0),
        make_model("anthropic/best", 0.9, 15.0),
        make_model("anthropic/unpriced", 0.99, None),
        make_model("ollama/huge", 0.95, 0.0, local=True),
    )
    return Catalog(providers, models, "", ())


def test_the_default_reference_is_the_strongest_model_you_could_use():
    catalog = small_catalog()
    only_openai = choose_reference(catalog, None, lambda p: p.id == "openai")
    assert only_openai.model == "openai/big" and "credential" in only_openai.why
    everything = choose_reference(catalog, None, lambda p: True)
    assert everything.model == "anthropic/best"  # unpriced and local models are not a reference
    nothing = choose_reference(catalog, None, lambda p: False)
    assert nothing.model == "anthropic/best" and "no provider has a credential" in nothing.why
    chosen = choose_reference(catalog, "openai/mini", lambda p: False)
    assert (chosen.model, chosen.price_input, chosen.why) == ("openai/mini", 0.5, "chosen")
    with pytest.raises(UsageError):
        choose_reference(catalog, "nope/x", lambda p: True)
    with pytest.raises(UsageError):
        choose_reference(catalog, "anthropic/unpriced", lambda p: True)


# ---- the commands ----------------------------------------------------------------------------


def reference_id() -> tuple[str, float, float]:
    model = next(m for m in load_catalog().models if m.price_input and m.price_output and not m.local)
    return model.id, model.price_input, model.price_output


def test_stats_command_json_with_filters_and_reference():
    now = time.time()
    route(at=now - 3 * DAY, user="alice")
    route(at=now - 60, user="alice")
    route(at=now - 30, user="bob", status="error", cost_usd=None)
    model_id, price_in, price_out = reference_id()
    result = run(["stats", "--reference", model_id])
    assert result.exit_code == 0, result.stderr
    doc = orjson.loads(result.stdout)
    assert doc["reference"]["model"] == model_id and doc["totals"]["requests"] == 3
    expected = 2 * ((1000 * price_in + 500 * price_out) / 1e6 - 0.001)
    assert doc["totals"]["savings_usd"] == pytest.approx(expected, abs=1e-6)
    recent = orjson.loads(run(["stats", "--since", "1d", "--reference", model_id]).stdout)
    assert recent["totals"]["requests"] == 2 and recent["since"] is not None
    alice = orjson.loads(run(["stats", "--user", "alice", "--reference", model_id]).stdout)
    assert alice["totals"]["requests"] == 2 and list(alice["by_user"]) == ["alice"] and alice["user"] == "alice"
    assert run(["stats", "--since", "yesterday-ish"]).exit_code == 2


def test_stats_reference_from_the_setting(monkeypatch):
    route()
    model_id, _, _ = reference_id()
    monkeypatch.setenv("R42_STATS_REFERENCE_MODEL", model_id)
    assert orjson.loads(run(["stats"]).stdout)["reference"]["model"] == model_id


def test_stats_default_reference_follows_credentials(monkeypatch):
    route()
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-0123456789")
    doc = orjson.loads(run(["stats"]).stdout)
    assert doc["reference"]["model"].startswith("anthropic/") and "credential for" in doc["reference"]["why"]


def test_stats_on_a_terminal_is_a_table():
    route(user="alice")
    route(status="error", cost_usd=None)
    out = io.BytesIO()
    result = CliRunner().invoke(
        cli,
        ["stats", "--reference", reference_id()[0]],
        obj=Terminal(stdout=out, stdout_isatty=True),
        catch_exceptions=False,
    )
    text = out.getvalue().decode()
    assert result.exit_code == 0
    assert "requests    2" in text and "50.0%" in text and "savings" in text and "p95" in text and "cheap/small" in text


def test_stats_and_log_without_a_store(isolated_env):
    assert orjson.loads(run(["stats"]).stdout)["totals"]["requests"] == 0
    result = run(["log"])
    assert result.exit_code == 0 and result.stdout == ""
    assert not (isolated_env / "r42.db").exists()


def test_log_command_prints_ndjson():
    for index in range(30):
        route(at=T0 + index, model=f"m/{index}", user="alice" if index < 5 else "bob")
    rows = json_lines(run(["log", "--limit", "3"]).stdout)
    assert [r["model"] for r in rows] == ["m/27", "m/28", "m/29"]
    assert rows[0]["time"] == "2026-03-10T12:00:27Z" and rows[0]["endpoint"] == "ask"
    assert len(json_lines(run(["log"]).stdout)) == 20
    assert [r["model"] for r in json_lines(run(["log", "--user", "alice", "-n", "2"]).stdout)] == ["m/3", "m/4"]
