"""What the client of `r42 serve` learns when upstreams fail (issue 15, item 8): each attempt in the
error reply, the upstream's Retry-After as it was sent, and a provider key the upstream refused as
a 502 `upstream_authentication` (never a 401 that reads as a wrong gateway key). Loopback fakes
inject the faults; the official SDKs are the clients."""

from __future__ import annotations

import anthropic
import openai
import pytest

from r42.config import load_settings
from r42.server import serve_in_thread
from tests.fakes import faults
from tests.test_serve import CLAUDE, CLOUD, DIRECT, claude, gateway, key, log_rows, oai, upstreams  # noqa: F401 - fixtures

HI = [{"role": "user", "content": "hi"}]


def test_the_error_reply_lists_each_attempt(oai, upstreams):
    upstreams[0].fail(*[faults.status(503)] * 4)
    with pytest.raises(openai.APIStatusError) as info:
        oai.chat.completions.create(model=DIRECT, messages=HI)
    assert info.value.status_code == 502
    error = info.value.body
    assert error["code"] == "all_candidates_failed" and "see the attempts above" not in error["message"]
    assert error["attempts"] and {(a["model"], a["status"], a["kind"]) for a in error["attempts"]} == {
        (DIRECT, 503, "overloaded")
    }
    assert f"{DIRECT}: 503 overloaded" in error["message"]


def test_a_routed_request_names_every_model_it_tried(gateway, key, upstreams):
    upstreams[0].fail(*[faults.status(500)] * 8)
    upstreams[1].fail(*[faults.overloaded()] * 8)
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, default_headers=CLOUD)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="r42/quality", messages=HI)
    attempts = info.value.body["attempts"]
    assert len(attempts) >= 2 and {a["model"].split("/")[0] for a in attempts} == {"openai", "anthropic"}
    assert {a["kind"] for a in attempts} <= {"server_error", "overloaded"}
    assert all(a["model"] in info.value.body["message"] for a in attempts)


def test_upstream_retry_after_reaches_the_client(oai, upstreams):
    upstreams[0].fail(faults.rate_limited(retry_after=60))
    with pytest.raises(openai.RateLimitError) as info:
        oai.chat.completions.create(model=DIRECT, messages=HI)
    assert info.value.response.headers["retry-after"] == "60"
    assert info.value.body["attempts"][0]["kind"] == "rate_limited"


def test_upstream_retry_after_reaches_a_claude_client(claude, upstreams):
    upstreams[1].fail(faults.rate_limited(retry_after=60))
    with pytest.raises(anthropic.RateLimitError) as info:
        claude.messages.create(model=CLAUDE, max_tokens=10, messages=HI)
    assert info.value.response.headers["retry-after"] == "60"
    assert info.value.body["error"]["attempts"][0]["status"] == 429


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_provider_key_the_upstream_refuses_is_a_502(monkeypatch, key, upstreams, stream):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-operator-key-that-expired-0123456789")
    with serve_in_thread(load_settings()) as running:
        client = openai.OpenAI(base_url=running.url + "/v1", api_key=key, max_retries=0)
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(model=DIRECT, messages=HI, stream=stream)
    assert info.value.status_code == 502  # not 401: the client's gateway key is fine
    assert info.value.body["type"] == "upstream_authentication"
    assert info.value.body["attempts"][0]["kind"] == "upstream_authentication"
    assert "sk-operator-key" not in info.value.response.text


def test_a_provider_key_anthropic_refuses_is_a_502_on_messages(monkeypatch, key, upstreams):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-operator-key-that-expired-0123456789")
    with serve_in_thread(load_settings()) as running:
        client = anthropic.Anthropic(base_url=running.url, api_key=key, max_retries=0)
        with pytest.raises(anthropic.APIStatusError) as info:
            client.messages.create(model=CLAUDE, max_tokens=10, messages=HI)
    assert info.value.status_code == 502 and not isinstance(info.value, anthropic.AuthenticationError)
    assert info.value.body["error"]["type"] == "upstream_authentication"
    assert "sk-ant-operator" not in info.value.response.text
