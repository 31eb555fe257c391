"""/dashboard over HTTP (a real gateway on 127.0.0.1), the query layer against the row-by-row stats,
and `r42 stats --html`. The browser tests are in test_dashboard_browser.py."""

from __future__ import annotations

import time
from datetime import datetime

import orjson
import pytest

from r42 import store
from r42.store import rollup
from r42.store.queries import Scope, dashboard_data, failures, stats_report
from r42.store.stats import Reference, compute_stats
from tests.dashboard_seed import fresh, XSS, Client, gateway, seed_log, seeded  # noqa: F401 - fixtures
from tests.helpers import run

REFERENCE = Reference("openai/gpt-4o", 2.5, 10.0, "test")


def sign_in(gateway, key: str) -> Client:
    client = Client(gateway.url)
    status, headers, _ = client.post_form("/dashboard/login", {"key": key})
    assert status == 303 and headers["location"] == "/dashboard"
    return client


# ---- the query layer ---------------------------------------------------------------------------


@pytest.mark.parametrize("scope", [Scope(), Scope(user="bob"), Scope(since=time.time() - 3600), Scope(user="nobody")])
def test_the_query_layer_agrees_with_the_row_by_row_stats(seeded, scope):
    rows = [r for r in store.iter_routes(since=scope.since, user=scope.user)]
    assert_same(stats_report(scope, REFERENCE), compute_stats(rows, REFERENCE))
    assert_same(stats_report(scope, None), compute_stats(rows, None))


def assert_same(got, want, path="") -> None:
    """Equal documents, key order included; sums of money may differ in the last rounded digit
    (SQLite adds them up in another order); latency and TTFT percentiles are within rollup.BOUND
    (a user's day of more than rollup.EXACT_MAX requests keeps its latencies binned: the seeded
    rows fall into one day or two depending on the hour the test runs)."""
    if isinstance(want, dict):
        assert list(got) == list(want), path
        for key in want:
            assert_same(got[key], want[key], f"{path}.{key}")
    elif isinstance(want, float) and isinstance(got, float) and (".latency_ms." in path or ".ttft_ms." in path):
        assert got == pytest.approx(want, rel=rollup.BOUND * 1.000001), path
    elif isinstance(want, float) and isinstance(got, float):
        assert got == pytest.approx(want, abs=2e-6), path
    else:
        assert got == want, path


def test_the_cached_past_and_the_fresh_present_add_up_to_the_whole(seeded):
    from r42.store import queries

    now = time.time()
    split = queries.dashboard_data("24h", None, REFERENCE, now=now)
    queries._cache.clear()
    cut = now // 3600 * 3600
    whole = queries.panels(Scope(cut + 3600 - 86_400, now + 1), REFERENCE, 3600, now=now)
    assert_same(split, {"period": "24h", **whole})
    # a row written late into the cached past is seen at once
    store.write_route(endpoint="ask", status="ok", model="late/one", at=cut - 1800, latency_ms=1.0, retention_days=0)
    again = queries.dashboard_data("24h", None, REFERENCE, now=now)
    assert again["totals"]["requests"] == split["totals"]["requests"] + 1 and "late/one" in again["by_model"]


def test_failures_filter_by_provider_and_kind(seeded):
    scope = Scope(since=seeded.now - 86_400)
    failed = [r for r in store.iter_routes(since=scope.since) if r["status"] != "ok"]
    everything = failures(scope)
    assert everything["matched"] == len(failed)
    assert {"openai", "anthropic", "groq"} <= set(everything["providers"]) and "http 429" in everything["kinds"]
    anthropic = failures(scope, provider="anthropic")
    assert (
        anthropic["matched"]
        == sum(any(a["model"].startswith("anthropic/") for a in r["attempts"]) for r in failed)
        == 1
    )
    timeouts = failures(scope, kind="timeout")
    assert timeouts["matched"] == sum(
        any(a["status"] is None and "timed out" in a["error"] for a in r["attempts"]) for r in failed
    )
    [row] = anthropic["rows"]
    assert [(a["model"], a["kind"], a["fallback"]) for a in row["attempts"]] == [
        ("openai/gpt-4o", "http 503", "anthropic/claude-sonnet-4"),
        ("anthropic/claude-sonnet-4", "http 429", "groq/llama-3.1-8b"),
        ("groq/llama-3.1-8b", "timeout", None),
    ]


