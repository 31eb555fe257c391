"""r42's provider adapters (and the real SDKs inside them) against loopback fakes of each protocol."""

from __future__ import annotations

import base64
import subprocess
import sys

import orjson
import pytest

from r42.providers import Endpoint, ProviderError, open_adapter, retry_after_of
from tests.fakes import AnthropicFake, GeminiFake, OllamaFake, OpenAIFake, faults

KEY = "sk-secret-test-key-0123456789"
REPLY = "Paris is the capital of France."
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
PIXEL = "data:image/png;base64," + base64.b64encode(b"\x89PNG fake pixel").decode()

FAKES = {"openai": OpenAIFake, "anthropic": AnthropicFake, "gemini": GeminiFake, "ollama": OllamaFake}


@pytest.fixture(params=sorted(FAKES))
def wire(request):
    """(protocol, running fake, adapter pointed at it)."""
    protocol = request.param
    with FAKES[protocol](reply=REPLY, api_key=None if protocol == "ollama" else KEY) as server:
        base = server.base_url
        adapter = open_adapter(
            Endpoint(protocol, protocol, base, None if protocol == "ollama" else KEY, connect_timeout=2, read_timeout=1)
        )
        yield protocol, server, adapter
        adapter.close()


def ask(adapter, messages, stream=False, **extra):
    request = {"model": "fake-model", "messages": messages, **extra}
    if not stream:
        return adapter.complete(request)
    return list(adapter.stream(request))


def streamed_text(chunks) -> str:
    return "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c["choices"])


def streamed_calls(chunks) -> list[dict]:
    calls: dict[int, dict] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            for call in choice["delta"].get("tool_calls") or []:
                slot = calls.setdefault(call["index"], {"id": "", "name": "", "arguments": ""})
                slot["id"] = call.get("id") or slot["id"]
                slot["name"] += call.get("function", {}).get("name", "")
                slot["arguments"] += call.get("function", {}).get("arguments", "")
    return [calls[i] for i in sorted(calls)]


def test_answer_is_an_openai_completion(wire):
    _, _, adapter = wire
    response = ask(adapter, [{"role": "user", "content": "What is the capital of France?"}])
    assert response["object"] == "chat.completion"
    choice = response["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"] == REPLY
    assert choice["finish_reason"] == "stop"
    assert response["usage"]["completion_tokens"] == len(REPLY.split())
    assert response["usage"]["prompt_tokens"] == 6


def test_stream_is_openai_chunks_with_usage_last(wire):
    _, _, adapter = wire
    chunks = ask(adapter, [{"role": "user", "content": "What is the capital of France?"}], stream=True)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert streamed_text(chunks) == REPLY
    assert len([c for c in chunks if streamed_text([c])]) > 1  # really streamed, not one lump
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finishes == ["stop"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == len(REPLY.split())


def test_system_prompt_and_history_reach_the_wire(wire):
    protocol, server, adapter = wire
    messages = [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "Capital of Italy?"},
        {"role": "assistant", "content": "Rome."},
        {"role": "user", "content": "And of France?"},
    ]
    ask(adapter, messages)
    body = server.requests[-1].json
    if protocol == "openai":
        assert body["messages"] == messages
    elif protocol == "anthropic":
        assert body["system"] == "Answer in one word."
        assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
        assert body["messages"][2]["content"] == [{"type": "text", "text": "And of France?"}]
    elif protocol == "gemini":
        assert body["systemInstruction"] == {"parts": [{"text": "Answer in one word."}]}
        assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
        assert body["contents"][1]["parts"] == [{"text": "Rome."}]
    else:
        assert [(m["role"], m["content"]) for m in body["messages"]] == [(m["role"], m["content"]) for m in messages]


