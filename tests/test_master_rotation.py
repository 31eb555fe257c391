"""`r42 keys rotate-master`: every stored secret re-encrypted under a new master key, the old key kept
aside, and nothing changed when a secret cannot be opened."""

from __future__ import annotations

import pytest

from r42 import store
from r42.store import hooks
from r42.store.credentials import master_key_path
from tests.helpers import run


pytestmark = pytest.mark.usefixtures("store_backend")  # each test on SQLite and on PostgreSQL (tests/conftest.py)


def test_rotation_re_encrypts_credentials_and_webhook_secrets():
    store.set_credential("openai", "sk-global-1")
    store.set_credential("anthropic", "sk-ant-alice", user="alice")
    hook = hooks.add_hook("https://example.com/hook", ["key.expiring"], "whsec-1")
    old_key = master_key_path().read_bytes()
    result = run(["keys", "rotate-master"])
    assert result.exit_code == 0 and "re-encrypted 3 stored secrets" in result.stderr
    assert master_key_path().read_bytes() != old_key
    assert master_key_path().with_name("master.key.old").read_bytes() == old_key
    assert not master_key_path().with_name("master.key.new").exists()
    assert run(["keys", "get", "openai"]).stdout.strip() == "sk-global-1"
    assert run(["keys", "get", "anthropic", "--user", "alice"]).stdout.strip() == "sk-ant-alice"
    assert hooks.hook_secret(hook.id) == "whsec-1"
    assert "sk-global-1" not in result.stderr + result.stdout


def test_rotation_changes_nothing_when_a_secret_cannot_be_opened():
    store.set_credential("openai", "sk-global-1")
    from r42.store.db import writing

    with writing() as conn:
        conn.execute("UPDATE credentials SET secret = ? WHERE provider = 'openai'", (b"damaged",))
    old_key = master_key_path().read_bytes()
    result = run(["keys", "rotate-master"])
    assert result.exit_code != 0 and "cannot be decrypted" in result.stderr
    assert master_key_path().read_bytes() == old_key
    assert not master_key_path().with_name("master.key.new").exists()


def test_rotation_refuses_a_key_from_the_environment(monkeypatch):
    from cryptography.fernet import Fernet

    monkeypatch.setenv("R42_MASTER_KEY", Fernet.generate_key().decode())
    store.set_credential("openai", "sk-global-1")
    result = run(["keys", "rotate-master"])
    assert result.exit_code == 2 and "R42_MASTER_KEY" in result.stderr
