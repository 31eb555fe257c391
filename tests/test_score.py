"""r42 score: the fields, the sensitive-data finder, determinism and range."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings, strategies as st

from r42.config import DOMAINS, load_settings
from r42.scoring import score_document, without_agent_blocks
from r42.scoring.sensitive import find_sensitive, iban_ok, luhn_ok
from tests.helpers import run


def score_of(content, scorer=None, **extra):
    return score_document({"messages": [{"role": "user", "content": content}], **extra}, load_settings(), scorer)


def test_score_fields_and_levels():
    s = score_of("hi")
    assert set(s) == {"complexity", "level", "domain", "domains", "tokens", "needs", "sensitive", "signals", "scorer"}
    assert s["level"] == "simple" and s["domain"] == "chat" and s["scorer"].startswith("trained@")
    maths = score_of(
        "Let $S$ be the set of positive integers $n$ such that $n^2 + 12n - 2007$ is a perfect square. "
        "Find the remainder when the sum of the elements of $S$ is divided by $1000$."
    )
    # P(cheap fails where strong succeeds) about 0.3 (the within-source model: competition maths scores 0.24 on
    # average out of source, 0.36 is its true rate), on the border of complex_from (0.3): never `simple`
    assert maths["complexity"] > 0.25 and maths["level"] != "simple"


def test_heuristic_levels_by_name():
    assert score_of("hi", "heuristic")["level"] == "simple"
    hard = score_of(
        "Design a distributed, lock-free concurrent queue in Rust that is thread-safe and handles all edge cases. "
        "Provide a formal proof of linearizability and benchmarks against crossbeam. "
        "It must never allocate on the hot path.",
        scorer="heuristic",
    )
    assert hard["complexity"] > score_of("hi", "heuristic")["complexity"] + 0.4
    assert hard["level"] == "complex"


@pytest.mark.parametrize(
    "prompt, domain",
    [
        ("Fix this bug:\n```python\ndef f(x):\n    return x.lenght\n```", "code"),
        ("Solve for x: 3x + 7 = 22", "math"),
        ("Write a short poem about the sea", "creative"),
        ("Summarize the following article in three bullet points: ...", "extraction"),
        ("Who was the first emperor of Rome?", "knowledge"),
        ("hello, how are you?", "chat"),
        ("Should I migrate our monolith to microservices? Analyze the trade-offs and give a plan.", "reasoning"),
    ],
)
def test_domains(prompt, domain):
    assert score_of(prompt)["domain"] == domain


def test_needs_from_the_request():
    s = score_document(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is in this picture?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    ],
                }
            ],
            "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
            "response_format": {"type": "json_object"},
            "max_tokens": 500,
        },
        load_settings(),
    )
    assert s["needs"]["tools"] and s["needs"]["vision"] and s["needs"]["json"]
    assert s["needs"]["context_tokens"] >= s["tokens"] + 500


def test_multi_turn_counts_the_whole_conversation_last_turn_most():
    code_context = [
        {"role": "system", "content": "You are a senior Python engineer."},
        {"role": "user", "content": "Here is my function:\n```python\ndef parse(s):\n    return int(s)\n```"},
        {"role": "assistant", "content": "It fails on empty strings."},
        {"role": "user", "content": "ok, and how would you fix it?"},
    ]
    s = score_document({"messages": code_context}, load_settings())
    assert s["domain"] == "code"
    assert s["tokens"] > score_of("ok, and how would you fix it?")["tokens"]
    assert s["signals"]["terms"].get("conversation", 0) > 0


@pytest.mark.parametrize(
    "text, kind",
    [
        ("write to alice@example.org", "email"),
        ("call me on +44 20 7946 0958", "phone"),
        ("(415) 555-2671", "phone"),
        ("my card is 4111 1111 1111 1111", "credit_card"),
        ("IBAN: GB82 WEST 1234 5698 7654 32", "iban"),
        ("key = sk-proj-a1B2c3D4e5F6g7H8i9J0k1L2m3N4", "api_key"),
        ("ANTHROPIC_API_KEY=sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123", "api_key"),
        ("AKIAIOSFODNN7EXAMPLE", "api_key"),
        ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "api_key"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA", "private_key"),
        ('db_password: "hunter2hunter2"', "password"),
        ("postgres://admin:s3cret@db.internal:5432/app", "connection_string"),
        ("SSN 078-05-1120", "ssn"),
    ],
)
def test_sensitive_kinds(text, kind):
    assert kind in find_sensitive(text)


@pytest.mark.parametrize(
    "text",
    [
        "Prove that the square root of 2 is irrational",
        "card 4111 1111 1111 1112",  # fails Luhn
        "GB82 WEST 1234 5698 7654 33",  # fails mod 97
        "released on 2024-01-15 at 10:30, version 1.2.3",
        "the years 1999 2000 3000 4000",
        "the password policy requires rotation",
    ],
)
def test_not_sensitive(text):
    assert find_sensitive(text) == []


def test_validators():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("DE89370400440532013000") and not iban_ok("DE89370400440532013001")


def test_sensitive_values_never_appear_in_the_output():
    secret = "sk-proj-ZZtopSecretValue0123456789abcd"
    result = run(["score"], input=f"deploy with {secret} and mail bob@example.com")
    assert "api_key" in result.stdout and "email" in result.stdout
    assert result.stdout.count(secret) == 1  # only inside the passed-through message itself
    assert secret not in orjson.dumps(orjson.loads(result.stdout)["score"]).decode()


def test_terminal_output_is_readable_text():
    from r42.terminal import Terminal
    import io

    out = io.BytesIO()
    term = Terminal(stdin=io.BytesIO(b"Solve 2x = 6"), stdout=out, stderr=io.StringIO(), stdout_isatty=True)
    from click.testing import CliRunner
    from r42.cli import cli

    result = CliRunner().invoke(cli, ["score"], obj=term)
    assert result.exit_code == 0
    text = out.getvalue().decode()
    assert text.startswith("complexity") and "domain      math" in text
    out.seek(0), out.truncate()
    term.stdin = io.BytesIO(b"Solve 2x = 6")
    CliRunner().invoke(cli, ["score", "--json"], obj=term)
    assert orjson.loads(out.getvalue())["score"]["domain"] == "math"


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=2000))
def test_score_is_deterministic_and_in_range(text):
    first = score_of(text)
    assert first == score_of(text)
    assert 0.0 <= first["complexity"] <= 1.0
    assert set(first["domains"]) == set(DOMAINS)
    assert abs(sum(first["domains"].values()) - 1.0) < 1e-6
    assert all(p >= 0 for p in first["domains"].values())
    assert first["tokens"] >= 0


def test_every_message_is_scanned_for_sensitive_data_and_privacy_cues():
    long_system = "You are a careful assistant. " * 1000  # 29,000 characters before the question
    doc = {
        "messages": [
            {"role": "system", "content": long_system},
            {"role": "user", "content": "My diagnosis came back; email it to bob@example.com"},
        ]
    }
    score = score_document(doc, load_settings())
    assert score["sensitive"] == ["email"]
    assert score["signals"]["privacy_cues"] == ["health"]
    again = score_document(doc, load_settings())  # remembered texts give the same answer
    assert again["sensitive"] == ["email"] and again["signals"]["privacy_cues"] == ["health"]


def test_coding_agents_blocks_are_not_the_users_words():
    # Claude Code puts <system-reminder> blocks in the user turn, Cline and Roo Code <environment_details>
    # and a <task> wrapper: full of tags, they made "hi" a maths problem (0.56)
    block = "<system-reminder>\nYour todo list is empty. Use <todo> tools.\n</system-reminder>"
    reminder = {"type": "text", "text": block}
    with_reminder = score_of([reminder, {"type": "text", "text": "hi"}])
    assert with_reminder["complexity"] == score_of("hi")["complexity"] < 0.1
    cline = "<task>\nThanks!\n</task>\n<environment_details>\n# Visible Files\nsrc/a.tsx\n</environment_details>"
    assert score_of(cline)["complexity"] == score_of("Thanks!")["complexity"]
    # the model still reads them: the context the request needs counts them
    assert with_reminder["needs"]["context_tokens"] > score_of("hi")["needs"]["context_tokens"]
    # an unclosed block is left as it is, and text without blocks is untouched
    assert without_agent_blocks("<system-reminder> never closed") == "<system-reminder> never closed"
    assert without_agent_blocks("  plain text \n") == "  plain text \n"
    # a request naming a source file is a code request, however short
    assert score_of("Fix the failing test in tests/test_api.py")["signals"]["kind"] == "code"
    assert score_of("Why does App.tsx render twice?")["signals"]["kind"] == "code"
    assert score_of("Read the e.g. section")["signals"]["kind"] == "small_talk"
