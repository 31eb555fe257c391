"""Provider and model health: the circuit breaker, driven by real attempts against the
fault-injecting loopback fakes, with an injected clock (r42.clock) for windows and cool-downs."""

from __future__ import annotations

import httpx
import orjson
import pytest
from click.testing import CliRunner

from r42 import clock
from r42.catalog import load_catalog
from r42.config import load_settings
from r42.executor import CandidatesFailed, Executor, Limits
from r42.health import CLOSED, HALF_OPEN, OPEN, Board, Outcome, Rules, error_kind, fold
from r42.ranking import Constraints
from r42.routing import Router
from r42.store.health import SQLiteHealthStore
from tests.fakes import OpenAIFake, faults

A = "openai/gpt-4o-mini"
B = "groq/deepseek-r1-distill-llama-70b"
QUESTION = {"messages": [{"role": "user", "content": "What is the capital of France?"}]}
T0 = 1_800_000_000.0


@pytest.fixture
def fake_clock():
    moving = clock.FakeClock(T0)
    with clock.using(moving):
        yield moving


@pytest.fixture
def servers(monkeypatch):
    """Two OpenAI-compatible fakes configured as openai and groq."""
    with OpenAIFake(reply="Answer from A.") as a, OpenAIFake(reply="Answer from B.") as b:
        pairs = (("OPENAI_API_KEY", "OPENAI_BASE_URL", a), ("GROQ_API_KEY", "R42_GROQ_BASE_URL", b))
        for key, url_var, server in pairs:
            monkeypatch.setenv(key, "sk-test")
            monkeypatch.setenv(url_var, server.base_url)
        yield a, b


def outcome(ts: float, ok: bool, model: str = A, status: int | None = 503) -> Outcome:
    provider = model.split("/")[0]
    return Outcome(ts, provider, model, ok, 200 if ok else status, "ok" if ok else error_kind(status, "boom"), 100.0)


# --- the breaker on its own -------------------------------------------------------------------------


def test_consecutive_failures_open_with_the_window_as_reason():
    rules = Rules(failures=5, cooldown=30)
    circuits = fold([outcome(T0, True), *(outcome(T0 + i, False) for i in range(1, 6))], rules)
    model = circuits["model:" + A]
    assert model.state == OPEN and model.reason == "5 of the last 6 attempts failed"
    assert circuits["provider:openai"].state == OPEN
    assert model.state_at(T0 + 5 + 29.9, rules) == OPEN
    assert model.state_at(T0 + 5 + 30, rules) == HALF_OPEN


def test_error_rate_opens_only_with_enough_attempts():
    rules = Rules(failures=100, error_rate=0.5, min_attempts=10)
    alternating = [outcome(T0 + i, i % 2 == 0) for i in range(9)]  # 4 of 9 failed: too few attempts
    assert fold(alternating, rules)["model:" + A].state == CLOSED
    tenth = fold([*alternating, outcome(T0 + 9, False)], rules)["model:" + A]  # 5 of 10
    assert tenth.state == OPEN and tenth.reason == "5 of the last 10 attempts failed"


def test_a_failed_probe_opens_again_and_a_success_closes():
    rules = Rules(failures=3, cooldown=30)
    failing = [outcome(T0 + i, False) for i in range(3)]
    probe_failed = fold([*failing, outcome(T0 + 40, False)], rules)["model:" + A]
    assert probe_failed.state == OPEN and probe_failed.opened == T0 + 40  # the cool-down starts again
    early = fold([*failing, outcome(T0 + 10, False)], rules)["model:" + A]  # begun before it opened
    assert early.opened == T0 + 2
    recovered = fold([*failing, outcome(T0 + 40, True)], rules)["model:" + A]
    assert recovered.state == CLOSED and len(recovered.window) == 1
    assert [t.state for t in recovered.transitions] == [OPEN, CLOSED]


def test_request_errors_say_nothing_about_health(fake_clock):
    board = Board(Rules(failures=2))
    for status in (400, 401, 403, 400):
        board.record(Outcome(T0, "openai", A, False, status, error_kind(status, "bad"), 10.0))
    assert board.circuits() == {}
    assert error_kind(None, "timed out after 5s") == "timeout"
    assert error_kind(None, "connection refused") == "connection"
    assert error_kind(529, "overloaded") == "overloaded"


# --- rank skips an open circuit: real attempts against a failing fake --------------------------------