def test_dashboard_data_of_one_user_holds_only_their_rows(seeded):
    now = time.time()  # not seeded.now: the feedback is stamped when seeding ends, which may be seconds later
    data = dashboard_data("24h", "bob", REFERENCE, now=now)
    bob_rows = [r for r in store.iter_routes(since=now - 86_400, user="bob")]
    assert data["totals"]["requests"] == len(bob_rows) and data["by_user"] is None
    assert {k["user"] for k in data["keys"]} == {"bob"}
    assert all(r["user"] == "bob" for r in data["failures"]["rows"])
    assert sum(p["requests"] for p in data["series"]) == len(bob_rows)
    assert sum(b["requests"] for b in data["complexity"]) == sum(r["complexity"] is not None for r in bob_rows)
    assert [f["model"] for f in data["feedback"]] == ["openai/gpt-4o-mini"]


# ---- signing in and out --------------------------------------------------------------------------


def test_sign_in_sets_a_strict_httponly_expiring_cookie_and_sign_out_needs_the_csrf_token(gateway, seeded):
    client = Client(gateway.url)
    status, headers, body = client.request("GET", "/dashboard")
    assert status == 200 and b'name="key"' in body and b"Sign in" in body
    status, headers, body = client.post_form("/dashboard/login", {"key": seeded.bob_key[:-1] + "x"})
    assert status == 401 and client.cookie is None and b"not a valid" in body
    status, headers, _ = client.post_form("/dashboard/login", {"key": seeded.bob_key})
    cookie = headers["set-cookie"]
    assert (
        status == 303
        and "HttpOnly" in cookie
        and "SameSite=Strict" in cookie
        and "Max-Age=" in cookie
        and "Path=/dashboard" in cookie
    )
    token = client.cookie.split("=", 1)[1]
    status, headers, page = client.request("GET", "/dashboard")
    assert status == 200 and b"Sign out" in page and b"user bob" in page
    assert token.encode() not in page and seeded.bob_key.encode() not in page
    assert "nonce-" in headers["content-security-policy"] and headers["cache-control"] == "no-store"
    # sign-out without the page's token is refused; with it the session ends
    assert client.post_form("/dashboard/logout", {"csrf": "forged"})[0] == 403
    csrf = page.split(b'name="csrf" value="', 1)[1].split(b'"', 1)[0].decode()
    status, headers, _ = client.post_form("/dashboard/logout", {"csrf": csrf})
    assert status == 303 and "Max-Age=0" in headers["set-cookie"]
    stale = Client(gateway.url)
    stale.cookie = f"r42_session={token}"
    assert b'name="key"' in stale.request("GET", "/dashboard")[2]


def test_behind_a_tls_proxy_the_cookie_is_secure(gateway, seeded):
    client = Client(gateway.url)
    status, headers, _ = client.post_form("/dashboard/login", {"key": seeded.bob_key}, {"X-Forwarded-Proto": "https"})
    assert status == 303 and headers["set-cookie"].endswith("; Secure")


def test_a_cross_site_sign_in_is_refused(gateway, seeded):
    client = Client(gateway.url)
    status, _, _ = client.post_form("/dashboard/login", {"key": seeded.bob_key}, {"Origin": "http://evil.example"})
    assert status == 403 and client.cookie is None


def test_a_revoked_key_ends_its_session(gateway, seeded):
    client = sign_in(gateway, seeded.bob_key)
    assert b"Sign out" in client.request("GET", "/dashboard")[2]
    store.revoke(seeded.bob_key)
    assert b'name="key"' in client.request("GET", "/dashboard")[2]


def test_bearer_works_for_scripts_and_a_wrong_one_is_401(gateway, seeded):
    client = Client(gateway.url)
    status, _, body = client.request(
        "GET", "/dashboard/data?period=30d", headers={"Authorization": f"Bearer {seeded.bob_key}"}
    )
    data = orjson.loads(body)
    everything_of_bob = [r for r in store.iter_routes(since=seeded.now - 30 * 86_400, user="bob")]
    assert status == 200 and data["totals"]["requests"] == len(everything_of_bob) and data["user"] == "bob"
    assert set(data["panels"]) >= {"overview", "errors", "keys"}
    assert client.request("GET", "/dashboard/data", headers={"Authorization": "Bearer r42_" + "x" * 43})[0] == 401
    assert client.request("GET", "/dashboard/data")[0] == 401
    status, _, page = client.request("GET", "/dashboard", headers={"Authorization": f"Bearer {seeded.admin_key}"})
    assert status == 200 and b"everyone (admin)" in page


