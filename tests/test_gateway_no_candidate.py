""" "No model can serve this" is a 4xx that clients do not retry, in the API's own shape, saying what
is missing (issue 15, item 7). The SDKs keep their default retries (2): a 5xx would come back three
times, a 4xx once. The gateway runs on loopback with no provider key; only the built-in model is
configured (as on a fresh install with r42[local]; it is never started here, as it cannot serve
any of these requests)."""

from __future__ import annotations

import anthropic
import openai
import pytest

from r42.config import load_settings
from r42.server import serve_in_thread
from tests.test_serve import TOOLS, log_rows

BUILTIN = "local/smollm2-135m-instruct"
# A Claude Code-sized request: a long system prompt and tool definitions, far past 8,192 tokens.
SYSTEM = "You are a coding agent. Follow the repository's conventions. " * 3000
ANTHROPIC_TOOL = {
    "name": "Bash",
    "description": "Run a command",
    "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
}


@pytest.fixture
def bare(monkeypatch):
    """A gateway with no provider configured but the built-in model, which clients may use."""
    from r42 import availability
    from r42.store import create_key

    monkeypatch.setattr(availability, "builtin_model_installed", lambda: True)
    monkeypatch.setenv("R42_SERVE_BUILTIN_LOCAL", "1")  # the operator lets clients use it
    with serve_in_thread(load_settings()) as running:
        yield running, create_key("alice").key


def requests_logged(running) -> int:
    return len(log_rows(running))


@pytest.mark.parametrize("model", ["auto", "r42/coding"])
def test_a_request_too_long_for_every_configured_model_is_a_400(bare, model):
    running, key = bare
    client = anthropic.Anthropic(base_url=running.url, api_key=key)  # default retries
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(
            model=model,
            max_tokens=1024,
            system=SYSTEM,
            tools=[ANTHROPIC_TOOL],
            messages=[{"role": "user", "content": "fix the failing test"}],
        )
    error = info.value.body["error"]
    assert info.value.body["type"] == "error" and error["type"] == "invalid_request_error"
    assert "tokens of context; the largest configured model" in error["message"]
    assert f"the built-in model {BUILTIN}) takes 8,192" in error["message"]
    assert "set ANTHROPIC_API_KEY" in error["message"]
    assert requests_logged(running) == 1  # not retried


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"])
def test_a_named_model_without_a_credential_says_what_to_set(bare, model):
    running, key = bare
    client = openai.OpenAI(base_url=running.url + "/v1", api_key=key)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert info.value.body["code"] == "no_provider_configured"
    variable = "OPENAI_API_KEY" if model.startswith("openai") else "ANTHROPIC_API_KEY"
    assert f"set {variable}" in info.value.body["message"]
    assert info.value.body["attempts"][0]["kind"] == "not_configured"
    assert requests_logged(running) == 1


def test_a_claude_model_without_a_credential_on_messages(bare):
    running, key = bare
    client = anthropic.Anthropic(base_url=running.url, api_key=key)
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert "set ANTHROPIC_API_KEY" in info.value.body["error"]["message"]
    assert requests_logged(running) == 1


@pytest.mark.parametrize(
    ("extra", "lacking"),
    [
        ({"response_format": {"type": "json_object"}}, "JSON mode"),
        ({"tools": TOOLS}, "tool support"),
    ],
    ids=["json", "tools"],
)
def test_what_the_built_in_model_lacks_through_auto(bare, extra, lacking):
    running, key = bare
    client = openai.OpenAI(base_url=running.url + "/v1", api_key=key)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "a JSON list of 3 colours"}], **extra
        )
    message = info.value.body["message"]
    assert f"it needs {lacking}, which the built-in model {BUILTIN} lacks" in message, message
    assert "set " in message  # and what to configure instead
    assert requests_logged(running) == 1
