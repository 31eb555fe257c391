"""Webhooks end to end: `r42 hooks` against a real receiver on loopback that verifies signatures,
the outbox's retries, and a real `r42 serve` emitting rate-limit, budget and key-expiry events."""

from __future__ import annotations

import sqlite3
import threading

import orjson
import pytest

from r42 import clock, store, webhooks
from r42.clock import FakeClock
from r42.config import load_settings
from r42.errors import ExitCode
from r42.server import serve_in_thread
from r42.store import hooks as hook_store
from r42.store.keys import parse_when
from tests.helpers import json_lines, run
from tests.test_serve import upstreams  # noqa: F401 - fixture
from tests.test_serve_http import post
from tests.webhook_receiver import Receiver

SECRET = "whsec-test-DO-NOT-PRINT-9f8e7d6c5b4a"
DAY = 86_400.0


@pytest.fixture(autouse=True)
def fresh(isolated_env):  # R42_HOME comes seeded with the catalog cache (conftest)
    webhooks.forget_subscribers()


@pytest.fixture
def receiver():
    with Receiver(SECRET) as r:
        yield r


def add(url: str, *events: str, private: bool = True) -> str:
    args = ["hooks", "add", url, *[a for e in events for a in ("--event", e)], "--secret-stdin"] + (
        ["--allow-private"] if private else []
    )
    result = run(args, input=SECRET)
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def everything_printed(*results) -> str:  # noqa: ANN002
    return "".join(r.stdout + r.stderr for r in results)


# --- the CLI ---------------------------------------------------------------------------------------


def test_add_list_test_log_rm_and_the_secret_is_never_shown(receiver, isolated_env):
    hook_id = add(receiver.url, "key.expiring", "budget.threshold")
    assert hook_id.startswith("hook_")
    listed = run(["hooks", "list"])
    [doc] = orjson.loads(listed.stdout)["hooks"]
    assert (
        doc["id"] == hook_id and doc["events"] == ["key.expiring", "budget.threshold"] and doc["allow_private"] is True
    )
    tested = run(["hooks", "test", hook_id])
    assert tested.exit_code == 0, tested.stderr
    [got] = receiver.received
    assert got["verified"] and got["event"]["type"] == "hook.test" and got["event"]["data"]["hook"] == hook_id
    assert set(got["event"]) == {"id", "type", "created", "data"}
    assert got["headers"]["R42-Event-Id"] == got["event"]["id"]
    log = run(["hooks", "log", hook_id])
    [entry] = json_lines(log.stdout)
    assert entry["state"] == "delivered" and entry["attempts"] == 1 and entry["last_status"] == 200
    audit = run(["keys", "audit", "--action", "hook"])
    removed = run(["hooks", "rm", hook_id])
    assert removed.exit_code == 0 and orjson.loads(run(["hooks", "list"]).stdout)["hooks"] == []
    assert run(["hooks", "rm", hook_id]).exit_code == ExitCode.ERROR
    assert SECRET not in everything_printed(listed, tested, log, audit, removed)
    raw = sqlite3.connect(isolated_env / "r42.db")
    dump = "\n".join(raw.iterdump())
    assert SECRET not in dump and SECRET.encode() not in (isolated_env / "r42.db").read_bytes()  # encrypted at rest


def test_private_targets_are_refused_unless_allowed():
    for url in (
        "http://127.0.0.1:9/x",
        "http://localhost:8080/x",
        "http://10.1.2.3/x",
        "http://192.168.0.4/x",
        "http://[::1]:9/x",
        "http://169.254.169.254/latest",
        "http://0.0.0.0/x",
    ):
        result = run(["hooks", "add", url, "--event", "key.expired", "--secret-stdin"], input=SECRET)
        assert result.exit_code == ExitCode.USAGE, url
        assert "--allow-private" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert (
        run(["hooks", "add", "ftp://example.com/x", "--event", "key.expired", "--secret-stdin"], input=SECRET).exit_code
        == ExitCode.USAGE
    )
    assert orjson.loads(run(["hooks", "list"]).stdout)["hooks"] == []


