"""Admin keys and the admin HTTP API against a real `r42 serve` on loopback, and the audit log."""

from __future__ import annotations

import http.client

import orjson
import pytest

from r42 import clock, store
from r42.clock import FakeClock
from r42.config import load_settings
from r42.server import serve_in_thread
from r42.store.keys import parse_when
from tests.helpers import json_lines, run


@pytest.fixture
def gateway():
    with serve_in_thread(load_settings()) as running:
        yield running


@pytest.fixture
def admin_key():
    result = run(["keys", "create", "ops", "--admin"])
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def call(url: str, method: str, path: str, key: str | None = None, body: object = None) -> tuple[int, dict]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {key}"} if key else {})
    conn.request(method, path, body=None if body is None else orjson.dumps(body), headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    is_json = (response.getheader("Content-Type") or "").startswith("application/json")
    return response.status, orjson.loads(data) if is_json and data else {}


def test_admin_flag_on_the_record(admin_key):
    record = store.authenticate(admin_key)
    assert getattr(record, "admin", False) is True
    assert getattr(store.authenticate(store.create_key("alice").key), "admin", None) is False
    listed = {k["user"]: k["admin"] for k in orjson.loads(run(["keys", "list"]).stdout)["keys"]}
    assert listed == {"ops": True, "alice": False}


def test_non_admin_keys_get_403_and_no_key_401(gateway):
    plain = store.create_key("alice").key
    for method, path in (
        ("GET", "/v1/admin/keys"),
        ("POST", "/v1/admin/keys"),
        ("DELETE", "/v1/admin/keys/r42_abcd"),
        ("PATCH", "/v1/admin/keys/r42_abcd"),
    ):
        status, body = call(gateway.url, method, path, plain, {"user": "x"} if method in ("POST", "PATCH") else None)
        assert status == 403 and body["error"]["code"] == "admin_required", (method, path)
        assert call(gateway.url, method, path)[0] == 401


def test_no_auth_gives_no_admin():
    with serve_in_thread(load_settings(), no_auth=True) as running:
        assert call(running.url, "GET", "/v1/admin/keys")[0] == 403


def test_create_list_patch_revoke_over_http(gateway, admin_key):
    status, created = call(
        gateway.url, "POST", "/v1/admin/keys", admin_key, {"user": "bob", "rpm": 10, "budget_usd": 5, "expires": "30d"}
    )
    assert (
        status == 201 and created["key"].startswith(created["prefix"]) and created["rpm"] == 10 and created["expires"]
    )
    bob = created["key"]
    assert call(gateway.url, "GET", "/metrics", bob)[0] == 200  # the new key works at once
    status, listed = call(gateway.url, "GET", "/v1/admin/keys", admin_key)
    assert status == 200 and {k["user"] for k in listed["keys"]} == {"ops", "bob"}
    assert bob not in orjson.dumps(listed).decode() and admin_key not in orjson.dumps(listed).decode()
    assert [k["user"] for k in call(gateway.url, "GET", "/v1/admin/keys?expiring=31d", admin_key)[1]["keys"]] == ["bob"]
    prefix = created["prefix"]
    status, patched = call(
        gateway.url, "PATCH", f"/v1/admin/keys/{prefix}", admin_key, {"rpm": 2, "rpd": None, "expires": "2099-01-01"}
    )
    assert (
        status == 200
        and patched["key"]["rpm"] == 2
        and patched["key"]["budget_usd"] == 5
        and patched["key"]["expires"] == "2099-01-01T00:00:00Z"
    )
    assert (
        call(gateway.url, "PATCH", f"/v1/admin/keys/{prefix}", admin_key, {"expires": None})[1]["key"]["expires"]
        is None
    )
    status, revoked = call(gateway.url, "DELETE", f"/v1/admin/keys/{prefix}", admin_key)
    assert status == 200 and revoked["revoked"]["prefix"] == prefix
    assert call(gateway.url, "GET", "/metrics", bob)[0] == 401
    assert call(gateway.url, "DELETE", f"/v1/admin/keys/{prefix}", admin_key)[0] == 404
    assert call(gateway.url, "GET", "/v1/admin/keys?all=1", admin_key)[1]["keys"][0]["revoked"] is not None


def test_bad_requests(gateway, admin_key):
    for body in (
        {},
        {"user": ""},
        {"user": "x", "rpm": -1},
        {"user": "x", "rpm": 1.5},
        {"user": "x", "admin": "yes"},
        {"user": "x", "expires": "yesterday"},
        {"user": "x", "expires": "2001-01-01"},
        {"user": "x", "owner": "me"},
        {"user": "x", "rpd": 1.5e242},  # more than the store holds: was a 500 (OverflowError)
        {"user": "x", "rpm": 2**63},
        {"user": "x", "expires": "99999999999999999999d"},  # past 9999-12-31: listing it would fail
    ):
        status, doc = call(gateway.url, "POST", "/v1/admin/keys", admin_key, body)
        assert status == 400, body
    status, doc = call(gateway.url, "PATCH", f"/v1/admin/keys/{admin_key[:12]}", admin_key, {"rpd": 1.5e242})
    assert status == 400 and doc["error"]["param"] == "rpd" and "up to 9223372036854775807" in doc["error"]["message"]
    assert call(gateway.url, "PATCH", "/v1/admin/keys/r42_zzzzzzzz", admin_key, {"rpm": 1})[0] == 404
    assert call(gateway.url, "DELETE", "/v1/admin/keys", admin_key)[0] == 400
    assert call(gateway.url, "PUT", "/v1/admin/keys", admin_key)[0] == 405
    assert call(gateway.url, "GET", "/v1/admin/keys?expiring=soon", admin_key)[0] == 400


def test_an_expired_admin_key_is_refused(gateway):
    fake = FakeClock(parse_when("2027-01-01"))
    with clock.using(fake):
        key = store.create_key("ops", admin=True, expires=fake.t + 60).key
        assert call(gateway.url, "GET", "/v1/admin/keys", key)[0] == 200
        fake.advance(61)
        status, body = call(gateway.url, "GET", "/v1/admin/keys", key)
        assert status == 401 and body["error"]["type"] == "key_expired"


def test_the_audit_log_says_who_did_what_and_never_a_secret(gateway, admin_key):
    created = call(gateway.url, "POST", "/v1/admin/keys", admin_key, {"user": "bob", "rpm": 10})[1]
    call(gateway.url, "PATCH", f"/v1/admin/keys/{created['prefix']}", admin_key, {"rpm": 20})
    call(gateway.url, "DELETE", f"/v1/admin/keys/{created['prefix']}", admin_key)
    result = run(["keys", "audit"])
    assert result.exit_code == 0
    entries = json_lines(result.stdout)
    assert [e["action"] for e in entries] == ["key.create", "key.create", "key.update", "key.revoke"]
    assert entries[0]["actor"].startswith("cli") and entries[0]["detail"]["admin"] is True
    admin_prefix = admin_key[:12]
    assert all(e["actor"] == f"key:{admin_prefix} (ops)" for e in entries[1:])
    assert entries[2]["target"] == created["prefix"] and entries[2]["detail"] == {"rpm": [10, 20]}
    assert all(e["time"].endswith("Z") for e in entries)
    assert admin_key not in result.stdout and created["key"] not in result.stdout
    assert [e["action"] for e in json_lines(run(["keys", "audit", "--action", "key.revoke"]).stdout)] == ["key.revoke"]
    assert len(json_lines(run(["keys", "audit", "--limit", "2"]).stdout)) == 2


def test_credential_changes_are_audited_without_the_secret():
    secret = "sk-audit-DO-NOT-PRINT-0123456789"
    assert run(["keys", "set", "openai", "--user", "alice"], input=secret).exit_code == 0
    assert run(["keys", "rm", "openai", "--user", "alice"]).exit_code == 0
    result = run(["keys", "audit", "--action", "credential"])
    entries = json_lines(result.stdout)
    assert [(e["action"], e["target"], e["detail"]["user"]) for e in entries] == [
        ("credential.set", "openai", "alice"),
        ("credential.rm", "openai", "alice"),
    ]
    assert secret not in result.stdout


def test_metrics_and_the_log_name_the_route_not_the_key_prefix(gateway, admin_key):
    prefix = store.create_key("bob").record.prefix
    assert call(gateway.url, "PATCH", f"/v1/admin/keys/{prefix}", admin_key, {"rpm": 3})[0] == 200
    gateway.gateway.log.flush()
    assert [r["endpoint"] for r in store.read_routes()] == ["/v1/admin/keys/{prefix}"]
    host, port = gateway.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {admin_key}"})
    text = conn.getresponse().read().decode()
    assert "/v1/admin/keys/{prefix}" in text and prefix not in text
