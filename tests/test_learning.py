"""Rank learns from feedback and errors: per user and domain, bounded, decaying, resettable."""

from __future__ import annotations

import time

import orjson
import pytest

from r42.config import load_settings
from r42.learning import MAX_ADJUSTMENT, learned_adjustments
from r42.routing import Router
from r42.store import write_route
from tests.helpers import run


pytestmark = pytest.mark.usefixtures("store_backend")  # each test on SQLite and on PostgreSQL (tests/conftest.py)

MATH = "Solve for x: 3x + 7 = 22, and show each step of the algebra."
CREATIVE = "Write a short poem about the sea at night."


def routed(prompt: str) -> tuple[dict, list[str]]:
    result = run(["rank", "--include-unavailable", "--mode", "quality", "--all"], input=prompt)
    doc = orjson.loads(result.stdout)
    return doc, [c["model"] for c in doc["ranking"]["candidates"]]


def answer(model: str, domain: str, request_id: str, user: str | None = None, at: float | None = None) -> None:
    write_route(
        endpoint="ask",
        model=model,
        domain=domain,
        request_id=request_id,
        user=user,
        attempts=[{"model": model, "ok": True, "ms": 5}],
        at=at,
    )


def test_consistent_bad_feedback_moves_a_model_in_one_domain_only():
    _, math_before = routed(MATH)
    _, creative_before = routed(CREATIVE)
    top = math_before[0]
    for i in range(10):
        answer(top, "math", f"m{i}")
        assert run(["feedback", f"m{i}", "bad", "--reason", "wrong"]).exit_code == 0
    math_doc, math_after = routed(MATH)
    _, creative_after = routed(CREATIVE)
    assert math_after[0] != top
    assert math_after.index(top) > 0
    reasons = next(c["reasons"] for c in math_doc["ranking"]["candidates"] if c["model"] == top)
    assert any(r.startswith("learned -0.2") and "10 bad" in r for r in reasons)
    assert creative_after == creative_before  # other domains are unaffected


def test_one_feedback_cannot_swing_everything():
    answer("anthropic/claude-opus-4-1", "math", "one")
    run(["feedback", "one", "bad"])
    adjustment = learned_adjustments(None, 14.0)[("anthropic/claude-opus-4-1", "math")]
    assert -0.1 < adjustment.value < 0
    for i in range(200):
        answer("anthropic/claude-opus-4-1", "math", f"many{i}")
        run(["feedback", f"many{i}", "bad"])
    assert learned_adjustments(None, 14.0)[("anthropic/claude-opus-4-1", "math")].value >= -MAX_ADJUSTMENT


def test_feedback_decays_and_reset_forgets():
    answer("openai/gpt-4o", "code", "r1")
    run(["feedback", "r1", "good"])
    fresh = learned_adjustments(None, 14.0)[("openai/gpt-4o", "code")].value
    two_months_on = learned_adjustments(None, 14.0, now=time.time() + 60 * 86400)[("openai/gpt-4o", "code")].value
    assert 0 < two_months_on < fresh / 10  # four half-lives and more
    assert run(["feedback", "reset"]).exit_code == 0
    assert learned_adjustments(None, 14.0) == {}


def test_failed_attempts_in_the_log_count_against_a_model():
    for i in range(6):
        write_route(
            endpoint="ask",
            model="openai/gpt-4o",
            domain="code",
            request_id=f"f{i}",
            attempts=[
                {"model": "groq/llama-3.1-8b-instant", "ok": False, "status": 503},
                {"model": "openai/gpt-4o", "ok": True},
            ],
        )
    learned = learned_adjustments(None, 14.0)
    assert learned[("groq/llama-3.1-8b-instant", "code")].value < -0.1
    assert ("openai/gpt-4o", "code") not in learned


def test_learning_is_per_user():
    answer("openai/gpt-4o", "math", "alice-1", user="alice")
    router = Router.from_settings(load_settings())
    for i in range(8):
        answer("openai/gpt-4o", "math", f"a{i}", user="alice")
        run(["feedback", f"a{i}", "bad"])
    # A verdict belongs to the user whose request it rates: alice learns, nobody else does.
    assert router.learned("alice", "math")["openai/gpt-4o"].value < -0.2
    assert router.learned(None, "math") == {} and router.learned("bob", "math") == {}