def test_failing_provider_is_skipped_then_probed_then_closed(servers, fake_clock):
    a, _ = servers
    settings = load_settings(env={"R42_HEALTH_COOLDOWN": "30"})
    board = Board(Rules.from_settings(settings), SQLiteHealthStore(), announce=False)
    router = Router.from_settings(settings)
    router.health = board
    executor = Executor(load_catalog(), Limits(max_attempts=1), health=board)
    constraints = Constraints(providers=("openai", "groq"), mode="quality")
    score = router.score({"messages": QUESTION["messages"]})

    def ranked() -> tuple[list[str], dict[str, int]]:
        result = router.rank(score, constraints)
        return [r.model.id for r in result.candidates], result.excluded

    assert executor.complete(QUESTION, [A]).route["model"] == A
    a.fail(*[faults.status(503)] * 5)
    for _ in range(5):
        fake_clock.advance(1)
        with pytest.raises(CandidatesFailed):
            executor.complete(QUESTION, [A])
    models, excluded = ranked()
    assert not any(m.startswith("openai/") for m in models) and any(m.startswith("groq/") for m in models)
    assert excluded.get("unhealthy: 5 of the last 6 attempts failed", 0) > 0

    fake_clock.advance(31)  # the cool-down: one probe may go through
    probe, _ = ranked()
    assert any(m.startswith("openai/") for m in probe)
    again, excluded = ranked()  # the probe is taken: everyone else still goes elsewhere
    assert not any(m.startswith("openai/") for m in again)
    assert board.circuits()["provider:openai"]["state"] == HALF_OPEN

    answered = executor.complete(QUESTION, [A])  # the probe answers: closed
    assert answered.route["model"] == A
    assert board.circuits()["provider:openai"]["state"] == CLOSED
    assert board.circuits()["model:" + A]["state"] == CLOSED
    models, excluded = ranked()
    assert any(m.startswith("openai/") for m in models)
    assert not any(reason.startswith("unhealthy") for reason in excluded)


def test_health_is_shared_through_the_store_and_announced_once(servers, fake_clock):
    from r42.store.hooks import add_hook, deliveries
    from r42.webhooks import forget_subscribers

    add_hook("http://127.0.0.1:9/hook", ["provider.unhealthy", "provider.recovered"], "s3cret", allow_private=True)
    forget_subscribers()
    rules = Rules(failures=3, cooldown=30)
    first, second = Board(rules, SQLiteHealthStore()), Board(rules, SQLiteHealthStore())
    for i in range(3):
        first.record(outcome(T0 + i, False, model=B, status=None))
    assert second.view().providers == {}
    first.sync()
    second.sync()  # another process: reads the outcomes and folds the same transitions
    view = second.view()
    assert view.providers["groq"] == "unhealthy: 3 of the last 3 attempts failed"
    assert view.models[B].startswith("unhealthy:")
    events = [orjson.loads(d.body) for d in deliveries()]
    unhealthy = [e for e in events if e["type"] == "provider.unhealthy"]
    assert sorted((e["data"]["provider"], e["data"]["model"] or "") for e in unhealthy) == [("groq", ""), ("groq", B)]
    assert unhealthy[0]["data"]["reason"] == "3 of the last 3 attempts failed"

    fake_clock.advance(40)
    second.record(outcome(T0 + 40, True, model=B))
    second.sync()
    first.sync()
    recovered = [orjson.loads(d.body) for d in deliveries() if orjson.loads(d.body)["type"] == "provider.recovered"]
    assert len(recovered) == 2  # provider and model, once each although both processes saw it


def test_healthier_faster_model_first_among_equals(fake_clock):
    from r42.health import View
    from r42.ranking import rank

    catalog = load_catalog()
    score = Router.from_settings(load_settings()).score({"messages": QUESTION["messages"]})
    everyone = lambda provider: type("Status", (), {"ok": True, "source": "test"})()  # noqa: E731
    plain = rank(catalog, score, Constraints(), everyone).candidates
    tied = [(x, y) for x, y in zip(plain, plain[1:]) if round(x.score, 4) == round(y.score, 4)]
    if not tied:
        pytest.skip("no two models tie in this catalog")
    first, second = tied[0]
    view = View({}, {}, {first.model.id: (0.5, 900.0), second.model.id: (0.0, 200.0)}, frozenset())
    order = [r.model.id for r in rank(catalog, score, Constraints(health=view), everyone).candidates]
    assert order.index(second.model.id) < order.index(first.model.id)


# --- where it shows: r42 serve and r42 stats --health ------------------------------------------------


def test_serve_shows_health_in_verbose_health_metrics_and_dashboard(monkeypatch):
    from r42.server import serve_in_thread

    with OpenAIFake(reply="hi") as upstream:
        monkeypatch.setenv("OPENAI_BASE_URL", upstream.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("R42_HEALTH_FAILURES", "2")
        upstream.fail(faults.status(500), faults.status(500))
        with serve_in_thread(load_settings(), no_auth=True) as running:
            body = {"model": A, "messages": [{"role": "user", "content": "hi"}]}
            for _ in range(2):
                assert httpx.post(running.url + "/v1/chat/completions", json=body, timeout=30).status_code >= 500
            plain = httpx.get(running.url + "/health").json()
            assert "health" not in plain
            health = httpx.get(running.url + "/health?verbose=1").json()["health"]
            assert health["providers"]["openai"]["state"] == OPEN
            assert health["models"][A]["failures"] == 2 and health["models"][A]["errors"] == {"server_error": 2}
            assert health["models"][A]["reason"] == "2 of the last 2 attempts failed"
            metrics = httpx.get(running.url + "/metrics").text
            assert 'r42_health_circuit_state{provider="openai"} 2' in metrics
            assert f'r42_health_window_failures{{model="{A}"}} 2' in metrics
            page = httpx.get(running.url + "/dashboard").text
            assert "Provider and model health" in page and "unhealthy (open)" in page
            ranked = httpx.post(running.url + "/api/recommend", json={"messages": body["messages"]}).json()
            assert any(r.startswith("unhealthy: 2 of the last 2") for r in ranked["ranking"]["excluded"])
    from r42.cli import cli

    result = CliRunner().invoke(cli, ["stats", "--health", "--json"])  # written by the gateway's health thread
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.output)["health"]["provider:openai"]["state"] == OPEN


