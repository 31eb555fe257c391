"""`r42 serve` with the official OpenAI and Anthropic SDKs as clients, against loopback fakes of the
upstreams (tests.fakes). The gateway runs in-process on 127.0.0.1 with a real gateway key."""

from __future__ import annotations

import threading

import anthropic
import httpx
import openai
import orjson
import pytest

from r42.config import load_settings
from r42.server import serve_in_thread
from r42.server.http import ServerLimits
from tests.fakes import AnthropicFake, OpenAIFake, faults
from tests.fakes.anthropic import sse

REPLY = "Paris is the capital of France."
CLAUDE_REPLY = "Bonjour from Claude."
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
ANTHROPIC_TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]
DIRECT = "openai/gpt-4o-mini"
CLAUDE = "claude-haiku-4-5"
CLOUD = {"X-R42-Force-Route": "cloud"}  # the built-in local model may be installed: keep routing on the fakes


class ThinkingFake(AnthropicFake):
    """Answers with a thinking block carrying a signature, as Claude does with extended thinking."""

    def handle(self, http, request, fault):  # noqa: ANN001
        body = request.json
        content = [
            {"type": "thinking", "thinking": "Let me think.", "signature": "sig-opaque-123=="},
            {"type": "text", "text": CLAUDE_REPLY},
        ]
        if not body.get("stream"):
            message = {
                "id": "msg_t",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": content,
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 5, "output_tokens": 7},
            }
            http.send_json(200, message)
            return
        start = {
            "id": "msg_t",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 5, "output_tokens": 1},
        }
        events = [
            sse("message_start", {"type": "message_start", "message": start}),
            sse("ping", {"type": "ping"}),
            sse(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "thinking", "thinking": "", "signature": ""},
                },
            ),
            sse(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "thinking_delta", "thinking": "Let me think."},
                },
            ),
            sse(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "signature_delta", "signature": "sig-opaque-123=="},
                },
            ),
            sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
            sse(
                "content_block_start",
                {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
            ),
            sse(
                "content_block_delta",
                {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": CLAUDE_REPLY}},
            ),
            sse("content_block_stop", {"type": "content_block_stop", "index": 1}),
            sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": 7},
                },
            ),
            sse("message_stop", {"type": "message_stop"}),
        ]
        http.start_stream("text/event-stream")
        http.stream_events(events, fault)


@pytest.fixture
def upstreams(monkeypatch):
    with (
        OpenAIFake(reply=REPLY, api_key="sk-upstream-openai") as oa,
        AnthropicFake(reply=CLAUDE_REPLY, api_key="sk-upstream-anthropic") as an,
    ):
        for fake in (oa, an):  # http.server listens with a backlog of 5: 64 parallel connects overflow it
            fake._httpd.socket.listen(256)
        monkeypatch.setenv("OPENAI_BASE_URL", oa.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-upstream-openai")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", an.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-upstream-anthropic")
        yield oa, an


@pytest.fixture
def gateway(upstreams):
    limits = ServerLimits(max_body=256 * 1024, max_concurrency=128, grace=5)
    with serve_in_thread(load_settings(), limits=limits) as running:
        yield running


@pytest.fixture
def key(gateway):
    from r42.store import create_key

    return create_key("alice").key


@pytest.fixture
def oai(gateway, key):
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)


@pytest.fixture
def claude(gateway, key):
    return anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)


def log_rows(gateway):
    from r42.store import read_routes

    gateway.gateway.log.flush()
    return read_routes()


# --- OpenAI ---------------------------------------------------------------------------------------


