"""Self-service endpoints against a real `r42 serve`: a user stores their own provider key over HTTP
and their requests use it; keys are shown as fingerprints only; usage reads back."""

from __future__ import annotations


import pytest

from r42 import store
from r42.config import load_settings
from r42.server import serve_in_thread
from tests.fakes import OpenAIFake
from tests.helpers import json_lines, run
from tests.test_admin_api import call
from tests.test_serve_http import post

UPSTREAM_KEY = "sk-alice-own-DO-NOT-PRINT-42"


@pytest.fixture
def gateway(monkeypatch):
    with OpenAIFake(reply="hello", api_key=UPSTREAM_KEY) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)  # no OPENAI_API_KEY: nobody has a shared key
        with serve_in_thread(load_settings()) as running:
            yield running


def chat(url: str, key: str) -> int:
    return post(url, "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"})[0]


def test_a_user_brings_their_own_provider_key(gateway):
    alice = store.create_key("alice", rpm=100).key
    bob = store.create_key("bob").key
    assert chat(gateway.url, alice) != 200  # no key for openai yet
    status, body = call(gateway.url, "PUT", "/v1/me/credentials/openai", alice, {"key": UPSTREAM_KEY})
    assert status == 200 and body["fingerprint"].startswith("sha256:") and UPSTREAM_KEY not in str(body)
    assert chat(gateway.url, alice) == 200  # her own key serves her requests at once
    assert chat(gateway.url, bob) != 200  # and only hers
    status, listed = call(gateway.url, "GET", "/v1/me/credentials", alice)
    assert (
        status == 200
        and {"provider": "openai", "source": "yours", "fingerprint": body["fingerprint"]} in listed["credentials"]
    )
    assert UPSTREAM_KEY not in str(listed)
    assert call(gateway.url, "GET", "/v1/me/credentials", bob)[1]["credentials"] == []
    status, used = call(gateway.url, "GET", "/v1/me/usage", alice)
    assert status == 200 and used["user"] == "alice" and used["limits"]["rpm"] == 100 and used["requests_day"] >= 1
    assert call(gateway.url, "DELETE", "/v1/me/credentials/openai", alice)[0] == 200
    assert call(gateway.url, "DELETE", "/v1/me/credentials/openai", alice)[0] == 404
    assert chat(gateway.url, alice) != 200
    entries = json_lines(run(["keys", "audit", "--action", "credential"]).stdout)
    assert [(e["action"], e["actor"]) for e in entries] == [
        ("credential.set", f"key:{alice[:12]} (alice)"),
        ("credential.rm", f"key:{alice[:12]} (alice)"),
    ]


def test_bad_requests_and_no_key(gateway):
    alice = store.create_key("alice").key
    assert call(gateway.url, "PUT", "/v1/me/credentials/nosuchprovider", alice, {"key": "x"})[0] == 404
    for body in ({}, {"key": ""}, {"key": "a b"}, {"key": 5}, {"key": "x", "base_url": "http://evil"}):
        assert call(gateway.url, "PUT", "/v1/me/credentials/openai", alice, body)[0] == 400, body
    assert call(gateway.url, "GET", "/v1/me/credentials")[0] == 401
    assert call(gateway.url, "POST", "/v1/me/credentials", alice)[0] == 405
    with serve_in_thread(load_settings(), no_auth=True) as open_gateway:
        assert call(open_gateway.url, "GET", "/v1/me/usage")[0] == 403
