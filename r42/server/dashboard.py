"""/dashboard on `r42 serve`: sign in with a gateway key, see usage, cost, savings and errors.

Signing in: POST /dashboard/login with the form field `key` (a gateway key). The gateway answers
with a session cookie: HttpOnly, SameSite=Strict, Path=/dashboard, expiring after SESSION_TTL_S.
The cookie holds a random token; the server keeps only its SHA-256 (in memory: sessions end when
the gateway restarts) with the key's id, so a session also ends when its key is revoked. Scripts
may skip the cookie and send `Authorization: Bearer r42_...` (or x-api-key) on every request.

Cross-site requests: the cookie is SameSite=Strict, the login checks that an Origin (or Referer)
header, when the browser sends one, names this host, and sign-out carries a per-session CSRF token.
Every page has a Content-Security-Policy that allows only its own inline style and script (by
nonce) and connections to itself.

Who sees what: an admin key sees every user's requests; any other key sees its own user's rows
and keys only. Admin keys are made with `r42 keys create NAME --admin`. A session keeps the admin
status its key had at sign-in (for at most SESSION_TTL_S); revoking the key ends it at once. Under `r42 serve --no-auth`
the dashboard is open and shows everything, like the rest of the gateway.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import orjson

from r42.server.call import Call, presented_key
from r42.server.errors import GatewayError
from r42.server.http import Request, Response
from r42.store.stats import Reference
from r42.views_html import PERIOD_LABELS, login_page, render_page, render_panels

if TYPE_CHECKING:
    from r42.server.app import Gateway

COOKIE = "r42_session"
SESSION_TTL_S = 8 * 3600
MAX_SESSIONS = 10_000
REFERENCE_TTL_S = 60.0
MAX_FILTER_CHARS = 200


@dataclass(frozen=True)
class Viewer:
    """Who is looking: their user (None under --no-auth), whether they see everyone, their session."""

    user: str | None
    admin: bool
    csrf: str | None = None


@dataclass
class Session:
    key_id: int
    user: str
    admin: bool
    csrf: str
    expires: float


class Sessions:
    """Signed-in browsers: the SHA-256 of each session token -> Session. Tokens are never stored."""

    def __init__(self) -> None:
        self._by_hash: dict[bytes, Session] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _hash(token: str) -> bytes:
        return hashlib.sha256(token.encode("utf-8", "replace")).digest()

    def create(self, record: Any, now: float | None = None) -> str:
        now = time.time() if now is None else now
        token = secrets.token_urlsafe(32)
        session = Session(
            record.id,
            record.user,
            record.admin,
            secrets.token_urlsafe(24),
            now + SESSION_TTL_S,
        )
        with self._lock:
            if len(self._by_hash) >= MAX_SESSIONS:
                self._by_hash = {h: s for h, s in self._by_hash.items() if s.expires > now}
                if len(self._by_hash) >= MAX_SESSIONS:  # still full: drop the oldest
                    oldest = min(self._by_hash, key=lambda h: self._by_hash[h].expires)
                    del self._by_hash[oldest]
            self._by_hash[self._hash(token)] = session
        return token

    def find(self, token: str, now: float | None = None) -> Session | None:
        now = time.time() if now is None else now
        digest = self._hash(token)
        with self._lock:
            session = self._by_hash.get(digest)
            if session is not None and session.expires <= now:
                del self._by_hash[digest]
                return None
        return session

    def end(self, token: str) -> None:
        with self._lock:
            self._by_hash.pop(self._hash(token), None)


_sessions: weakref.WeakKeyDictionary[Gateway, Sessions] = weakref.WeakKeyDictionary()
_references: dict[tuple[int, str | None], tuple[float, Reference | None]] = {}
_state_lock = threading.Lock()


def sessions_of(gw: Gateway) -> Sessions:
    with _state_lock:
        found = _sessions.get(gw)
        if found is None:
            found = _sessions[gw] = Sessions()
        return found


# ---- helpers --------------------------------------------------------------------------------


def cookie_value(request: Request, name: str = COOKIE) -> str | None:
    for piece in (request.headers.get("cookie") or "").replace(",", ";").split(";"):
        key, _, value = piece.strip().partition("=")
        if key == name and value:
            return value
    return None


def _form(request: Request) -> dict[str, str]:
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise GatewayError(415, "send the form as application/x-www-form-urlencoded", "unsupported_media_type")
    try:
        fields = parse_qs(request.body.decode("utf-8"), max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise GatewayError(400, "the form is not readable", "invalid_form") from None
    return {k: v[0] for k, v in fields.items() if v}


def same_origin(request: Request) -> bool:
    """True unless an Origin (or, without one, a Referer) header names another host than Host."""
    host = request.headers.get("host", "")
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:
        return True  # not a browser, or a browser that sends neither (SameSite still holds)
    if source == "null":
        return False
    return urlsplit(source).netloc == host


def _html(status: int, text: str, nonce: str, extra: list[tuple[str, str]] | None = None) -> Response:
    csp = (
        f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; connect-src 'self';"
        " img-src 'self' data:;"
        " form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    headers = [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Security-Policy", csp),
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "same-origin"),
        ("X-Frame-Options", "DENY"),
        *(extra or []),
    ]
    return Response(status, text.encode("utf-8"), headers)


def _redirect(location: str, cookie: str | None = None) -> Response:
    headers = [("Location", location), ("Cache-Control", "no-store"), ("Content-Type", "text/plain; charset=utf-8")]
    if cookie is not None:
        headers.append(("Set-Cookie", cookie))
    return Response(303, b"see " + location.encode(), headers)


def _cookie(token: str, max_age: int, request: Request) -> str:
    """The session cookie; Secure when a TLS proxy in front says the browser came over https."""
    secure = "; Secure" if request.headers.get("x-forwarded-proto", "").lower() == "https" else ""
    return f"{COOKIE}={token}; Path=/dashboard; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"


def viewer_of(gw: Gateway, request: Request) -> Viewer | None:
    """The signed-in viewer from a Bearer/x-api-key header or the session cookie; None if neither.
    A presented but wrong key is a 401 (scripts should hear about it)."""
    if gw.no_auth:
        return Viewer(None, True)
    if presented_key(request):
        caller = gw.authenticate(request)  # 401 for a wrong or revoked key
        return Viewer(caller.user, bool(caller.key is not None and caller.key.admin))
    token = cookie_value(request)
    if not token:
        return None
    session = sessions_of(gw).find(token)
    if session is None:
        return None
    from r42.store.queries import key_active

    if not key_active(session.key_id):
        sessions_of(gw).end(token)
        return None
    return Viewer(session.user, session.admin, session.csrf)


def reference_of(gw: Gateway, user: str | None) -> Reference | None:
    """The savings reference as `r42 stats` chooses it (the setting, else the strongest priced
    model the viewed user has a credential for), reused for REFERENCE_TTL_S."""
    now = time.monotonic()
    key = (id(gw), user)
    cached = _references.get(key)
    if cached is not None and now - cached[0] < REFERENCE_TTL_S:
        return cached[1]
    from r42.availability import find_credential
    from r42.store.stats import choose_reference

    reference = choose_reference(
        gw.router.catalog, gw.settings.stats_reference_model, lambda p: find_credential(p, user=user) is not None
    )
    _references[key] = (now, reference)
    return reference


def _choices(request: Request) -> tuple[str, str | None, str | None]:
    """period, provider and error-kind filters from the query string (unknown periods: 24h)."""
    query = request.query
    period = (query.get("period") or ["24h"])[0]
    if period not in PERIOD_LABELS:
        period = "24h"
    provider = (query.get("provider") or [""])[0][:MAX_FILTER_CHARS] or None
    kind = (query.get("kind") or [""])[0][:MAX_FILTER_CHARS] or None
    return period, provider, kind


def _refresh(request: Request) -> int:
    """Seconds between live refreshes: ?refresh=N (2 to 3600), default 15."""
    try:
        return min(3600, max(2, int((request.query.get("refresh") or ["15"])[0])))
    except ValueError:
        return 15


def _data(gw: Gateway, viewer: Viewer, request: Request) -> tuple[dict[str, Any], dict[str, str | None]]:
    from r42.store.queries import dashboard_data

    period, provider, kind = _choices(request)
    scope_user = None if viewer.admin else viewer.user
    half_life = gw.settings.feedback_half_life_days
    data = dashboard_data(period, scope_user, reference_of(gw, scope_user), provider, kind, half_life_days=half_life)
    data["health"] = gw.router.health.circuits() if gw.router.health is not None else None
    return data, {"provider": provider, "kind": kind}


def _subtitle(viewer: Viewer, data: dict[str, Any]) -> str:
    who = "everyone (admin)" if viewer.admin else f"user {viewer.user}"
    return f"{PERIOD_LABELS[data['period']]} up to {data['generated']} UTC, showing {who}"


# ---- the endpoints (the gateway's route table names them) -----------------------------------------


def dashboard_page(gw: Gateway, call: Call) -> Response:
    """GET /dashboard: the page for a signed-in viewer, else the sign-in form.
    OpenAPI: - -> Html"""
    viewer = viewer_of(gw, call.request)
    if viewer is None:
        nonce = secrets.token_urlsafe(16)
        return _html(200, login_page(nonce=nonce), nonce)
    note = PRIVACY_NOTES.get((call.request.query.get("privacy") or [""])[0])
    return _page(gw, viewer, call.request, privacy_note=note)


def _page(
    gw: Gateway,
    viewer: Viewer,
    request: Request,
    status: int = 200,
    privacy_note: str | None = None,
    refused: str | None = None,
) -> Response:
    """The signed-in page; `refused`: a template the privacy form could not save (shown again with
    `privacy_note` as the error)."""
    nonce = secrets.token_urlsafe(16)
    data, filters = _data(gw, viewer, request)
    page = render_page(
        data,
        title="r42 dashboard",
        subtitle=_subtitle(viewer, data),
        filters=filters,
        live=True,
        csrf=viewer.csrf or "",
        nonce=nonce,
        refresh_s=_refresh(request),
        privacy=_privacy(gw, viewer, privacy_note, refused),
    )
    return _html(status, page, nonce)


# after a save or reset (a redirect to /dashboard?privacy=saved): fixed texts, nothing from the request
PRIVACY_NOTES = {
    "saved": "Saved: the privacy judge uses your template from your next request.",
    "reset": "Reset: the privacy judge uses the default template.",
}


def _privacy(gw: Gateway, viewer: Viewer, note: str | None, refused: str | None) -> dict[str, Any] | None:
    """The privacy panel's content: only for a signed-in user's session (the form needs its CSRF token)."""
    if viewer.user is None or viewer.csrf is None:
        return None
    from r42.privacy_judge import MAX_TEMPLATE_CHARS
    from r42.store.prompts import template_for

    current = template_for(viewer.user, gw.settings.privacy_judge_prompt).as_dict()
    if refused is not None:
        current["template"] = refused
    return {
        **current,
        "max_chars": MAX_TEMPLATE_CHARS,
        "message": note,
        "error": refused is not None,
        "enabled": gw.settings.privacy_judge,
    }


def dashboard_data(gw: Gateway, call: Call) -> Response:
    """GET /dashboard/data: the panels as JSON (numbers and each panel's HTML), for the live refresh
    and for scripts."""
    viewer = viewer_of(gw, call.request)
    if viewer is None:
        raise GatewayError(
            401, "sign in at /dashboard or send a gateway key as Authorization: Bearer", "missing_api_key"
        )
    data, filters = _data(gw, viewer, call.request)
    body = {**data, "panels": render_panels(data, filters)}
    headers = [
        ("Content-Type", "application/json"),
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
    ]
    return Response(200, orjson.dumps(body), headers)


def dashboard_login(gw: Gateway, call: Call) -> Response:
    """POST /dashboard/login with the form field `key`: a session cookie, then back to /dashboard.
    OpenAPI: Form -> -"""
    nonce = secrets.token_urlsafe(16)
    request = call.request
    if not same_origin(request):
        return _html(403, login_page("This sign-in did not come from this page.", nonce), nonce)
    if gw.no_auth:
        return _redirect("/dashboard")
    from r42.store import authenticate

    key = _form(request).get("key", "").strip()
    record = authenticate(key) if key else None
    if record is None:
        return _html(401, login_page("That key is not a valid, active gateway key.", nonce), nonce)
    token = sessions_of(gw).create(record)
    return _redirect("/dashboard", _cookie(token, SESSION_TTL_S, request))


def _own_form(gw: Gateway, request: Request, refusal: str) -> tuple[str, dict[str, str]]:
    """The session token and the fields of a form posted from the page itself (same origin, with
    its session's CSRF token); else a 403 saying `refusal`."""
    token = cookie_value(request)
    session = sessions_of(gw).find(token) if token else None
    form = _form(request)
    sent = form.get("csrf", "")
    if session is None or not same_origin(request) or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
        raise GatewayError(403, refusal, "csrf_failed")
    assert token is not None  # a session was found by it
    return token, form


def dashboard_logout(gw: Gateway, call: Call) -> Response:
    """POST /dashboard/logout with the session's CSRF token: the session ends, the cookie goes.
    OpenAPI: Form -> -"""
    request = call.request
    token, _ = _own_form(gw, request, "sign-out needs the page's own form")
    sessions_of(gw).end(token)
    return _redirect("/dashboard", _cookie("", 0, request))


def dashboard_privacy_prompt(gw: Gateway, call: Call) -> Response:
    """POST /dashboard/privacy-prompt with the session's CSRF token, `template` and `action` (save or
    reset): the signed-in user's own privacy-judge template, then back to /dashboard.
    OpenAPI: Form -> -"""
    request = call.request
    _, form = _own_form(gw, request, "the privacy-judge form needs the page's own form")
    viewer = viewer_of(gw, request)
    if viewer is None or viewer.user is None:
        raise GatewayError(403, "sign in again: the session has ended", "csrf_failed")
    from r42.errors import InputError
    from r42.store.prompts import reset_template, set_template

    actor = f"dashboard:{viewer.user}"
    if form.get("action") == "reset":
        reset_template(viewer.user, actor)
        return _redirect("/dashboard?privacy=reset#privacy")
    template = form.get("template", "").replace("\r\n", "\n")  # browsers send a textarea's lines with CRLF
    try:
        set_template(viewer.user, template, actor)
    except InputError as exc:
        return _page(gw, viewer, request, 400, f"Not saved: {exc.one_line()}", template)
    return _redirect("/dashboard?privacy=saved#privacy")


def render_for_benchmark(period: str, reference: Reference | None) -> bytes:
    """The admin page's HTML for a period, without a server (benchmarks/bench_dashboard.py)."""
    from r42.store.queries import dashboard_data as query

    data = query(period, None, reference, half_life_days=14.0)
    viewer = Viewer(None, True, "x")
    return render_page(
        data, title="r42 dashboard", subtitle=_subtitle(viewer, data), live=True, csrf="x", nonce="n"
    ).encode()