def test_bad_events_and_secrets_are_usage_errors(receiver, monkeypatch):
    assert (
        run(
            ["hooks", "add", receiver.url, "--event", "key.exploded", "--secret-stdin", "--allow-private"], input=SECRET
        ).exit_code
        == ExitCode.USAGE
    )
    both = run(
        ["hooks", "add", receiver.url, "--event", "key.expired", "--secret", "x", "--secret-stdin", "--allow-private"],
        input=SECRET,
    )
    assert both.exit_code == ExitCode.USAGE
    assert (
        run(["hooks", "add", receiver.url, "--event", "key.expired", "--allow-private"]).exit_code == ExitCode.USAGE
    )  # no secret, no tty
    monkeypatch.setenv("R42_WEBHOOK_SECRET", SECRET)
    hook_id = run(["hooks", "add", receiver.url, "--event", "*", "--allow-private"]).stdout.strip()
    assert run(["hooks", "test", hook_id]).exit_code == 0 and receiver.received[0]["verified"]


def test_a_failed_test_exits_1_and_is_logged():
    hook_id = add("http://127.0.0.1:9/closed", "key.expired")
    result = run(["hooks", "test", hook_id])
    assert result.exit_code == ExitCode.ERROR and result.stderr.startswith("r42: error: ")
    [entry] = json_lines(run(["hooks", "log"]).stdout)
    assert entry["state"] == "failed" and "Refused" in entry["last_error"]


# --- the outbox: retries and at-least-once -------------------------------------------------------


def test_retries_with_backoff_until_the_endpoint_accepts():
    with Receiver(SECRET, statuses=[503, 500]) as flaky:
        add(flaky.url, "key.expired")
        event_id = webhooks.emit("key.expired", {"user": "alice"})
        dispatcher = webhooks.Dispatcher(webhooks.Policy(retry_base=0.01, timeout=5), poll=0.01).start()
        try:
            flaky.wait_for(3)
        finally:
            dispatcher.close()
        assert [r["status"] for r in flaky.received] == [503, 500, 200]
        assert {r["event"]["id"] for r in flaky.received} == {event_id}  # the same id each time: de-duplicate on it
        assert all(r["verified"] for r in flaky.received)
    [entry] = json_lines(run(["hooks", "log"]).stdout)
    assert entry["state"] == "delivered" and entry["attempts"] == 3


def test_gives_up_after_max_attempts():
    with Receiver(SECRET, statuses=[500] * 10) as broken:
        add(broken.url, "key.expired")
        webhooks.emit("key.expired", {"user": "alice"})
        policy = webhooks.Policy(retry_base=0.001, max_attempts=3)
        for _ in range(3):
            webhooks.deliver_due(policy)
            broken.wait_for(len(broken.received))
            for due in hook_store.deliveries():  # make the retry due now instead of waiting
                store.db.connect().execute("UPDATE hook_outbox SET next_try = 0 WHERE id = ?", (due.id,))
        assert webhooks.deliver_due(policy) == 0
    [entry] = json_lines(run(["hooks", "log"]).stdout)
    assert entry["state"] == "failed" and entry["attempts"] == 3 and entry["last_status"] == 500


def test_the_backoff_doubles_up_to_the_cap():
    policy = webhooks.Policy(retry_base=2, retry_max=60, max_attempts=10)
    assert [policy.retry_at(n, 0) for n in (1, 2, 3, 6, 9)] == [2, 4, 8, 60, 60]
    assert policy.retry_at(10, 0) is None


def test_marks_send_an_event_once():
    add("http://127.0.0.1:9/x", "rate_limit.warning")
    assert webhooks.emit("rate_limit.warning", {}, mark="w:1") is not None
    assert webhooks.emit("rate_limit.warning", {}, mark="w:1") is None
    assert webhooks.emit("rate_limit.warning", {}, mark="w:2") is not None
    assert webhooks.emit("key.expired", {}) is None  # nobody subscribed


def test_signature_round_trip():
    body = b'{"id":"evt_1"}'
    header = webhooks.sign(SECRET, body, 1_800_000_000)
    assert webhooks.verify(SECRET, body, header, now=1_800_000_010)
    assert not webhooks.verify(SECRET, body + b" ", header, now=1_800_000_010)
    assert not webhooks.verify("other", body, header, now=1_800_000_010)
    assert not webhooks.verify(SECRET, body, header, now=1_800_001_000)  # too old: a replay


# --- events from a real gateway -------------------------------------------------------------------


def chat(url: str, key: str) -> int:
    return post(url, "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"})[0]