def test_settings_reach_the_wire(wire):
    protocol, server, adapter = wire
    ask(
        adapter,
        [{"role": "user", "content": "List three colours as JSON"}],
        max_tokens=50,
        temperature=0.2,
        stop=["END"],
        response_format={"type": "json_object"},
    )
    body = server.requests[-1].json
    if protocol == "openai":
        assert (body["max_tokens"], body["temperature"], body["stop"], body["response_format"]) == (
            50,
            0.2,
            ["END"],
            {"type": "json_object"},
        )
    elif protocol == "anthropic":
        assert (body["max_tokens"], body["temperature"], body["stop_sequences"]) == (50, 0.2, ["END"])
        assert "JSON" in body["system"]  # Anthropic has no JSON mode: asked for in the system prompt
    elif protocol == "gemini":
        config = body["generationConfig"]
        assert (
            config["maxOutputTokens"],
            config["temperature"],
            config["stopSequences"],
            config["responseMimeType"],
        ) == (50, 0.2, ["END"], "application/json")
    else:
        assert body["options"] == {"temperature": 0.2, "num_predict": 50, "stop": ["END"]}
        assert body["format"] == "json"


def test_images_reach_the_wire(wire):
    protocol, server, adapter = wire
    content = [{"type": "text", "text": "What is in this picture?"}, {"type": "image_url", "image_url": {"url": PIXEL}}]
    ask(adapter, [{"role": "user", "content": content}])
    body = server.requests[-1].json
    data = PIXEL.split(",", 1)[1]
    if protocol == "openai":
        assert body["messages"][0]["content"] == content
    elif protocol == "anthropic":
        assert body["messages"][0]["content"][1] == {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": data},
        }
    elif protocol == "gemini":
        inline = body["contents"][0]["parts"][1]["inlineData"]  # the SDK writes mime_type; the API takes both spellings
        assert inline["data"] == data and (inline.get("mimeType") or inline.get("mime_type")) == "image/png"
    else:
        assert body["messages"][0]["images"] == [data]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_tool_call_round_trip(wire, stream):
    protocol, server, adapter = wire
    question = [{"role": "user", "content": "What's the weather in Paris?"}]
    first = ask(adapter, question, stream=stream, tools=TOOLS)
    if stream:
        calls = streamed_calls(first)
        assert [c["name"] for c in calls] == ["get_weather"]
        assert orjson.loads(calls[0]["arguments"]) == {"city": "Paris"}
        call_id = calls[0]["id"]
        finishes = [
            c["choices"][0]["finish_reason"] for c in first if c["choices"] and c["choices"][0]["finish_reason"]
        ]
        assert finishes == ["tool_calls"]
    else:
        message = first["choices"][0]["message"]
        assert first["choices"][0]["finish_reason"] == "tool_calls"
        assert message["tool_calls"][0]["function"]["name"] == "get_weather"
        assert orjson.loads(message["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
        call_id = message["tool_calls"][0]["id"]
    assert call_id
    tool_call = {
        "id": call_id,
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    follow_up = question + [
        {"role": "assistant", "content": None, "tool_calls": [tool_call]},
        {"role": "tool", "tool_call_id": call_id, "content": "18C and sunny"},
    ]
    second = ask(adapter, follow_up, stream=stream, tools=TOOLS)
    text = streamed_text(second) if stream else second["choices"][0]["message"]["content"]
    assert text == "The tool said: 18C and sunny"
    body = server.requests[-1].json
    if protocol == "anthropic":
        assert body["messages"][1]["content"] == [
            {"type": "tool_use", "id": call_id, "name": "get_weather", "input": {"city": "Paris"}}
        ]
        assert body["messages"][2]["content"] == [
            {"type": "tool_result", "tool_use_id": call_id, "content": "18C and sunny"}
        ]
        assert body["tools"][0]["input_schema"] == TOOLS[0]["function"]["parameters"]
    elif protocol == "gemini":
        assert body["contents"][1]["parts"][0]["functionCall"]["name"] == "get_weather"
        assert body["contents"][2]["parts"][0]["functionResponse"]["name"] == "get_weather"
        assert body["contents"][2]["parts"][0]["functionResponse"]["response"] == {"result": "18C and sunny"}
    elif protocol == "ollama":
        assert body["messages"][1]["tool_calls"] == [
            {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
        ]
        assert body["messages"][2] == {"role": "tool", "content": "18C and sunny", "tool_name": "get_weather"}
    else:
        assert body["messages"][2] == follow_up[2]


RETRYABLE_FAULTS = {
    "500": faults.status(500),
    "503": faults.status(503),
    "429": faults.rate_limited(retry_after=7),
    "reset": faults.reset_mid_stream(after=2),
    "truncated": faults.truncated_stream(after=2),
    "malformed": faults.malformed_json(),
    "slow": faults.slow_first_byte(30),
    "context": faults.context_too_long(),
}


STREAM_ONLY_FAULTS = ("reset", "truncated")  # a connection cut or a stream ending early mid-stream
FAULT_CASES = [
    (name, stream)
    for name in sorted(RETRYABLE_FAULTS)
    for stream in (False, True)
    if stream or name not in STREAM_ONLY_FAULTS
]


@pytest.mark.parametrize("name, stream", FAULT_CASES, ids=[f"{n}-{'stream' if s else 'json'}" for n, s in FAULT_CASES])
def test_faults_are_retryable_provider_errors(wire, name, stream):
    _, server, adapter = wire
    server.fail(RETRYABLE_FAULTS[name])
    with pytest.raises(ProviderError) as caught:
        ask(adapter, [{"role": "user", "content": "hi"}], stream=stream)
    assert caught.value.retryable, caught.value
    if name in ("500", "503", "429"):
        assert caught.value.status == int(name)
    if name == "429" and server.name != "ollama":
        assert caught.value.retry_after in (7, 1)  # Retry-After header, or Gemini's RetryInfo (1s)
    if name in ("reset", "slow"):
        assert caught.value.status is None


def test_overloaded_is_retryable(wire):
    _, server, adapter = wire
    server.fail(faults.overloaded())
    with pytest.raises(ProviderError) as caught:
        ask(adapter, [{"role": "user", "content": "hi"}], stream=True)
    assert caught.value.retryable and caught.value.status == 529


def test_other_4xx_are_not_retryable(wire):
    protocol, server, adapter = wire
    server.fail(faults.status(400) if protocol != "ollama" else faults.status(400, body={"error": "invalid options"}))
    with pytest.raises(ProviderError) as caught:
        ask(adapter, [{"role": "user", "content": "hi"}])
    assert caught.value.status == 400 and not caught.value.retryable


def test_secrets_never_appear_in_errors(wire):
    protocol, server, adapter = wire
    server.fail(
        faults.status(
            401, body={"error": {"message": f"Incorrect API key provided: {KEY}", "type": "invalid_request_error"}}
        )
    )
    with pytest.raises(ProviderError) as caught:
        ask(adapter, [{"role": "user", "content": "hi"}])
    assert KEY not in str(caught.value) and KEY not in repr(caught.value)
    assert KEY not in repr(adapter.endpoint)


def test_connection_refused_is_retryable():
    for protocol in FAKES:
        adapter = open_adapter(
            Endpoint(protocol, protocol, "http://127.0.0.1:9", KEY, connect_timeout=1, read_timeout=1)
        )
        with pytest.raises(ProviderError) as caught:
            adapter.complete({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        assert caught.value.retryable and caught.value.status is None, protocol


def test_retry_after_forms():
    assert retry_after_of({"retry-after": "3"}) == 3
    assert retry_after_of({"retry-after-ms": "250"}) == 0.25
    assert retry_after_of({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0
    assert retry_after_of({"retry-after": "soon"}) is None
    assert retry_after_of({}) is None


def test_score_and_rank_never_import_an_sdk():
    code = (
        "import sys, io\n"
        "from click.testing import CliRunner\n"
        "from r42.cli import cli\n"
        "for command in ('score', 'rank'):\n"
        "    CliRunner().invoke(cli, [command], input='hello there')\n"
        "loaded = [m for m in ('anthropic', 'google.genai', 'ollama', 'openai', 'r42.providers') if m in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