def test_direct_model_answers_with_route_headers(oai):
    raw = oai.chat.completions.with_raw_response.create(
        model=DIRECT, messages=[{"role": "user", "content": "What is the capital of France?"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == REPLY
    assert completion.model == DIRECT == raw.headers["x-r42-model"]
    assert (
        raw.headers["x-r42-request-id"].startswith("req_") and "," not in raw.headers["x-r42-request-id"]
    )  # sent once
    assert 0.0 <= float(raw.headers["x-r42-complexity"]) <= 1.0
    assert completion.usage.completion_tokens == len(REPLY.split())


def test_alias_routes_and_names_the_model_that_answered(oai, upstreams):
    for alias in ("auto", "r42", "route42", "r42/cost", "r42/quality"):
        raw = oai.chat.completions.with_raw_response.create(
            model=alias, messages=[{"role": "user", "content": "hi"}], extra_headers=CLOUD
        )
        completion = raw.parse()
        assert completion.model == raw.headers["x-r42-model"]
        assert completion.model.split("/")[0] in ("openai", "anthropic")
        assert raw.headers["x-r42-mode"] == (alias.split("/")[1] if "/" in alias else "auto")


def test_mode_header_and_bad_routing_inputs(oai):
    raw = oai.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "hi"}], extra_headers={**CLOUD, "X-R42-Mode": "cost"}
    )
    assert raw.headers["x-r42-mode"] == "cost"
    with pytest.raises(openai.BadRequestError, match="unknown routing mode"):
        oai.chat.completions.create(model="r42/fastest", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="X-R42-Force-Route"):
        oai.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "hi"}], extra_headers={"X-Force-Route": "moon"}
        )
    with pytest.raises(openai.NotFoundError) as info:
        oai.chat.completions.create(model="nosuchprovider/model-x", messages=[{"role": "user", "content": "hi"}])
    assert info.value.body["code"] == "model_not_found"


