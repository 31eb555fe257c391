"""The executor against loopback fakes reached through the providers' base-URL variables:
fallback order, what moves on and what stops, Retry-After, limits, streaming fallback, cost."""

from __future__ import annotations

import asyncio

import pytest

from r42.catalog import load_catalog
from r42.executor import CandidatesFailed, Executor, Limits, StreamBrokenError
from r42.formats.openai import answer_text
from tests.fakes import AnthropicFake, GeminiFake, OllamaFake, OpenAIFake, faults

A = "openai/gpt-4o-mini"
B = "groq/deepseek-r1-distill-llama-70b"
C = "mistral/codestral-latest"
QUESTION = {"messages": [{"role": "user", "content": "What is the capital of France?"}]}


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


@pytest.fixture
def servers(monkeypatch):
    """Three OpenAI-compatible fakes configured as openai, groq and mistral."""
    with (
        OpenAIFake(reply="Answer from A.") as a,
        OpenAIFake(reply="Answer from B.") as b,
        OpenAIFake(reply="Answer from C.") as c,
    ):
        for key, url_var, server in (
            ("OPENAI_API_KEY", "OPENAI_BASE_URL", a),
            ("GROQ_API_KEY", "R42_GROQ_BASE_URL", b),
            ("MISTRAL_API_KEY", "R42_MISTRAL_BASE_URL", c),
        ):
            monkeypatch.setenv(key, "sk-test")
            monkeypatch.setenv(url_var, server.base_url)
        yield a, b, c


class Sleeps(list):
    """Records the waits the executor asks for instead of waiting (the executor's clock is injected)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


class OnLoop:
    """An Executor driven through complete_async / stream_async (what r42 serve uses), each call
    on an event loop of its own, behind the blocking interface the tests use. Candidates the
    async path cannot serve go to the blocking methods, as in the gateway."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.sleep = executor.sleep

        async def recorded(seconds: float) -> None:
            executor.sleep(seconds)

        executor.async_sleep = recorded

    def complete(self, request, candidates):
        if not self.executor.runs_async(candidates):
            return self.executor.complete(request, candidates)
        return asyncio.run(self.executor.complete_async(request, candidates))

    def stream(self, request, candidates):
        if not self.executor.runs_async(candidates):
            return self.executor.stream(request, candidates)
        return BlockingStream(self.executor.stream_async(request, candidates))


class BlockingStream:
    def __init__(self, run) -> None:
        self.run = run

    def __getattr__(self, name):
        return getattr(self.run, name)  # model, result

    def __iter__(self):
        loop = asyncio.new_event_loop()
        chunks = self.run.__aiter__()
        try:
            while True:
                try:
                    yield loop.run_until_complete(anext(chunks))
                except StopAsyncIteration:
                    return
        finally:
            loop.run_until_complete(chunks.aclose())
            loop.close()


@pytest.fixture(params=["thread", "loop"])
def executor(request):
    """A factory of executors: blocking (r42 ask, gateway workers) or on an event loop (r42 serve)."""

    def make(catalog, **limits):
        blocking = Executor(
            catalog, Limits(**{"connect_timeout": 2, "first_byte_timeout": 2, **limits}), sleep=Sleeps()
        )
        return blocking if request.param == "thread" else OnLoop(blocking)

    return make


def outcome(route) -> list[tuple[str, bool, int | None]]:
    return [(a["model"], a["ok"], a["status"]) for a in route["attempts"]]


def test_first_candidate_answers(catalog, servers, executor):
    result = executor(catalog).complete(QUESTION, [A, B])
    assert answer_text(result.response) == "Answer from A."
    assert result.route["model"] == A
    assert outcome(result.route) == [(A, True, 200)]
    assert servers[0].requests[0].json["model"] == "gpt-4o-mini"  # the provider's own name goes upstream
    assert servers[1].requests == []