def learned(client: Client, path: str) -> dict:
    """The data once the learning panel is worked out (on a background thread, not during the request)."""
    for _ in range(100):
        data = orjson.loads(client.request("GET", path)[2])
        if data["learning"] is not None:
            return data
        time.sleep(0.1)
    raise AssertionError("the learning panel never arrived")


def test_admin_sees_everyone_and_the_others_only_themselves(gateway, seeded):
    admin = sign_in(gateway, seeded.admin_key)
    bob = sign_in(gateway, seeded.bob_key)
    every = learned(admin, "/dashboard/data?period=24h")
    own = learned(bob, "/dashboard/data?period=24h")
    in_day = [r for r in store.iter_routes(since=seeded.now - 86_400)]
    assert every["totals"]["requests"] == len(in_day) and set(every["by_user"]) == {"alice", "bob", "carol"}
    assert own["totals"]["requests"] == sum(r["user"] == "bob" for r in in_day) and own["by_user"] is None
    # what learning changed: bob's own adjustments only; his one bad verdict is among them
    assert own["learning"] and {c["user"] for c in own["learning"]} == {"bob"}
    verdict = [c for c in own["learning"] if c["model"] == "openai/gpt-4o-mini" and c["domain"] is None]
    assert verdict and verdict[0]["bad"] == 1 and verdict[0]["value"] < 0
    assert {c["user"] for c in every["learning"]} <= {"alice", "bob", "carol"} and len(every["learning"]) <= 12
    bob_page = bob.request("GET", "/dashboard?period=24h")[2]
    assert (
        seeded.alice_failed_request.encode() not in bob_page and b"carol" not in bob_page and b"alice" not in bob_page
    )
    admin_page = admin.request("GET", "/dashboard?period=24h")[2]
    assert seeded.alice_failed_request.encode() in admin_page and b"carol" in admin_page


def test_everything_rendered_is_escaped(gateway, seeded):
    admin = sign_in(gateway, seeded.admin_key)
    page = admin.request("GET", "/dashboard?period=24h&provider=%3Cscript%3E&kind=")[2].decode()
    assert XSS not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "<script>alert" not in page and page.count("<script") == 1  # only the nonce'd refresh script


def test_period_filters_and_weight(gateway, seeded):
    admin = sign_in(gateway, seeded.admin_key)
    hour = orjson.loads(admin.request("GET", "/dashboard/data?period=1h")[2])
    month = orjson.loads(admin.request("GET", "/dashboard/data?period=30d")[2])
    # "last hour": the last twelve five-minute buckets, counting the current one
    since = datetime.fromisoformat(hour["since"].replace("Z", "+00:00")).timestamp()
    assert since % 300 == 0 and 3300 < time.time() - since <= 3600
    assert hour["totals"]["requests"] == len(list(store.iter_routes(since=since)))
    assert month["totals"]["requests"] == len(
        list(store.iter_routes(since=seeded.now - 30 * 86_400))
    )  # the 40-day-old row is out
    assert len(hour["series"]) in (12, 13) and len(month["series"]) in (30, 31)
    status, _, page = admin.request("GET", "/dashboard?period=30d")
    assert status == 200 and len(page) <= 200_000


def test_stats_html_writes_the_same_panels_as_one_standalone_file(seeded):
    result = run(["stats", "--html", "--reference", "openai/gpt-4o"])
    assert result.exit_code == 0, result.stderr
    page = result.stdout
    assert (
        page.startswith("<!doctype html>")
        and "<script" not in page
        and "http://" not in page
        and "https://" not in page
    )
    for section in ("overview", "time", "splits", "complexity", "latency", "errors", "keys", "feedback"):
        assert f'<section id="{section}"' in page
    requests = len(list(store.iter_routes()))
    assert f'data-metric="Requests">{requests:,}<' in page
    bob = run(["stats", "--html", "--user", "bob"]).stdout
    assert "req_chain_alice" not in bob and "user bob" in bob


def test_stats_json_reads_the_query_layer(seeded):
    doc = orjson.loads(run(["stats", "--reference", "openai/gpt-4o"]).stdout)
    assert doc["totals"]["requests"] == len(list(store.iter_routes()))
    assert set(doc) >= {"by_model", "by_mode", "by_domain", "by_user", "by_day", "totals", "reference"}