class LockedStore:
    """A store that cannot be written (another process holds it): the board keeps going in memory."""

    def __init__(self) -> None:
        self.tries = 0

    def append(self, outcomes):
        self.tries += 1
        raise OSError("database is locked")

    def recent(self, since):
        return []

    def prune(self, before):
        pass


def test_an_unwritable_store_never_breaks_a_request(fake_clock, capsys):
    store = LockedStore()
    board = Board(Rules(failures=2), store)
    for i in range(2):
        board.record(outcome(T0 + i, False))
    board.sync()
    board.sync()
    assert store.tries == 2  # the outcomes were kept for the next try
    assert board.view().models[A] == "unhealthy: 2 of the last 2 attempts failed"
    assert capsys.readouterr().err.count("could not share provider health") == 1


def test_r42_ask_in_another_process_shares_what_it_saw(servers, isolated_env):
    """`r42 ask` (its own process) meets a failing provider; this process and `r42 rank` (a third
    one) see the open circuit through the store."""
    import os
    import subprocess
    import sys

    a, _ = servers
    a.fail(*[faults.status(502)] * 4)
    env = {**os.environ, "R42_HEALTH_FAILURES": "4"}
    lines = b"".join(orjson.dumps({"prompt": f"question {i}"}) + b"\n" for i in range(4))
    ask = subprocess.run(
        [sys.executable, "-m", "r42", "ask", "--model", A],
        input=lines,
        capture_output=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert ask.returncode != 0 and len(a.requests) == 4, ask.stderr
    board = Board(Rules(failures=4), SQLiteHealthStore(), announce=False)
    board.sync()
    assert board.circuits()["provider:openai"]["state"] == OPEN
    rank = subprocess.run(
        [sys.executable, "-m", "r42", "rank", "--top", "3"],
        input=b"What is the capital of France?",
        capture_output=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert rank.returncode == 0, rank.stderr
    excluded = orjson.loads(rank.stdout)["ranking"]["excluded"]
    assert any(reason == "unhealthy: 4 of the last 4 attempts failed" for reason in excluded), excluded


class CountingStore(SQLiteHealthStore):
    """The SQLite store, counting the rows each read after a row returns."""

    def __init__(self) -> None:
        self.reads: list[int] = []

    def recent_after(self, since: float, after_id: int) -> list[tuple[int, Outcome]]:
        rows = super().recent_after(since, after_id)
        if after_id >= 0:
            self.reads.append(len(rows))
        return rows


def test_a_sync_reads_only_new_rows_and_folds_what_a_full_read_folds(fake_clock, monkeypatch):
    """Board.sync keeps the window it read and reads only the rows added since; what it folds
    must be what re-reading the whole window gives: outcomes of other processes arriving late
    and out of time order, outcomes leaving the window, and the cap on the rows read."""
    import r42.health

    monkeypatch.setattr(r42.health, "MAX_SHARED", 40)  # the store's read cap too
    rules = Rules(failures=3, error_rate=0.5, min_attempts=4, window=6, window_s=60)
    store = CountingStore()
    ours, other = Board(rules, store), Board(rules, SQLiteHealthStore())
    states: set[str] = set()
    for step in range(30):
        now = clock.now()
        for i in range(step % 4):  # ours: in time order
            ours.record(outcome(now + i * 0.1, ok=(step + i) % 3 != 0))
        for i in range(step % 3):  # the other process: late, before some of ours
            other.record(outcome(now - 0.5 + i * 0.2, ok=step % 5 != 0, model=B, status=None))
        if step % 2:
            ours.sync()  # then the other's earlier outcomes are added after ours
            other.sync()
        other.sync()
        ours.sync()
        fresh = Board(rules, SQLiteHealthStore())  # reads the whole window
        fresh.sync()
        assert [o for _, _, o in ours._seen] == store.recent(now - rules.window_s)
        assert ours.circuits() == fresh.circuits(), step
        states.update(c["state"] for c in ours.circuits().values())
        fake_clock.advance(7)  # outcomes leave the 60 s window as the steps go on
    assert states == {CLOSED, OPEN} and len(store.recent(0)) == 40  # circuits opened; the cap was reached
    assert len(store.reads) > 20 and max(store.reads) <= 5  # after the first read, only the rows added since
