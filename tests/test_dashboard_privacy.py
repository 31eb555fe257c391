"""The dashboard's "Privacy judge" panel over HTTP (a real gateway on 127.0.0.1): the signed-in user
reads, saves and resets their own template with a plain form post (no script needed), guarded by
the session's CSRF token. The browser test is in test_dashboard_browser.py."""

from __future__ import annotations

import html


from r42 import store
from r42.privacy_judge import DEFAULT_PROMPT
from r42.store.prompts import template_for
from tests.dashboard_seed import fresh, Client, gateway, seeded  # noqa: F401 - fixtures

MINE = "Bob's rules: money talk is private.\n{prompt}\nYES or NO?"


def signed_in(gateway, key: str) -> tuple[Client, str]:
    """A client with a session, and the page's CSRF token."""
    client = Client(gateway.url)
    assert client.post_form("/dashboard/login", {"key": key})[0] == 303
    page = client.request("GET", "/dashboard")[2]
    return client, page.split(b'name="csrf" value="', 1)[1].split(b'"', 1)[0].decode()


def textarea(page: bytes) -> str:
    inner = page.split(b'id="privacy-template"', 1)[1].split(b">", 1)[1].split(b"</textarea>", 1)[0]
    return html.unescape(inner.decode())


def test_the_panel_shows_the_users_template_in_a_labelled_textarea(gateway, seeded):
    client, _ = signed_in(gateway, seeded.bob_key)
    status, _, page = client.request("GET", "/dashboard")
    assert status == 200 and b'<section id="privacy"' in page and b">Privacy judge</h2>" in page
    assert b'<label for="privacy-template">' in page and b'name="template"' in page
    assert textarea(page) == DEFAULT_PROMPT and b"the default template" in page
    assert b"the judge is off (the operator turns it on with privacy_judge)" in page
    assert b'value="save">Save</button>' in page and b'value="reset">Reset to default</button>' in page
    assert len(page) <= 200_000


def test_save_and_reset_with_a_plain_form_post(gateway, seeded):
    client, csrf = signed_in(gateway, seeded.bob_key)
    # a browser sends a textarea's line breaks as CRLF; the template keeps plain newlines
    fields = {"csrf": csrf, "action": "save", "template": MINE.replace("\n", "\r\n")}
    status, headers, _ = client.post_form("/dashboard/privacy-prompt", fields)
    assert status == 303 and headers["location"] == "/dashboard?privacy=saved#privacy"
    assert template_for("bob", None).template == MINE and not template_for("alice", None).own
    page = client.request("GET", headers["location"].split("#")[0])[2]
    assert textarea(page) == MINE and b"Saved: the privacy judge uses your template" in page
    assert b"your own template" in page
    status, headers, _ = client.post_form("/dashboard/privacy-prompt", {"csrf": csrf, "action": "reset"})
    assert status == 303 and headers["location"] == "/dashboard?privacy=reset#privacy"
    assert not template_for("bob", None).own
    assert textarea(client.request("GET", "/dashboard?privacy=reset")[2]) == DEFAULT_PROMPT
    entries = [e for e in store.audit.read(action="privacy_prompt")]
    assert [(e.actor, e.action, e.target) for e in entries] == [
        ("dashboard:bob", "privacy_prompt.set", "bob"),
        ("dashboard:bob", "privacy_prompt.reset", "bob"),
    ]


def test_a_refused_template_comes_back_with_the_reason(gateway, seeded):
    client, csrf = signed_in(gateway, seeded.bob_key)
    wrong = "no placeholder <b>here</b>"
    status, _, page = client.post_form("/dashboard/privacy-prompt", {"csrf": csrf, "action": "save", "template": wrong})
    assert (
        status == 400 and b'role="alert"' in page and b"Not saved: template must contain {prompt} exactly once" in page
    )
    assert textarea(page) == wrong and b"<b>here</b>" not in page  # kept for editing, escaped
    assert not template_for("bob", None).own


def test_an_admin_edits_their_own(gateway, seeded):
    client, csrf = signed_in(gateway, seeded.admin_key)
    fields = {"csrf": csrf, "action": "save", "template": "Admin: {prompt}"}
    assert client.post_form("/dashboard/privacy-prompt", fields)[0] == 303
    assert template_for("alice", None).template == "Admin: {prompt}" and not template_for("bob", None).own


def test_cross_site_forged_and_signed_out_posts_are_refused(gateway, seeded):
    client, csrf = signed_in(gateway, seeded.bob_key)
    fields = {"csrf": csrf, "action": "save", "template": "Evil {prompt}"}
    assert client.post_form("/dashboard/privacy-prompt", fields, {"Origin": "http://evil.example"})[0] == 403
    assert client.post_form("/dashboard/privacy-prompt", {**fields, "csrf": "forged"})[0] == 403
    assert Client(gateway.url).post_form("/dashboard/privacy-prompt", fields)[0] == 403  # no session
    bearer = {"Authorization": f"Bearer {seeded.bob_key}"}
    assert Client(gateway.url).post_form("/dashboard/privacy-prompt", fields, bearer)[0] == 403  # scripts: the API
    assert not template_for("bob", None).own