def test_stream_with_and_without_usage(oai):
    chunks = list(
        oai.chat.completions.create(
            model=DIRECT,
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == len(REPLY.split())
    assert {c.model for c in chunks} == {DIRECT}
    plain = list(oai.chat.completions.create(model=DIRECT, messages=[{"role": "user", "content": "hi"}], stream=True))
    assert all(c.usage is None for c in plain) and all(c.choices for c in plain)


def test_stream_wire_format_ends_with_done(gateway, key):
    body = {"model": DIRECT, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    response = httpx.post(gateway.url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-r42-model"] == DIRECT
    events = [line for line in response.text.split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith("data: ") for e in events)


@pytest.mark.parametrize("stream", [False, True])
def test_tool_round_trip(oai, stream):
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    if stream:
        calls: dict = {}
        for chunk in oai.chat.completions.create(model=DIRECT, messages=messages, tools=TOOLS, stream=True):
            for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                slot = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                slot["id"] = call.id or slot["id"]
                slot["name"] += (call.function.name or "") if call.function else ""
                slot["arguments"] += (call.function.arguments or "") if call.function else ""
        call = calls[0]
        call_id, name, arguments = call["id"], call["name"], call["arguments"]
    else:
        message = oai.chat.completions.create(model=DIRECT, messages=messages, tools=TOOLS).choices[0].message
        call_id, name, arguments = (
            message.tool_calls[0].id,
            message.tool_calls[0].function.name,
            message.tool_calls[0].function.arguments,
        )
    assert name == "get_weather" and orjson.loads(arguments) == {"city": "Paris"}
    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "sunny, 21 C"},
    ]
    answer = oai.chat.completions.create(model=DIRECT, messages=messages, tools=TOOLS)
    assert answer.choices[0].message.content == "The tool said: sunny, 21 C"


def test_json_mode_reaches_the_upstream(oai, upstreams):
    oai.chat.completions.create(
        model=DIRECT,
        messages=[{"role": "user", "content": "a JSON object please"}],
        response_format={"type": "json_object"},
    )
    assert upstreams[0].requests[-1].json["response_format"] == {"type": "json_object"}


def test_upstream_errors_map_to_openai_errors(oai, upstreams):
    oa, _ = upstreams
    oa.fail(faults.bad_request())
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(model=DIRECT, messages=[{"role": "user", "content": "hi"}])
    assert info.value.body["code"] == "upstream_rejected"
    assert info.value.response.headers["x-r42-request-id"] == info.value.response.json()["request_id"]
    oa.fail(faults.status(503), faults.status(503), faults.status(503), faults.status(503))
    with pytest.raises(openai.APIStatusError) as info:
        oai.chat.completions.create(model=DIRECT, messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 502


def test_mid_stream_failure_is_an_sse_error_event(gateway, key, upstreams):
    upstreams[0].fail(faults.reset_mid_stream(after=3))
    body = {"model": DIRECT, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    response = httpx.post(gateway.url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    last = [e for e in response.text.split("\n\n") if e][-1]
    error = orjson.loads(last.removeprefix("data: "))
    assert error["error"]["code"] == "upstream_stream_broken" and error["request_id"].startswith("req_")
    rows = log_rows(gateway)
    assert rows[-1]["status"] == "error" and rows[-1]["error"] == "StreamBrokenError"


def test_sixty_four_parallel_streams(oai, gateway):
    results: list[str] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            stream = oai.chat.completions.create(
                model=DIRECT, messages=[{"role": "user", "content": "hi"}], stream=True
            )
            results.append("".join(c.choices[0].delta.content or "" for c in stream if c.choices))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, [row["attempts"] for row in log_rows(gateway) if row["status"] != "ok"][:3]
    assert results == [REPLY] * 64


def test_every_request_is_logged_without_the_prompt(oai, gateway):
    secret_prompt = "my very private prompt about zebras"
    oai.chat.completions.create(model=DIRECT, messages=[{"role": "user", "content": secret_prompt}])
    rows = log_rows(gateway)
    assert (
        rows[-1]["endpoint"] == "/v1/chat/completions" and rows[-1]["model"] == DIRECT and rows[-1]["user"] == "alice"
    )
    assert rows[-1]["request_id"].startswith("req_")
    assert "zebras" not in orjson.dumps(rows).decode()
    assert "zebras" not in httpx.get(gateway.url + "/").text


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_chat_completions_for_an_sdk_protocol_model_run_on_a_worker(oai, upstreams, stream):
    """OpenAI-protocol upstreams are awaited on the event loop; an Anthropic model goes through
    its SDK adapter on a worker thread, with the same answer shape."""
    model = "anthropic/claude-haiku-4-5"
    if stream:
        chunks = list(
            oai.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], stream=True)
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert {c.model for c in chunks} == {model}
    else:
        answer = oai.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        text = answer.choices[0].message.content
        assert answer.model == model
    assert text == CLAUDE_REPLY
    assert upstreams[1].requests and not upstreams[0].requests


# --- Anthropic ------------------------------------------------------------------------------------


def test_messages_to_anthropic_pass_through(claude, upstreams):
    _, an = upstreams
    message = claude.messages.create(
        model=CLAUDE,
        max_tokens=100,
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14", "anthropic-version": "2023-06-01"},
    )
    assert message.content[0].text == CLAUDE_REPLY
    assert message.model == f"anthropic/{CLAUDE}"
    sent = an.requests[-1]
    assert sent.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["x-api-key"] == "sk-upstream-anthropic"  # the upstream key, never the gateway key
    assert sent.json["model"] == CLAUDE


def test_messages_stream_grammar(gateway, key, upstreams):
    body = {"model": CLAUDE, "max_tokens": 100, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(
        gateway.url + "/v1/messages", json=body, headers={"x-api-key": key, "anthropic-version": "2023-06-01"}
    )
    names = [block.split("\n")[0].removeprefix("event: ") for block in response.text.split("\n\n") if block]
    assert names[:2] == ["message_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    assert "content_block_start" in names and "content_block_delta" in names and "content_block_stop" in names


@pytest.mark.parametrize("stream", [False, True])
def test_thinking_blocks_and_signatures_pass_untouched(monkeypatch, key, stream):
    with ThinkingFake() as fake:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-upstream-anthropic")
        with serve_in_thread(load_settings()) as running:
            client = anthropic.Anthropic(base_url=running.url, api_key=key, max_retries=0)
            params = {
                "model": CLAUDE,
                "max_tokens": 2000,
                "messages": [{"role": "user", "content": "think"}],
                "thinking": {"type": "enabled", "budget_tokens": 1024},
            }
            if stream:
                with client.messages.stream(**params) as events:
                    message = events.get_final_message()
            else:
                message = client.messages.create(**params)
        assert fake.requests[-1].json["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert message.content[0].type == "thinking" and message.content[0].signature == "sig-opaque-123=="
    assert message.content[1].text == CLAUDE_REPLY


@pytest.mark.parametrize("stream", [False, True])
def test_messages_translated_for_an_openai_model_with_tools(claude, stream):
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    params = {"model": DIRECT, "max_tokens": 200, "tools": ANTHROPIC_TOOLS}
    if stream:
        with claude.messages.stream(messages=messages, **params) as events:
            message = events.get_final_message()
    else:
        message = claude.messages.create(messages=messages, **params)
    assert message.stop_reason == "tool_use" and message.model == DIRECT
    call = message.content[-1]
    assert call.type == "tool_use" and call.name == "get_weather" and call.input == {"city": "Paris"}
    messages += [
        {"role": "assistant", "content": [{"type": "tool_use", "id": call.id, "name": call.name, "input": call.input}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}]},
    ]
    answer = claude.messages.create(messages=messages, **params)
    assert answer.content[0].text == "The tool said: sunny"


def test_messages_stream_translated_text(claude, gateway):
    with claude.messages.stream(model=DIRECT, max_tokens=100, messages=[{"role": "user", "content": "hi"}]) as events:
        text = "".join(events.text_stream)
        final = events.get_final_message()
        request_id = events.response.headers["x-r42-request-id"]
    assert text == REPLY and final.usage.output_tokens == len(REPLY.split())
    [row] = [r for r in log_rows(gateway) if r["request_id"] == request_id]  # a stream on a worker is logged whole
    assert row["status"] == "ok" and row["model"] == DIRECT and row["output_tokens"] == len(REPLY.split())


def test_anthropic_errors_are_anthropic_shaped(claude, gateway, upstreams):
    _, an = upstreams
    an.fail(faults.bad_request())
    with pytest.raises(anthropic.BadRequestError) as info:
        claude.messages.create(model=CLAUDE, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert info.value.body["type"] == "error" and info.value.body["request_id"].startswith("req_")
    bad = anthropic.Anthropic(base_url=gateway.url, api_key="r42_wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as info:
        bad.messages.create(model=CLAUDE, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert info.value.body["error"]["type"] == "authentication_error"


def test_anthropic_fallback_to_next_candidate_when_claude_is_overloaded(gateway, key, upstreams):
    _, an = upstreams
    an.fail(*[faults.overloaded()] * 8)
    client = anthropic.Anthropic(
        base_url=gateway.url, api_key=key, max_retries=0, default_headers={"X-R42-Mode": "quality", **CLOUD}
    )
    message = client.messages.create(model="auto", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    assert message.content[0].text in (REPLY, CLAUDE_REPLY)


def test_anthropic_pass_through_follows_the_executors_retry_after_policy(claude, gateway, upstreams):
    """One fallback policy: a short Retry-After from Anthropic is waited out and the same model
    tried again, as the executor does, and both attempts are in the routing log."""
    _, an = upstreams
    an.fail(faults.rate_limited(retry_after=0))
    raw = claude.messages.with_raw_response.create(
        model=CLAUDE, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.parse().content[0].text == CLAUDE_REPLY
    [row] = [r for r in log_rows(gateway) if r["request_id"] == raw.headers["x-r42-request-id"]]
    assert [(a["ok"], a["status"]) for a in row["attempts"]] == [(False, 429), (True, 200)]


def test_count_tokens(claude):
    counted = claude.messages.count_tokens(
        model=CLAUDE, messages=[{"role": "user", "content": "hello there my friend"}]
    )
    assert counted.input_tokens > 0


# --- the other endpoints --------------------------------------------------------------------------


def test_models_in_openai_and_anthropic_shapes(oai, claude):
    ids = [m.id for m in oai.models.list()]
    assert ids[:3] == ["auto", "r42", "route42"]
    assert "r42/cost" in ids and "r42/coding" in ids and DIRECT in ids
    assert not any(i.startswith("gemini/") for i in ids)  # no credential for it
    listed = claude.models.list()
    assert listed.data[0].type == "model" and listed.data[0].id == "auto"


def test_classify_and_recommend(gateway, key):
    headers = {"Authorization": f"Bearer {key}"}
    scored = httpx.post(
        gateway.url + "/v1/classify", json={"prompt": "Prove that sqrt 2 is irrational", "id": 7}, headers=headers
    ).json()
    assert scored["id"] == 7 and scored["score"]["domain"] == "math"
    ranked = httpx.post(
        gateway.url + "/api/recommend?top=3", json={"prompt": "hi"}, headers={**headers, "X-R42-Mode": "cost", **CLOUD}
    ).json()
    assert ranked["ranking"]["mode"] == "cost" and len(ranked["ranking"]["candidates"]) <= 3
    text = httpx.post(
        gateway.url + "/v1/classify", content=b"write a poem", headers={**headers, "Content-Type": "text/plain"}
    ).json()
    assert text["messages"][0]["content"] == "write a poem"


def test_health_status_and_metrics(oai, gateway, key):
    oai.chat.completions.create(model=DIRECT, messages=[{"role": "user", "content": "hi"}])
    health = httpx.get(gateway.url + "/health").json()
    assert health["status"] == "ok" and health["providers"]["openai"] is True and health["providers"]["gemini"] is False
    page = httpx.get(gateway.url + "/")
    assert page.status_code == 200 and DIRECT in page.text and "sk-upstream" not in page.text and key not in page.text
    assert httpx.get(gateway.url + "/metrics").status_code == 401
    text = httpx.get(gateway.url + "/metrics", headers={"Authorization": f"Bearer {key}"}).text
    assert 'r42_requests_total{endpoint="/v1/chat/completions",status="200"} 1' in text
    assert f'r42_tokens_total{{model="{DIRECT}",direction="output"}}' in text
    assert 'r42_request_duration_seconds_bucket{endpoint="/v1/chat/completions",le="+Inf"} 1' in text


# --- feedback -------------------------------------------------------------------------------------


def test_feedback_rates_your_own_answers_and_teaches_your_ranking(oai, gateway, key):
    from r42.store import create_key

    raw = oai.chat.completions.with_raw_response.create(
        model=DIRECT, messages=[{"role": "user", "content": "Solve 3x + 7 = 22 for x."}]
    )
    request_id = raw.headers["x-r42-request-id"]
    log_rows(gateway)  # the row must be written before it can be rated
    url = gateway.url + "/v1/feedback"
    bob = create_key("bob").key
    assert (
        httpx.post(
            url, json={"request_id": request_id, "verdict": "bad"}, headers={"Authorization": f"Bearer {bob}"}
        ).status_code
        == 404
    )
    assert (
        httpx.post(
            url, json={"request_id": request_id, "verdict": "meh"}, headers={"Authorization": f"Bearer {key}"}
        ).status_code
        == 400
    )
    assert httpx.post(url, json={"request_id": request_id, "verdict": "bad"}).status_code == 401
    for _ in range(8):
        answer = httpx.post(
            url,
            json={"request_id": request_id, "verdict": "bad", "reason": "wrong"},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert answer.status_code == 200 and answer.json()["model"] == DIRECT, (
            answer.text,
            [(r["request_id"], r["user"], r["model"]) for r in log_rows(gateway)],
        )
    learned = gateway.gateway.router_for("alice").learned("alice", answer.json()["domain"])
    assert learned[DIRECT].value < -0.2
    assert gateway.gateway.router_for("bob").learned("bob", answer.json()["domain"]) == {}