def test_rate_limit_warning_once_per_window(upstreams, receiver):  # noqa: F811
    add(receiver.url, "rate_limit.warning")
    key = store.create_key("carol", rpm=5).key
    with serve_in_thread(load_settings()) as running:
        assert [chat(running.url, key) for _ in range(6)] == [200] * 5 + [429]
        running.gateway.log.flush()
        running.gateway.webhooks.settle()
        [event] = receiver.wait_for(1, "rate_limit.warning")
    assert event["data"]["user"] == "carol" and event["data"]["limit"] == "rpm" and event["data"]["value"] == 5
    assert (
        event["data"]["used"] == 4
        and key.startswith(event["data"]["key_prefix"])
        and key not in orjson.dumps(event).decode()
    )
    assert len(receiver.events("rate_limit.warning")) == 1 and all(r["verified"] for r in receiver.received)


def test_budget_thresholds_once_each(upstreams, receiver):  # noqa: F811
    probe = store.create_key("probe")
    with serve_in_thread(load_settings()) as running:
        assert chat(running.url, probe.key) == 200
        running.gateway.log.flush()
        cost = store.usage(probe.record.id).cost_month_usd
        assert cost > 0
        add(receiver.url, "budget.threshold")
        webhooks.forget_subscribers()
        key = store.create_key("dave", budget_usd=cost * 2.2).key
        statuses = []
        for _ in range(4):
            statuses.append(chat(running.url, key))
            running.gateway.log.flush()  # the spend is counted once written
        running.gateway.webhooks.settle()
        events = receiver.wait_for(3, "budget.threshold")
    assert statuses == [200, 200, 200, 429]
    assert sorted(e["data"]["percent"] for e in events) == [50, 80, 100]
    assert all(e["data"]["user"] == "dave" and e["data"]["budget_usd"] == pytest.approx(cost * 2.2) for e in events)


def test_key_expiring_and_expired_with_an_injected_clock(upstreams, receiver):  # noqa: F811
    fake = FakeClock(parse_when("2027-03-01T00:00:00Z"))
    add(receiver.url, "key.expiring", "key.expired")
    with clock.using(fake):
        key = store.create_key("erin", expires=fake.t + 30 * DAY).key
        with serve_in_thread(load_settings()) as running:
            dispatcher = running.gateway.webhooks
            dispatcher.sweep_now()
            dispatcher.settle()
            assert receiver.events() == []  # 30 days left: nothing yet
            fake.advance(24 * DAY)
            dispatcher.sweep_now()
            dispatcher.settle()
            dispatcher.sweep_now()  # a second sweep in the same state sends nothing more
            dispatcher.settle()
            [expiring] = receiver.wait_for(1, "key.expiring")
            assert expiring["data"]["expires"] == "2027-03-31T00:00:00Z" and expiring["data"]["seconds_left"] == 6 * DAY
            fake.advance(7 * DAY)
            assert chat(running.url, key) == 401
            dispatcher.sweep_now()
            dispatcher.settle()
            [expired] = receiver.wait_for(1, "key.expired")
    assert expired["data"]["user"] == "erin" and len(receiver.events()) == 2


def test_a_dead_endpoint_never_holds_up_requests(upstreams):  # noqa: F811
    stuck = threading.Event()
    with Receiver(SECRET, hold=stuck) as dead:
        add(dead.url, "rate_limit.warning")
        key = store.create_key("frank", rpm=1000).key
        store.db.connect().executemany(
            "INSERT INTO key_usage (key_id, ts) VALUES (?, strftime('%s','now'))", [(store.authenticate(key).id,)] * 850
        )
        with serve_in_thread(load_settings()) as running:
            assert chat(running.url, key) == 200  # passes 80%: a warning goes to the endpoint, which hangs
            running.gateway.log.flush()
            assert dead.reached.wait(30)  # the delivery has reached the endpoint and is stuck there
            results = [chat(running.url, key) for _ in range(20)]
            assert results == [200] * 20  # answered while the webhook thread waits on the dead endpoint
            stuck.set()
            dead.wait_for(1)


def test_hook_ids_complete_in_the_shell(isolated_env):
    import os
    import subprocess
    import sys

    hook_id = add("http://127.0.0.1:9/x", "key.expired")
    env = {
        "_R42_COMPLETE": "bash_complete",
        "COMP_WORDS": "r42 hooks test hook_",
        "COMP_CWORD": "3",
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "R42_HOME": str(isolated_env),
    }
    proc = subprocess.run([sys.executable, "-m", "r42"], env=env, capture_output=True, text=True, check=False)
    assert f"plain,{hook_id}" in proc.stdout.splitlines()
