"""Privacy holds on every path into `r42 serve` (issue 15, item 2): a prompt holding an API key never
reaches a cloud upstream, whether the client names a model or routes, over /v1/chat/completions or
/v1/messages (relayed to Anthropic or translated), streamed or not; nor through `r42 ask --model`.
The upstreams are loopback fakes that record every request they receive."""

from __future__ import annotations

import anthropic
import openai
import orjson
import pytest

from r42.config import load_settings
from r42.server import serve_in_thread
from tests.helpers import run
from tests.test_serve import CLAUDE, DIRECT, gateway, key, upstreams  # noqa: F401 - fixtures

SECRET = "sk-proj-abcdefghijklmnopqrstuvwxyz123456"
PROMPT = f"my key is {SECRET} why does the deploy fail?"
MESSAGES = [{"role": "user", "content": PROMPT}]


@pytest.fixture
def no_builtin_model(monkeypatch):
    """Without r42[local], a routed sensitive prompt has no local model to go to."""
    from r42 import availability

    monkeypatch.setattr(availability, "builtin_model_installed", lambda: False)


def received(*fakes) -> str:
    return "".join(orjson.dumps(r.body).decode() for fake in fakes for r in fake.requests if r.method == "POST")


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("model", [DIRECT, "anthropic/claude-haiku-4-5", "auto", "r42/quality"])
def test_chat_completions_keep_a_key_off_the_cloud(gateway, key, upstreams, no_builtin_model, model, stream):
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=model, messages=MESSAGES, stream=stream)
    assert info.value.body["code"] in ("no_candidate", "no_provider_configured")
    assert "api_key" in info.value.body["message"] and SECRET not in info.value.response.text
    assert received(*upstreams) == ""  # not one byte of the prompt reached a cloud upstream


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(
    "model",
    [CLAUDE, f"anthropic/{CLAUDE}", DIRECT, "auto"],
    ids=["passthrough", "passthrough-id", "translated", "routed"],
)
def test_messages_keep_a_key_off_the_cloud(gateway, key, upstreams, no_builtin_model, model, stream):
    client = anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as info:
        if stream:
            with client.messages.stream(model=model, max_tokens=50, messages=MESSAGES) as events:
                events.get_final_message()
        else:
            client.messages.create(model=model, max_tokens=50, messages=MESSAGES)
    assert info.value.body["error"]["type"] == "invalid_request_error"
    assert received(*upstreams) == ""


def test_the_key_in_a_system_prompt_or_tool_result_counts_too(gateway, key, upstreams, no_builtin_model):
    client = anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)
    turns = [
        {"role": "user", "content": "deploy"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "env", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": f"KEY={SECRET}"}]},
    ]
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model=CLAUDE, max_tokens=50, messages=turns)
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(
            model=CLAUDE, max_tokens=50, system=f"use {SECRET}", messages=[{"role": "user", "content": "go"}]
        )
    assert received(*upstreams) == ""


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_redact_policy_replaces_the_key_before_anthropic_sees_it(monkeypatch, key, upstreams, stream):
    """Under sensitive_policy=redact a Claude model is not relayed untouched (the relay cannot
    redact): the executor sends placeholders and puts the values back into the answer."""
    monkeypatch.setenv("R42_SENSITIVE_POLICY", "redact")
    with serve_in_thread(load_settings()) as running:
        client = anthropic.Anthropic(base_url=running.url, api_key=key, max_retries=0)
        if stream:
            with client.messages.stream(model=CLAUDE, max_tokens=50, messages=MESSAGES) as events:
                events.get_final_message()
        else:
            client.messages.create(model=CLAUDE, max_tokens=50, messages=MESSAGES)
    sent = received(*upstreams)
    assert upstreams[1].requests and SECRET not in sent and "[R42_API_KEY_1]" in sent


def test_allow_policy_lets_a_named_cloud_model_answer(monkeypatch, key, upstreams):
    monkeypatch.setenv("R42_SENSITIVE_POLICY", "allow")
    with serve_in_thread(load_settings()) as running:
        client = openai.OpenAI(base_url=running.url + "/v1", api_key=key, max_retries=0)
        client.chat.completions.create(model=DIRECT, messages=MESSAGES)
    assert SECRET in received(upstreams[0])


@pytest.mark.parametrize("model", [DIRECT, f"anthropic/{CLAUDE}"])
def test_ask_with_a_named_model_keeps_a_key_off_the_cloud(upstreams, no_builtin_model, model):
    result = run(["ask", "--model", model], input=PROMPT)
    assert result.exit_code == 3, result.stderr
    assert "api_key" in result.stderr and received(*upstreams) == ""


TOOL_TURNS = [
    {"role": "user", "content": "deploy"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "env", "arguments": f'{{"OPENAI_API_KEY": "{SECRET}"}}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "done"},
]


@pytest.mark.parametrize("policy", ["local", "redact"])
def test_a_key_in_tool_call_arguments_never_reaches_the_cloud(monkeypatch, key, upstreams, no_builtin_model, policy):
    """The score reads message text; tool arguments are scanned too, and as the redaction cannot
    replace them, even sensitive_policy=redact keeps such a prompt off the cloud."""
    monkeypatch.setenv("R42_SENSITIVE_POLICY", policy)
    with serve_in_thread(load_settings()) as running:
        client = openai.OpenAI(base_url=running.url + "/v1", api_key=key, max_retries=0)
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model=DIRECT, messages=TOOL_TURNS)
    assert "api_key" in info.value.body["message"]
    assert received(*upstreams) == ""


@pytest.mark.parametrize(
    "block",
    [
        {"type": "tool_use", "id": "t1", "name": "env", "input": {"key": SECRET}},
        {
            "type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": f"OPENAI_API_KEY={SECRET}"},
        },
    ],
    ids=["tool_use", "document"],
)
def test_a_key_in_a_relayed_block_never_reaches_anthropic(gateway, key, upstreams, no_builtin_model, block):
    client = anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)
    role = "assistant" if block["type"] == "tool_use" else "user"
    turns = [{"role": "user", "content": "deploy"}, {"role": role, "content": [block]}]
    if role == "assistant":
        turns.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]})
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model=CLAUDE, max_tokens=50, messages=turns)
    assert received(*upstreams) == ""
