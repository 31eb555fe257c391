"""The store: file modes, migrations, refusing files that are not ours, keys, limits, credentials."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from r42 import store
from r42.availability import Credential
from r42.catalog.schema import check_catalog
from r42.errors import ExitCode, UsageError
from r42.store import db
from r42.store.keys import KEY_LENGTH, KEY_PREFIX, PREFIX_LENGTH, limit_exceeded, month_start, usage


# The store starts from an R42_HOME that does not exist; every test runs on SQLite and on PostgreSQL
# (store_backend in tests/conftest.py), but those marked sqlite_file.
pytestmark = [pytest.mark.cold_home, pytest.mark.usefixtures("store_backend")]


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def store_bytes(home: Path) -> bytes:
    """Every byte SQLite keeps for the store: the file, its WAL and shared memory."""
    return b"".join(p.read_bytes() for p in sorted(home.glob("r42.db*")))


# ---- the file ------------------------------------------------------------------------------


@pytest.mark.sqlite_file
def test_store_is_created_private_in_wal_mode_at_the_current_schema(isolated_env):
    store.create_key("alice")
    path = isolated_env / "r42.db"
    assert mode_of(isolated_env) == 0o700
    assert mode_of(path) == 0o600
    wal = isolated_env / "r42.db-wal"
    assert wal.exists() and mode_of(wal) == 0o600  # the connection is still open
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION
    assert raw.execute("PRAGMA application_id").fetchone()[0] == db.APPLICATION_ID
    raw.close()


@pytest.mark.sqlite_file
def test_reading_never_creates_a_store(isolated_env):
    assert store.list_keys() == [] and store.list_users() == []
    assert store.read_routes() == []
    assert store.list_credentials() == []
    assert store.authenticate(KEY_PREFIX + "x" * (KEY_LENGTH - 4)) is None
    assert store.lookup_credential("openai") is None
    assert not (isolated_env / "r42.db").exists()


def write_garbage(home: Path) -> Path:
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = home / "r42.db"
    path.write_bytes(b"this is not a database, just some text that happens to be here\n" * 200)
    return path


@pytest.mark.sqlite_file
def test_a_corrupt_file_is_reported_and_left_alone(isolated_env):
    path = write_garbage(isolated_env)
    before = digest(path)
    with pytest.raises(store.StoreError) as info:
        store.create_key("alice")
    assert info.value.exit_code == ExitCode.CONFIG
    assert "unreadable" in info.value.message and "move the file away" in info.value.hint
    assert digest(path) == before
    assert not (isolated_env / "r42.db-wal").exists()


@pytest.mark.sqlite_file
def test_damaged_pages_in_an_r42_store_are_reported_and_left_alone(isolated_env):
    for index in range(300):
        store.write_route(endpoint="ask", model=f"m/{index}", status="ok")
    store.close_thread_connection()
    path = isolated_env / "r42.db"
    data = bytearray(path.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    assert len(data) > 4 * page_size
    data[2 * page_size : len(data)] = b"\xa5" * (len(data) - 2 * page_size)  # keep page 1 (the header and schema)
    path.write_bytes(bytes(data))
    before = digest(path)
    with pytest.raises(store.StoreError) as info:
        store.read_routes()
    assert info.value.exit_code == ExitCode.CONFIG
    store.close_thread_connection()
    assert digest(path) == before


@pytest.mark.sqlite_file
def test_a_store_from_a_newer_r42_is_refused_and_left_alone(isolated_env):
    store.create_key("alice")
    store.close_thread_connection()
    path = isolated_env / "r42.db"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {db.SCHEMA_VERSION + 1}")
    raw.close()
    before = digest(path)
    with pytest.raises(store.StoreError) as info:
        store.list_keys()
    assert "newer r42" in info.value.message and "upgrade r42" in info.value.hint
    with pytest.raises(store.StoreError):
        store.write_route(endpoint="ask")
    assert digest(path) == before


@pytest.mark.sqlite_file
def test_a_foreign_sqlite_database_is_refused_and_left_alone(isolated_env):
    isolated_env.mkdir(mode=0o700)
    path = isolated_env / "r42.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
    raw.execute("INSERT INTO photos (name) VALUES ('cat.jpg')")
    raw.commit()
    raw.close()
    before = digest(path)
    for call in (lambda: store.create_key("alice"), store.list_keys, lambda: store.write_route(endpoint="ask")):
        with pytest.raises(store.StoreError) as info:
            call()
        assert "not an r42 store" in info.value.message
    assert digest(path) == before
    raw = sqlite3.connect(path)
    assert [r[0] for r in raw.execute("SELECT name FROM sqlite_master")] == ["photos"]
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    raw.close()


@pytest.mark.sqlite_file
def test_an_empty_file_becomes_a_store(isolated_env):
    isolated_env.mkdir(mode=0o700)
    (isolated_env / "r42.db").touch()
    store.create_key("alice")
    assert [r.user for r in store.list_keys()] == ["alice"]


@pytest.mark.sqlite_file
def test_each_thread_gets_its_own_connection(isolated_env):
    import threading

    store.create_key("alice")
    mine = db.connect()
    seen = []
    thread = threading.Thread(target=lambda: (seen.append(db.connect()), store.close_thread_connection()))
    thread.start()
    thread.join()
    assert seen and seen[0] is not mine
    assert db.connect() is mine


def test_processes_creating_the_store_at_once_agree_on_one_schema(isolated_env):
    """Several processes find no store and migrate together: one wins, none fails."""
    code = textwrap.dedent(
        """
        from r42 import store
        for i in range(20):
            store.write_route(endpoint="ask", model="m/x", status="ok")
        store.create_key("user")
        """
    )
    env = {**os.environ, "R42_HOME": str(isolated_env)}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE) for _ in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    assert len(store.read_routes()) == 80
    assert len(store.list_keys()) == 4


# ---- gateway keys ----------------------------------------------------------------------------


@pytest.mark.sqlite_file
def test_a_new_key_is_long_random_and_stored_only_as_a_hash(isolated_env):
    new = store.create_key("alice", rpm=10, rpd=100, budget_usd=5.0)
    assert new.key.startswith(KEY_PREFIX) and len(new.key) == KEY_LENGTH and len(new.key) - len(KEY_PREFIX) >= 32
    assert new.key not in repr(new)
    assert new.record.prefix == new.key[:PREFIX_LENGTH]
    other = store.create_key("alice")
    assert other.key != new.key
    blob = store_bytes(isolated_env)  # the connection is open: recent writes sit in the WAL
    assert new.key.encode() not in blob and other.key.encode() not in blob
    assert new.key[PREFIX_LENGTH:].encode() not in blob
    store.close_thread_connection()  # checkpoint the WAL into the file, then search again
    blob = store_bytes(isolated_env)
    assert new.key[PREFIX_LENGTH:].encode() not in blob
    assert hashlib.sha256(new.key.encode()).digest() in blob  # what is stored instead


def test_authenticate(isolated_env):
    new = store.create_key("alice", rpm=10, rpd=100, budget_usd=5.0)
    record = store.authenticate(new.key)
    assert (
        record is not None and record.user == "alice" and (record.rpm, record.rpd, record.budget_usd) == (10, 100, 5.0)
    )
    tampered = new.key[:-1] + ("A" if new.key[-1] != "A" else "B")
    assert store.authenticate(tampered) is None
    assert store.authenticate(new.key[:PREFIX_LENGTH]) is None
    assert store.authenticate("") is None
    assert store.authenticate(new.key + "x") is None


def test_revoke_by_key_or_prefix(isolated_env):
    first, second = store.create_key("alice"), store.create_key("bob")
    assert store.revoke(first.record.prefix + "…").user == "alice"
    assert store.authenticate(first.key) is None
    assert store.revoke(second.key).user == "bob"
    assert store.authenticate(second.key) is None
    with pytest.raises(store.NotFoundError):
        store.revoke(first.record.prefix)  # already revoked
    with pytest.raises(store.NotFoundError):
        store.revoke("r42_")  # too short to name a key
    assert store.list_keys() == [] and len(store.list_keys(include_revoked=True)) == 2


def test_remembered_authentication_forgets_at_once_when_the_store_changes(isolated_env, store_backend):
    import threading

    first, second = store.create_key("alice", rpm=10), store.create_key("bob")
    assert store.authenticate_cached(first.key).user == "alice"
    assert store.authenticate_cached(first.key).user == "alice"  # remembered
    assert store.authenticate_cached(second.key[:-1] + "x") is None
    store.revoke(first.key)  # on this thread's own connection
    assert store.authenticate_cached(first.key) is None
    assert store.authenticate_cached(second.key).user == "bob"
    elsewhere = threading.Thread(target=store.revoke, args=(second.key,))  # another connection
    elsewhere.start()
    elsewhere.join()
    assert store.authenticate_cached(second.key) is None
    third = store.create_key("carol")
    assert store.authenticate_cached(third.key).user == "carol"
    subprocess.run(
        [sys.executable, "-c", f"from r42.store import revoke; revoke({third.key!r})"], check=True, env=os.environ
    )  # another process
    if store_backend == "postgres":  # no data_version there: a remembered key is read again after PG_MEMO_S
        import time

        from r42.store.keys import PG_MEMO_S

        deadline = time.monotonic() + 2 * PG_MEMO_S
        while store.authenticate_cached(third.key) is not None and time.monotonic() < deadline:
            time.sleep(0.02)
    assert store.authenticate_cached(third.key) is None


def test_an_ambiguous_prefix_is_refused(isolated_env):
    store.create_key("alice")
    conn = db.connect()
    user_id = conn.execute("SELECT id FROM users").fetchone()[0]
    for prefix in ("r42_abcd1111", "r42_abcd2222"):  # two keys whose names share 8 characters
        conn.execute(
            "INSERT INTO gateway_keys (user_id, prefix, hash, created) VALUES (?, ?, ?, 0)",
            (user_id, prefix, os.urandom(32)),
        )
    with pytest.raises(UsageError) as info:
        store.revoke("r42_abcd")
    assert "matches 2 keys" in info.value.message
    assert len(store.list_keys()) == 3  # nothing was revoked
    assert store.revoke("r42_abcd2").prefix == "r42_abcd2222"
    assert len(store.list_keys()) == 2


def test_rotate_a_user_keeps_the_limits_and_stops_the_old_keys(isolated_env):
    old = [store.create_key("alice", rpm=7, budget_usd=2.5), store.create_key("alice", rpm=9)]
    store.create_key("bob")
    new, revoked = store.rotate("alice")
    assert {r.prefix for r in revoked} == {o.record.prefix for o in old}
    assert all(store.authenticate(o.key) is None for o in old)
    record = store.authenticate(new.key)
    assert record is not None and record.user == "alice" and record.rpm == 9  # the most recent key's limits
    assert [r.user for r in store.list_keys()] == ["alice", "bob"]
    assert store.list_users() == ["alice", "bob"]
    again, _ = store.rotate(new.record.prefix)
    assert store.authenticate(new.key) is None and store.authenticate(again.key) is not None
    with pytest.raises(store.NotFoundError):
        store.rotate("carol")


def test_usage_and_limits(isolated_env):
    now = 1_780_000_000.0  # a fixed time, far from a month boundary
    assert month_start(now) < now - 5 * 86_400
    record = store.create_key("alice", rpm=3, rpd=5, budget_usd=1.0).record
    store.record_usage(record.id, 0.1, at=now - 3600)  # in the day, not the minute
    store.record_usage(record.id, 0.2, at=now - 90_000)  # older than a day, same month
    store.record_usage(record.id, 0.1, at=now - 10)
    store.record_usage(record.id, 0.1, at=now - 5)
    used = usage(record.id, now)
    assert (used.requests_minute, used.requests_day) == (2, 3)
    assert used.cost_month_usd == pytest.approx(0.5)
    assert limit_exceeded(record, used, now) is None
    store.record_usage(record.id, 0.0, at=now - 1)
    hit = store.check_limits(record, now)
    assert hit is not None and hit.limit == "rpm" and 1 <= hit.retry_after_s <= 61
    assert [r.last_used for r in store.list_keys()] == [now - 1]
    later = now + 120  # the minute window has passed; the day has 4 requests
    store.record_usage(record.id, 0.0, at=later - 50)
    hit = store.check_limits(record, later)
    assert hit is not None and hit.limit == "rpd"
    unlimited_day = store.create_key("bob", budget_usd=0.3).record
    store.record_usage(unlimited_day.id, 0.35, at=now)
    hit = store.check_limits(unlimited_day, now)
    assert hit is not None and hit.limit == "budget" and hit.retry_after_s > 0
    next_month = month_start(now) + 40 * 86_400
    assert store.check_limits(unlimited_day, next_month) is None


# ---- provider credentials ----------------------------------------------------------------------

SECRET = "sk-proj-THIS-IS-A-TEST-SECRET-0123456789abcdef"


@pytest.mark.sqlite_file
def test_credentials_are_encrypted_and_never_in_the_file_in_clear(isolated_env):
    store.set_credential("openai", SECRET)
    store.set_credential(
        "myvllm", "vllm-SECRET-abcdef0123456789", base_url="http://127.0.0.1:8000/v1", models=["llama3"]
    )
    assert SECRET.encode() not in store_bytes(isolated_env)
    assert b"vllm-SECRET" not in store_bytes(isolated_env)
    store.close_thread_connection()
    assert SECRET.encode() not in store_bytes(isolated_env)
    assert mode_of(isolated_env / "master.key") == 0o600
    assert store.get_secret("openai").secret == SECRET
    assert store.get_secret("myvllm").secret == "vllm-SECRET-abcdef0123456789"


def test_user_credentials_override_the_global_one_for_that_user(isolated_env):
    store.set_credential("openai", "sk-global-1234567890")
    store.set_credential("openai", "sk-alice-1234567890", user="alice")
    assert store.lookup_credential("openai") == Credential("sk-global-1234567890", "store")
    assert store.lookup_credential("openai", user="alice") == Credential("sk-alice-1234567890", "store (user alice)")
    assert store.lookup_credential("openai", user="bob").secret == "sk-global-1234567890"
    assert store.lookup_credential("anthropic") is None
    assert "sk-" not in repr(store.lookup_credential("openai")) and "sk-" not in repr(store.get_secret("openai"))
    assert store.remove_credential("openai")
    assert store.lookup_credential("openai", user="bob") is None
    assert store.lookup_credential("openai", user="alice").secret == "sk-alice-1234567890"
    assert not store.remove_credential("openai")


def test_a_wrong_master_key_is_a_clear_error(isolated_env, monkeypatch):
    from cryptography.fernet import Fernet

    store.set_credential("openai", SECRET)
    monkeypatch.setenv("R42_MASTER_KEY", Fernet.generate_key().decode())
    with pytest.raises(store.MasterKeyError) as info:
        store.get_secret("openai")
    assert "wrong master key" in info.value.message and info.value.exit_code == ExitCode.CONFIG
    assert SECRET not in info.value.one_line()
    with pytest.raises(store.MasterKeyError):  # nor can it add a second key to the mix
        store.set_credential("anthropic", "sk-ant-0123456789")
    monkeypatch.setenv("R42_MASTER_KEY", "not a fernet key")
    with pytest.raises(store.MasterKeyError) as info:
        store.get_secret("openai")
    assert "not a valid key" in info.value.message
    monkeypatch.setenv("R42_MASTER_KEY", (isolated_env / "master.key").read_text().strip())
    assert store.get_secret("openai").secret == SECRET  # the same key given through the environment


def test_a_missing_master_key_is_a_clear_error_and_is_not_replaced(isolated_env):
    store.set_credential("openai", SECRET)
    (isolated_env / "master.key").unlink()
    with pytest.raises(store.MasterKeyError) as info:
        store.lookup_credential("openai")
    assert "missing" in info.value.message
    with pytest.raises(store.MasterKeyError):
        store.set_credential("anthropic", "sk-ant-0123456789")
    assert not (isolated_env / "master.key").exists()


def test_a_secret_moved_to_another_row_does_not_decrypt(isolated_env):
    store.set_credential("openai", SECRET)
    store.set_credential("anthropic", "sk-ant-0123456789")
    conn = db.connect()
    token = conn.execute("SELECT secret FROM credentials WHERE provider = 'openai'").fetchone()[0]
    conn.execute("UPDATE credentials SET secret = ? WHERE provider = 'anthropic'", (token,))
    with pytest.raises(store.MasterKeyError) as info:
        store.get_secret("anthropic")
    assert "cannot be decrypted" in info.value.message


def test_custom_endpoints_become_catalog_providers_and_models(isolated_env):
    store.set_credential("myvllm", None, base_url="http://localhost:8000/v1/", models=["llama3", "qwen2.5-coder"])
    store.set_credential("corp", "corp-key-0123456789", base_url="https://llm.example.com/v1", models=["big"])
    store.set_credential("openai", SECRET)  # not an endpoint
    providers, models = store.custom_providers(), store.custom_models()
    assert set(providers) == {"myvllm", "corp"}
    assert providers["myvllm"]["base_url"] == "http://localhost:8000/v1" and providers["myvllm"]["local"] is True
    assert providers["corp"]["local"] is False and providers["corp"]["privacy"]["trains_on_api_data"] is None
    assert sorted(m["id"] for m in models) == ["corp/big", "myvllm/llama3", "myvllm/qwen2.5-coder"]
    check_catalog(
        {"providers": providers, "models": models}, Path("custom")
    )  # complete entries in the catalog's schema
    assert store.lookup_credential("myvllm") == Credential("", "store, no key")
    assert store.lookup_credential("corp").secret == "corp-key-0123456789"


@pytest.mark.parametrize("url", ["ftp://host/v1", "localhost:8000", "http://user:pass@host/v1"])
def test_bad_base_urls_are_refused(isolated_env, url):
    with pytest.raises(UsageError):
        store.set_credential("x", "k-0123456789", base_url=url)
    assert store.list_credentials() == []


@pytest.mark.sqlite_file
def test_score_does_not_load_sqlite_or_cryptography(isolated_env):
    store.set_credential("openai", SECRET)  # a store exists
    code = textwrap.dedent(
        """
        import sys
        from click.testing import CliRunner
        from r42.cli import cli
        result = CliRunner().invoke(cli, ["score"], input="hello there")
        assert result.exit_code == 0, result.output
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("sqlite3", "cryptography", "r42")) )
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "R42_HOME": str(isolated_env)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "sqlite3" not in out.stdout and "cryptography" not in out.stdout and "r42.store" not in out.stdout