def test_stale_adjustments_are_recomputed_off_the_request_path(monkeypatch):
    """A long-lived router (r42 serve) recomputes a user's adjustments every LEARNED_TTL_S on a
    thread of its own: a request meanwhile gets the previous ones at once, never waits for the
    queries over the routing log (they stalled the gateway's event loop)."""
    import r42.routing

    router = Router.from_settings(load_settings())
    answer("openai/gpt-4o", "math", "b0", user="alice")
    assert router.learned("alice", "math") == {}  # the first time: computed here
    for i in range(8):
        answer("openai/gpt-4o", "math", f"b{i + 1}", user="alice")
        run(["feedback", f"b{i + 1}", "bad"])
    assert router.learned("alice", "math") == {}  # fresh: reused
    monkeypatch.setattr(r42.routing, "LEARNED_TTL_S", 0.0)
    assert router.learned("alice", "math") == {}  # stale: the previous ones while a thread recomputes
    deadline = time.monotonic() + 20
    while not router.learned("alice", "math") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert router.learned("alice", "math")["openai/gpt-4o"].value < -0.2


@pytest.mark.parametrize("args", [["nope-id", "good"], ["x", "meh"]])
def test_bad_feedback_input(args):
    result = run(["feedback", *args])
    assert result.exit_code in (1, 2) and result.stderr.strip().splitlines()[-1].startswith(("r42: error:", "Error:"))


def test_feedback_on_a_real_ask(monkeypatch):
    from tests.fakes import OpenAIFake

    with OpenAIFake(reply="Paris.") as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        asked = run(["ask"], input="What is the capital of France?\n", env={"R42_LOCAL_DISCOVERY": "0"})
        assert asked.exit_code == 0, asked.stderr
        route = orjson.loads(asked.stdout)["route"]
    rated = run(["feedback", route["request_id"], "good", "--reason", "right"])
    assert rated.exit_code == 0, rated.stderr
    entry = orjson.loads(rated.stdout)
    assert entry["model"] == route["model"] and entry["domain"] == "knowledge" and entry["verdict"] == "good"


def test_slow_answers_count_against_a_model():
    for i in range(5):
        write_route(
            endpoint="ask",
            model="ollama/llama3.1:8b",
            domain="chat",
            request_id=f"s{i}",
            latency_ms=45_000,
            attempts=[{"model": "ollama/llama3.1:8b", "ok": True}],
        )
        write_route(
            endpoint="ask",
            model="openai/gpt-4o-mini",
            domain="chat",
            request_id=f"q{i}",
            latency_ms=800,
            attempts=[{"model": "openai/gpt-4o-mini", "ok": True}],
        )
    learned = learned_adjustments(None, 14.0)
    slow = learned[("ollama/llama3.1:8b", "chat")]
    assert slow.value < -0.05 and slow.slow == 5 and "5 slow" in slow.reason("chat")
    assert ("openai/gpt-4o-mini", "chat") not in learned


def test_failed_attempts_are_read_from_the_rows_that_hold_them_only():
    """read_failed_attempts filters in SQL on the attempts' text; it finds exactly what parsing every
    row finds: failures before a fallback, failed requests, an attempt logged without `ok` (not ok)."""
    from r42.store import iter_routes
    from r42.store.feedback import read_failed_attempts

    now = time.time()
    logs = [
        [{"model": "a/ok", "ok": True, "ms": 5}],
        [{"model": "a/down", "ok": False, "status": 503, "ms": 5}, {"model": "a/ok", "ok": True, "ms": 5}],
        [{"model": "a/slow", "ok": False, "status": None, "error": 'said "ok":true', "ms": 9}],
        [{"model": "a/odd", "ms": 1}],  # no "ok" at all: counted as a failure, as before
        [],
    ]
    for i, attempts in enumerate(logs * 3):
        write_route(endpoint="ask", model="a/ok", domain="math", user="u", attempts=attempts, at=now - i)
    write_route(endpoint="ask", domain="math", user="v", attempts=logs[1], at=now)  # another user's

    expected = sorted(
        (row["ts"], attempt["model"], row["domain"])
        for row in iter_routes(user="u")
        for attempt in row["attempts"]
        if not attempt.get("ok") and attempt.get("model")
    )
    found = sorted(read_failed_attempts("u", now - 3600))
    assert found == expected
    assert sorted({model for _, model, _ in found}) == ["a/down", "a/odd", "a/slow"] and len(found) == 9