@pytest.mark.parametrize(
    "fault",
    [
        faults.status(500),
        faults.status(503),
        faults.status(408),
        faults.status(409),
        faults.status(401),
        faults.status(403),
        faults.reset_mid_stream(0),
        faults.malformed_json(),
        faults.context_too_long(),
    ],
    ids=["500", "503", "408", "409", "401-stale-key", "403", "reset", "malformed", "context"],
)
def test_moves_on_after_retryable_failures(catalog, servers, executor, fault):
    servers[0].fail(fault)
    result = executor(catalog).complete(QUESTION, [A, B])
    assert answer_text(result.response) == "Answer from B."
    assert [(m, ok) for m, ok, _ in outcome(result.route)] == [(A, False), (B, True)]
    assert result.route["attempts"][0]["error"]


def test_a_bad_request_stops_at_once(catalog, servers, executor):
    servers[0].fail(faults.bad_request())
    with pytest.raises(CandidatesFailed) as caught:
        executor(catalog).complete(QUESTION, [A, B])
    assert [(a.model, a.status) for a in caught.value.attempts] == [(A, 400)]
    assert servers[1].requests == []
    assert caught.value.exit_code == 5


def test_short_retry_after_is_waited_out_on_the_same_model(catalog, servers, executor):
    servers[0].fail(faults.rate_limited(retry_after=0.5))
    run = executor(catalog, retry_after_max=2)
    result = run.complete(QUESTION, [A, B])
    assert outcome(result.route) == [(A, False, 429), (A, True, 200)]
    assert run.sleep == [0.5]


def test_long_retry_after_moves_on_without_waiting(catalog, servers, executor):
    servers[0].fail(faults.rate_limited(retry_after=60))
    run = executor(catalog, retry_after_max=2)
    result = run.complete(QUESTION, [A, B])
    assert outcome(result.route) == [(A, False, 429), (B, True, 200)]
    assert run.sleep == []


def test_slow_first_byte_times_out_and_moves_on(catalog, servers, executor):
    servers[0].fail(faults.slow_first_byte(30))
    # 2 s: the healthy second server must answer within it too, even on a loaded CI machine (0.3 s failed once)
    result = executor(catalog, first_byte_timeout=2.0).complete(QUESTION, [A, B])
    assert outcome(result.route) == [(A, False, None), (B, True, 200)]
    assert "timeout" in result.route["attempts"][0]["error"]


def test_max_attempts_bounds_the_walk(catalog, servers, executor):
    for server in servers:
        server.fail(faults.status(503))
    with pytest.raises(CandidatesFailed) as caught:
        executor(catalog, max_attempts=2).complete(QUESTION, [A, B, C])
    assert [a.model for a in caught.value.attempts] == [A, B]
    assert "max-attempts" in caught.value.message
    assert servers[2].requests == []


def test_every_candidate_failing(catalog, servers, executor):
    for server in servers:
        server.fail(faults.status(500))
    with pytest.raises(CandidatesFailed) as caught:
        executor(catalog).complete(QUESTION, [A, B, C])
    assert [(a.model, a.status) for a in caught.value.attempts] == [(A, 500), (B, 500), (C, 500)]


def test_an_exhausted_deadline_makes_no_attempt(catalog, servers, executor):
    with pytest.raises(CandidatesFailed) as caught:
        executor(catalog, deadline=0).complete(QUESTION, [A, B])
    assert caught.value.attempts == [] and "deadline" in caught.value.message
    assert servers[0].requests == []


