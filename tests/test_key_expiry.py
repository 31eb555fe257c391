"""Gateway key expiry: `r42 keys create --expires`, `keys list` and `--expiring`, `keys extend`, and
a real `r42 serve` answering an expired key with 401 `key_expired`, all on an injected clock."""

from __future__ import annotations

import http.client

import orjson
import pytest

from r42 import clock, store
from r42.clock import FakeClock
from r42.config import load_settings
from r42.errors import ExitCode
from r42.server import serve_in_thread
from r42.store.keys import parse_when
from tests.helpers import json_lines, run
from tests.test_keys_cli import on_terminal


pytestmark = pytest.mark.usefixtures("store_backend")  # each test on SQLite and on PostgreSQL (tests/conftest.py)

DAY = 86_400.0
T0 = parse_when("2027-03-01T12:00:00Z")


@pytest.fixture
def fake_clock():
    fake = FakeClock(T0)
    with clock.using(fake):
        yield fake


def create(*args: str) -> tuple[str, dict]:
    result = run(["keys", "create", *args, "--json"])
    assert result.exit_code == 0, result.stderr
    doc = orjson.loads(result.stdout)
    return doc["key"], doc


def listed(*args: str) -> list[dict]:
    result = run(["keys", "list", *args])
    assert result.exit_code == 0, result.stderr
    return orjson.loads(result.stdout)["keys"]


def test_durations_and_dates(fake_clock):
    _, doc = create("alice", "--expires", "30d")
    assert doc["expires"] == "2027-03-31T12:00:00Z"
    assert create("bob", "--expires", "90s")[1]["expires"] == "2027-03-01T12:01:30Z"
    assert create("carol", "--expires", "12h")[1]["expires"] == "2027-03-02T00:00:00Z"
    assert create("dan", "--expires", "2027-06-30")[1]["expires"] == "2027-06-30T00:00:00Z"
    assert create("eve", "--expires", "2027-06-30T18:30:00+02:00")[1]["expires"] == "2027-06-30T16:30:00Z"
    assert create("fred")[1]["expires"] is None
    for bad in ("yesterday", "2020-01-01", "0d", "30x", "99999999999999999999d", "9999-12-31T23:00:00-05:00"):
        result = run(["keys", "create", "gil", "--expires", bad])
        assert result.exit_code == ExitCode.USAGE, bad
        assert result.stderr.startswith("r42: error: ") and len(result.stderr.strip().splitlines()) == 1


def test_list_shows_expiry_and_filters_expiring(fake_clock):
    create("alice", "--expires", "3d")
    create("bob", "--expires", "30d")
    create("carol")
    assert {k["user"]: k["expires"] for k in listed()} == {
        "alice": "2027-03-04T12:00:00Z",
        "bob": "2027-03-31T12:00:00Z",
        "carol": None,
    }
    assert [k["user"] for k in listed("--expiring", "7d")] == ["alice"]
    fake_clock.advance(25 * DAY)  # alice has expired, bob expires in 5 days
    assert [k["user"] for k in listed("--expiring", "7d")] == ["alice", "bob"]
    code, table, _ = on_terminal(["keys", "list"])
    assert code == 0 and "expires" in table
    line = next(line for line in table.splitlines() if line.startswith("alice"))
    assert "expired" in line and "2027-03-04T12:00:00Z" in line
    assert run(["keys", "list", "--expiring", "soon"]).exit_code == ExitCode.USAGE


def test_extend(fake_clock):
    _, doc = create("alice", "--expires", "10d")
    prefix = doc["prefix"]
    result = run(["keys", "extend", prefix, "30d"])
    assert result.exit_code == 0 and "2027-04-10T12:00:00Z" in result.stderr  # from the current expiry
    fake_clock.advance(100 * DAY)  # long expired: a duration counts from now
    assert run(["keys", "extend", prefix, "1d"]).exit_code == 0
    assert listed()[0]["expires"] == "2027-06-10T12:00:00Z"
    assert run(["keys", "extend", prefix, "2027-12-31"]).exit_code == 0
    assert listed()[0]["expires"] == "2027-12-31T00:00:00Z"
    assert run(["keys", "extend", prefix, "never"]).exit_code == 0
    assert listed()[0]["expires"] is None
    assert run(["keys", "extend", prefix, "2020-01-01"]).exit_code == ExitCode.USAGE
    assert run(["keys", "extend", "r42_nosuchkey", "1d"]).exit_code == ExitCode.ERROR
    actions = [e["action"] for e in json_lines(run(["keys", "audit"]).stdout)]
    assert actions == ["key.create"] + ["key.update"] * 4


def test_rotation_keeps_the_expiry(fake_clock):
    _, doc = create("alice", "--expires", "30d")
    new = orjson.loads(run(["keys", "rotate", "alice", "--json"]).stdout)
    assert new["expires"] == doc["expires"]


def get(url: str, path: str, key: str, method: str = "GET") -> tuple[int, dict]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request(
        method,
        path,
        body=b"{}" if method == "POST" else None,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    body = response.read()
    conn.close()
    is_json = (response.getheader("Content-Type") or "").startswith("application/json")
    return response.status, orjson.loads(body) if is_json else {}


def test_an_expired_key_gets_401_key_expired_from_a_real_gateway(fake_clock):
    key = store.create_key("alice", expires=T0 + 2 * DAY).key
    other = store.create_key("bob").key
    with serve_in_thread(load_settings()) as running:
        status, _ = get(running.url, "/metrics", key)
        assert status == 200
        fake_clock.advance(2 * DAY)  # the expiry itself: no longer valid
        status, body = get(running.url, "/metrics", key)
        assert status == 401
        assert body["error"]["type"] == "key_expired" and body["error"]["code"] == "key_expired"
        assert "2027-03-03T12:00:00Z" in body["error"]["message"]
        status, body = get(running.url, "/v1/messages/count_tokens", key, method="POST")
        assert status == 401 and body["error"]["type"] == "key_expired"  # the Anthropic error shape too
        assert get(running.url, "/metrics", other)[0] == 200  # a key without expiry is unaffected
        store.extend(key[:12], "1d")
        assert get(running.url, "/metrics", key)[0] == 200  # extended: valid again at once


@pytest.mark.sqlite_file
def test_a_store_from_before_migration_3_keeps_its_keys(isolated_env):
    """Keys made by an r42 at schema 2 still work, with no expiry and no admin rights."""
    import sqlite3

    from r42.store import db

    isolated_env.mkdir(parents=True, exist_ok=True)
    raw = sqlite3.connect(isolated_env / "r42.db", isolation_level=None)
    for script in db.MIGRATIONS[:2]:
        for statement in db._statements(script):
            raw.execute(statement)
    raw.execute(f"PRAGMA application_id = {db.APPLICATION_ID}")
    raw.execute("PRAGMA user_version = 2")
    raw.execute("INSERT INTO users (name, created) VALUES ('old', 0)")
    key = "r42_" + "A" * 43
    raw.execute(
        "INSERT INTO gateway_keys (user_id, prefix, hash, created, rpm) VALUES (1, ?, ?, 0, 7)",
        (key[:12], store.keys.key_hash(key)),
    )
    raw.close()
    record = store.authenticate(key)
    assert record is not None and (record.user, record.rpm, record.expires, record.admin) == ("old", 7, None, False)
    assert not record.expired()
    assert store.db.connect().execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION
