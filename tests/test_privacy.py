"""Reversible redaction of sensitive values."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, strategies as st

from r42.privacy import StreamRestorer, redact_messages
from r42.scoring.sensitive import find_sensitive
from tests.fakes import OllamaFake, OpenAIFake
from tests.helpers import run

SECRET = "sk-proj-abcdefghijklmnopqrstuvwxyz123456"


def test_redact_and_restore_round_trip():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": f"Mail bob@example.com the key {SECRET}, then bob@example.com again."},
        {"role": "user", "content": [{"type": "text", "text": "card 4111 1111 1111 1111"}]},
    ]
    redacted, redaction = redact_messages(messages)
    text = str(redacted)
    assert SECRET not in text and "bob@example.com" not in text and "4111" not in text
    assert find_sensitive(text) == []
    assert redacted[1]["content"].count("[R42_EMAIL_1]") == 2  # one value, one placeholder
    assert messages[1]["content"].startswith("Mail bob@")  # the original is untouched
    answer = "Sent [R42_API_KEY_1] to [R42_EMAIL_1]; charged [R42_CREDIT_CARD_1]."
    assert redaction.restore(answer) == f"Sent {SECRET} to bob@example.com; charged 4111 1111 1111 1111."
    assert SECRET not in repr(redaction)


@given(st.integers(1, 30))
def test_stream_restore_across_any_chunking(size):
    _, redaction = redact_messages([{"role": "user", "content": f"use {SECRET} please"}])
    answer = "I will use [R42_API_KEY_1] now [not a placeholder] and [R42_API_KEY_1]."
    restorer = StreamRestorer(redaction)
    chunks = [answer[i : i + size] for i in range(0, len(answer), size)]
    out = "".join(restorer.feed(c) for c in chunks) + restorer.flush()
    assert out == redaction.restore(answer) == answer.replace("[R42_API_KEY_1]", SECRET)


# --- the privacy rules end to end, checked at a loopback provider --------------------------------


PROMPT = f"Why does my deploy fail? I export OPENAI_API_KEY={SECRET} and mail ops@example.com"


@pytest.fixture
def cloud(monkeypatch):
    with OpenAIFake(reply="Rotate [R42_API_KEY_1] now and tell [R42_EMAIL_1].") as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("R42_LOCAL_DISCOVERY", "0")
        yield server


def bodies(server) -> str:
    return "".join(orjson.dumps(r.body).decode() for r in server.requests)


@pytest.fixture
def no_builtin_model(monkeypatch):
    """This machine without r42[local]: what answers no longer depends on what is installed."""
    from r42 import availability

    monkeypatch.setattr(availability, "builtin_model_installed", lambda: False)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--mode", "privacy"], 4),
        ([], 4),
        (["--cloud"], 3),
        (["--model", "openai/gpt-4o-mini"], 3),
        (["--mode", "privacy", "--model", "openai/gpt-4o-mini"], 3),
    ],
)
def test_a_prompt_with_a_key_never_reaches_the_cloud(cloud, no_builtin_model, args, code):
    result = run(["ask", *args, "--explain"], input=PROMPT)
    assert cloud.requests == []  # not one byte of the prompt reached the cloud provider
    assert result.exit_code == code, result.stderr
    assert "privacy" in result.stderr or "sensitive" in result.stderr or "Ollama" in result.stderr, result.stderr


@pytest.mark.parametrize("args", [["--mode", "privacy"], []])
def test_a_prompt_with_a_key_is_answered_by_a_local_model(cloud, no_builtin_model, monkeypatch, args):
    with OllamaFake(reply="Rotate it now.") as local:
        monkeypatch.setenv("OLLAMA_HOST", local.base_url)
        result = run(["ask", *args, "--explain"], input=PROMPT)
    assert result.exit_code == 0, result.stderr
    assert cloud.requests == [] and local.requests
    assert orjson.loads(result.stdout)["route"]["model"].startswith("ollama/")
    assert "kept local" in result.stderr or "privacy mode" in result.stderr


def test_redact_sends_placeholders_and_restores_the_answer(cloud):
    result = run(["ask", "--cloud", "--redact", "--explain"], input=PROMPT)
    assert result.exit_code == 0, result.stderr
    sent = bodies(cloud)
    assert cloud.requests and SECRET not in sent and "ops@example.com" not in sent and "[R42_API_KEY_1]" in sent
    doc = orjson.loads(result.stdout)
    assert doc["response"]["choices"][0]["message"]["content"] == f"Rotate {SECRET} now and tell ops@example.com."
    assert doc["route"]["redacted"] == {"api_key": 1, "email": 1}
    assert "placeholder" in result.stderr


def test_redacted_stream_restores_the_answer(cloud):
    result = run(["ask", "--cloud", "--redact", "--stream"], input=PROMPT)
    assert result.exit_code == 0, result.stderr
    events = [orjson.loads(line) for line in result.stdout.splitlines()]
    text = "".join(e.get("text") or "" for e in events if e["event"] == "delta")
    assert text == f"Rotate {SECRET} now and tell ops@example.com."
    assert SECRET not in bodies(cloud)


def test_allow_cloud_sends_the_prompt_as_it_is(cloud):
    result = run(["ask", "--cloud", "--allow-cloud"], input=PROMPT)
    assert result.exit_code == 0, result.stderr
    assert SECRET in bodies(cloud)


# --- the privacy judge: a local model decides the unsure cases -----------------------------------

HEALTH = "My doctor says my diagnosis is type 2 diabetes. What should I eat this week?"


@pytest.fixture
def judged(monkeypatch, cloud):
    """A local LM Studio server (a loopback fake) as the judge, the cloud fake as the alternative."""

    def with_verdict(verdict: str):
        local = OpenAIFake(reply=verdict)
        local.__enter__()
        monkeypatch.setenv("R42_LMSTUDIO_BASE_URL", local.base_url)
        monkeypatch.setenv("R42_PRIVACY_JUDGE", "1")
        return local

    made = []
    yield lambda verdict: made.append(with_verdict(verdict)) or made[-1]
    for server in made:
        server.__exit__(None, None, None)


def test_the_judge_keeps_a_private_prompt_local(cloud, judged):
    local = judged("YES")
    result = run(["ask", "--explain"], input=HEALTH)
    assert cloud.requests == []
    assert result.exit_code == 0, result.stderr
    doc = orjson.loads(result.stdout)
    assert "judged_private" in doc["score"]["sensitive"]
    assert doc["score"]["signals"]["privacy_judge"]["verdict"] is True
    assert "Private (YES or NO)?" in orjson.dumps(local.requests[0].body).decode()  # the judge ran locally
    assert "privacy judge" in result.stderr and ": private" in result.stderr


def test_the_judge_lets_a_harmless_prompt_go_to_the_cloud(cloud, judged):
    judged("NO")
    result = run(["ask", "--cloud"], input=HEALTH)
    assert result.exit_code == 0, result.stderr
    doc = orjson.loads(result.stdout)
    assert doc["score"]["sensitive"] == [] and doc["score"]["signals"]["privacy_judge"]["verdict"] is False
    assert len(cloud.requests) == 1


def test_a_custom_judge_prompt_from_config(cloud, judged, isolated_env):
    isolated_env.mkdir(parents=True, exist_ok=True)
    (isolated_env / "config.toml").write_text('privacy_judge_prompt = "Is this private? {prompt} Say YES or NO."\n')
    local = judged("yes")
    run(["ask"], input=HEALTH)
    assert orjson.dumps(local.requests[0].body).decode().count("Is this private?") == 1
    assert cloud.requests == []