def test_a_candidate_without_credential_is_skipped(catalog, servers, executor, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("OPENAI_BASE_URL")
    result = executor(catalog).complete(QUESTION, [A, B])
    assert outcome(result.route) == [(A, False, None), (B, True, 200)]
    assert "OPENAI_API_KEY" in result.route["attempts"][0]["error"]


def test_usage_and_cost_from_catalog_prices(catalog, servers, executor):
    result = executor(catalog).complete(QUESTION, [A])
    model = catalog.find(A)
    usage = result.route["usage"]
    assert usage == {"input_tokens": 6, "output_tokens": 3}
    assert result.route["cost_usd"] == pytest.approx((6 * model.price_input + 3 * model.price_output) / 1e6)
    assert result.route["latency_ms"] >= 0 and result.route["ttft_ms"] is None


def test_unknown_price_gives_null_cost(catalog, servers, executor):
    result = executor(catalog).complete(QUESTION, ["openai/some-model-not-in-the-catalog"])
    assert result.route["model"] == "openai/some-model-not-in-the-catalog"
    assert result.route["cost_usd"] is None
    assert servers[0].requests[0].json["model"] == "some-model-not-in-the-catalog"


# --- streaming -----------------------------------------------------------------------------------


def collect(run) -> str:
    return "".join((c["choices"][0]["delta"].get("content") or "") for c in run if c["choices"])


@pytest.mark.parametrize(
    "fault",
    [faults.reset_mid_stream(1), faults.truncated_stream(1), faults.status(503), faults.slow_first_byte(30)],
    ids=["reset", "truncated", "503", "slow"],
)
def test_stream_falls_back_before_the_first_token(catalog, servers, executor, fault):
    servers[0].fail(fault)
    run = executor(catalog, first_byte_timeout=2.0).stream(QUESTION, [A, B])
    text = collect(run)
    assert text == "Answer from B."  # nothing of A reached the consumer
    assert run.model == B and run.result.route["model"] == B
    assert [(a["model"], a["ok"]) for a in run.result.route["attempts"]] == [(A, False), (B, True)]
    assert run.result.route["ttft_ms"] is not None
    assert run.result.response["choices"][0]["message"]["content"] == "Answer from B."


def test_stream_failure_after_the_first_token_ends_with_an_error(catalog, servers, executor):
    servers[0].fail(faults.reset_mid_stream(3))  # role chunk, "Answer", " from", then the reset
    run = executor(catalog).stream(QUESTION, [A, B])
    received = []
    with pytest.raises(StreamBrokenError) as caught:
        for chunk in run:
            received.append(chunk)
    assert collect(received) == "Answer from"
    assert servers[1].requests == []  # no fallback once the answer had started
    assert caught.value.route["model"] == A
    assert [a["ok"] for a in caught.value.route["attempts"]] == [False]


def test_stream_usage_and_cost(catalog, servers, executor):
    run = executor(catalog).stream(QUESTION, [A])
    collect(run)
    assert run.result.route["usage"] == {"input_tokens": 6, "output_tokens": 3}
    assert run.result.route["cost_usd"] is not None
    assert servers[0].requests[0].json["stream_options"] == {"include_usage": True}


# --- the other protocols, configured through their own variables ----------------------------------


@pytest.mark.parametrize(
    ("fake", "key_var", "url_var", "model"),
    [
        (AnthropicFake, "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "anthropic/claude-haiku-4-5"),
        (GeminiFake, "GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL", "gemini/gemini-2.0-flash"),
        (OllamaFake, None, "OLLAMA_HOST", "ollama/deepseek-coder:6.7b"),
    ],
    ids=["anthropic", "gemini", "ollama"],
)
def test_each_protocol_through_its_env_vars_with_fallback(
    catalog, servers, executor, monkeypatch, fake, key_var, url_var, model
):
    with fake(reply="Native answer.") as server:
        if key_var:
            monkeypatch.setenv(key_var, "sk-native")
        monkeypatch.setenv(url_var, server.base_url if url_var != "OLLAMA_HOST" else server.url.removeprefix("http://"))
        server.fail(faults.status(503))
        run = executor(catalog).stream(QUESTION, [model, model, A])
        assert collect(run) == "Native answer."
        assert outcome(run.result.route) == [(model, False, 503), (model, True, 200)]
        assert run.result.route["usage"]["output_tokens"] == 2
        result = executor(catalog).complete(QUESTION, [model])
        assert answer_text(result.response) == "Native answer."


def test_the_event_loop_path_serves_openai_protocol_candidates_only(catalog, servers, monkeypatch):
    from r42.providers import http11

    plain = Executor(catalog)
    assert plain.runs_async([A, B, C])
    assert not plain.runs_async([A, "anthropic/claude-haiku-4-5"])  # the SDK adapters block
    assert not plain.runs_async([A, "local/smollm2-135m-instruct"])  # starting the built-in model blocks
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")  # the fakes are on plain http
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    http11.environment_proxies.cache_clear()
    try:
        assert not plain.runs_async([A])  # behind a proxy: httpx, on a worker
    finally:
        monkeypatch.delenv("HTTP_PROXY")
        http11.environment_proxies.cache_clear()
