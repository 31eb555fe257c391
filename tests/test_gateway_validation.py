"""Request bodies are checked at the edge of `r42 serve` (issue 15, item 6): a field of the wrong type
is a 400 naming the field, in the endpoint's own error shape, never a 500; a 500 that still
happens is logged as an error with its type. The gateway runs on loopback over loopback fakes."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from r42.document import ROLES
from r42.server import app
from tests.test_serve import CLAUDE, CLOUD, DIRECT, gateway, key, log_rows, upstreams  # noqa: F401 - fixtures

HI = [{"role": "user", "content": "hi"}]
CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
COUNT = "/v1/messages/count_tokens"

CASES = [
    (CHAT, {"model": DIRECT, "messages": [{"role": {}, "content": "hi"}]}, "messages[0].role"),
    (CHAT, {"model": DIRECT, "messages": HI, "max_tokens": "x"}, "max_tokens"),
    (CHAT, {"model": DIRECT, "messages": HI, "max_tokens": [1]}, "max_tokens"),
    (CHAT, {"model": DIRECT, "messages": HI, "stream": True, "stream_options": "x"}, "stream_options"),
    (CHAT, {"model": DIRECT, "messages": ["x"]}, "messages[0]"),
    (CHAT, {"model": DIRECT, "messages": [{"role": "user", "content": 1.5}]}, "messages[0].content"),
    (CHAT, {"model": DIRECT, "messages": [{"role": "user", "content": [{"text": 3}]}]}, "messages[0].content[0].text"),
    (
        CHAT,
        {"model": DIRECT, "messages": HI, "tools": [{"type": "function", "function": {}}]},
        "tools[0].function.name",
    ),
    (CHAT, {"model": DIRECT, "messages": HI, "response_format": "json"}, "response_format"),
    (CHAT, {"model": DIRECT, "messages": HI, "temperature": "hot"}, "temperature"),
    (CHAT, {"model": DIRECT}, "messages"),
    (MESSAGES, {"model": CLAUDE, "max_tokens": 10, "messages": ["x"]}, "messages[0]"),
    (
        MESSAGES,
        {"model": CLAUDE, "max_tokens": 10, "messages": [{"role": "user", "content": 1.5}]},
        "messages[0].content",
    ),
    (
        MESSAGES,
        {"model": CLAUDE, "max_tokens": 10, "messages": [{"role": "user", "content": [{}]}]},
        "messages[0].content[0].type",
    ),
    (MESSAGES, {"model": CLAUDE, "max_tokens": "x", "messages": HI}, "max_tokens"),
    (MESSAGES, {"model": CLAUDE, "max_tokens": 10, "messages": HI, "system": 7}, "system"),
    (MESSAGES, {"model": CLAUDE, "max_tokens": 10, "messages": HI, "tools": [{"input_schema": {}}]}, "tools[0].name"),
    (MESSAGES, {"model": CLAUDE, "max_tokens": 10, "messages": HI, "tool_choice": "any"}, "tool_choice"),
    (COUNT, {"model": CLAUDE, "messages": ["x"]}, "messages[0]"),
    (COUNT, {"model": CLAUDE, "messages": [{"role": "user", "content": 1.5}]}, "messages[0].content"),
    (COUNT, {"model": CLAUDE, "messages": [{"role": "user", "content": [{}]}]}, "messages[0].content[0].type"),
    ("/v1/classify", {"messages": [{"role": {}, "content": "hi"}]}, "messages[0].role"),
    ("/api/recommend", {"prompt": "hi", "max_tokens": "x"}, "max_tokens"),
]


def post(gateway, key, path: str, body: object) -> httpx.Response:
    return httpx.post(gateway.url + path, json=body, headers={"Authorization": f"Bearer {key}", **CLOUD}, timeout=30)


@pytest.mark.parametrize(("path", "body", "field"), CASES, ids=[f"{p}:{f}" for p, _, f in CASES])
def test_a_wrong_field_type_is_a_400_naming_the_field(gateway, key, upstreams, path, body, field):
    response = post(gateway, key, path, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["message"].startswith(f"{field}: ")
    if path.startswith(MESSAGES):
        assert response.json()["type"] == "error" and error["type"] == "invalid_request_error"
    else:
        assert error["param"] == field and error["type"] == "invalid_request_error"
    assert not any(r.method == "POST" for fake in upstreams for r in fake.requests)  # nothing went upstream


def test_a_handler_bug_is_a_500_logged_as_an_error_with_its_type(gateway, key, monkeypatch, capfd):
    def broken(gw, call):  # noqa: ANN001, ANN202 - stands in for a bug in an endpoint
        return {}["missing"]

    monkeypatch.setitem(app.ROUTES, ("POST", "/v1/classify"), app.Route(broken))
    response = post(gateway, key, "/v1/classify", {"prompt": "hi"})
    assert response.status_code == 500 and response.json()["error"]["code"] == "internal_error"
    assert "KeyError" in response.json()["error"]["message"]
    [row] = [r for r in log_rows(gateway) if r["request_id"] == response.headers["x-r42-request-id"]]
    assert row["status"] == "error" and row["error"] == "internal error (KeyError)"
    assert "internal error (KeyError)" in capfd.readouterr().err


# --- arbitrary JSON never gives a 5xx ------------------------------------------------------------


@pytest.fixture
def no_builtin_model(monkeypatch):
    """Never start llama.cpp for a fuzzed request."""
    from r42 import availability

    monkeypatch.setattr(availability, "builtin_model_installed", lambda: False)


LEAF = (
    st.none()
    | st.booleans()
    | st.integers(-3, 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
JSON = st.recursive(
    LEAF,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
PART = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["text", "image_url", "image", "tool_use", "tool_result"]) | JSON,
        "text": st.text(max_size=20) | JSON,
        "content": JSON,
        "source": JSON,
        "image_url": JSON,
        "input": JSON,
        "id": JSON,
        "name": JSON,
    },
)
MESSAGE = st.fixed_dictionaries(
    {
        "role": st.sampled_from(sorted(ROLES)) | JSON,
        "content": st.text(max_size=30) | st.lists(PART, max_size=3) | JSON,
    },
    optional={
        "tool_calls": JSON | st.lists(st.fixed_dictionaries({}, optional={"id": JSON, "function": JSON}), max_size=2),
        "name": JSON,
        "tool_call_id": JSON,
    },
)
MODEL = st.sampled_from([DIRECT, CLAUDE, "auto", "r42/cost", "anthropic/" + CLAUDE])
FIELDS = {
    "max_tokens": st.integers(0, 50) | JSON,
    "stream": st.booleans() | JSON,
    "stream_options": st.fixed_dictionaries({}, optional={"include_usage": JSON}) | JSON,
    "tools": JSON,
    "tool_choice": JSON,
    "response_format": JSON,
    "system": JSON,
    "temperature": JSON,
    "stop": JSON,
    "stop_sequences": JSON,
    "n": JSON,
    "prompt": JSON,
    "score": JSON,
    "ranking": JSON,
    "mode": JSON,
    "request_id": JSON,
    "verdict": JSON,
}
# Mostly well-formed bodies with some fields of any type (where the crashes were), and anything at all.
BODY = (
    st.fixed_dictionaries(
        {"model": MODEL | JSON, "messages": st.lists(MESSAGE, min_size=1, max_size=2)}, optional=FIELDS
    )
    | st.fixed_dictionaries({}, optional={"model": JSON, "messages": JSON, **FIELDS})
    | JSON
)


ADMIN_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        name: JSON | st.integers(0, 100) for name in ("user", "rpm", "rpd", "budget_usd", "expires", "admin", "key")
    },
)


@pytest.fixture
def admin_key(gateway):
    from r42.store import create_key

    return create_key("root", admin=True).key


@pytest.mark.parametrize("path", [CHAT, MESSAGES, COUNT, "/v1/classify", "/api/recommend", "/v1/feedback"])
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODY)
def test_arbitrary_json_bodies_never_give_a_5xx(gateway, key, upstreams, no_builtin_model, path, body):
    response = post(gateway, key, path, body)
    assert response.status_code < 500, (body, response.text)


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/admin/keys"), ("PATCH", "/v1/admin/keys/{prefix}"), ("PUT", "/v1/me/credentials/openai")],
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=ADMIN_FIELDS | JSON)
def test_arbitrary_json_to_the_admin_and_self_service_apis_never_gives_a_5xx(gateway, admin_key, method, path, body):
    url = gateway.url + path.replace("{prefix}", admin_key[:12])
    response = httpx.request(method, url, json=body, headers={"Authorization": f"Bearer {admin_key}"}, timeout=30)
    assert response.status_code < 500, (body, response.text)
