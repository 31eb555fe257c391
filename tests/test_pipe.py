"""The pipe contract: input forms, pass-through, batches, errors and exit codes."""

from __future__ import annotations

import subprocess
import sys

import orjson
from hypothesis import given, settings, strategies as st

from r42.document import dumps, read_items
from r42.errors import ExitCode
from tests.helpers import json_lines, run


def test_plain_text_becomes_a_user_message():
    result = run(["score"], input="What is 2 + 2?\n")
    assert result.exit_code == 0, result.stderr
    doc = orjson.loads(result.stdout)
    assert doc["messages"] == [{"role": "user", "content": "What is 2 + 2?"}]
    assert "score" in doc
    assert result.stderr == ""


def test_one_json_object_passes_every_key_through():
    body = {
        "id": "req-1",
        "model": "x",
        "temperature": 0.2,
        "messages": [{"role": "user", "content": "hi"}],
        "extra": {"a": [1, 2]},
    }
    result = run(["score"], input=orjson.dumps(body))
    doc = orjson.loads(result.stdout)
    for key, value in body.items():
        assert doc[key] == value


def test_prompt_shorthand():
    result = run(["score"], input='{"prompt": "Write a poem about rain", "id": 3}')
    doc = orjson.loads(result.stdout)
    assert doc["id"] == 3 and doc["prompt"] == "Write a poem about rain"
    assert doc["score"]["domain"] == "creative"


def test_batch_keeps_order_and_goes_on_after_a_bad_line():
    lines = [
        '{"id": 1, "prompt": "hi"}',
        "{not json",
        '{"id": 3, "messages": "nope"}',
        '{"id": 4, "prompt": "Solve x^2 = 4"}',
    ]
    result = run(["score"], input="\n".join(lines) + "\n")
    out = json_lines(result.stdout)
    assert len(out) == 4
    assert out[0]["id"] == 1 and "score" in out[0]
    assert out[1]["line"] == 2 and out[1]["error"]["code"] == ExitCode.USAGE
    assert out[2]["id"] == 3 and out[2]["line"] == 3 and "messages" in out[2]["error"]["message"]
    assert out[3]["id"] == 4 and "score" in out[3]
    assert result.exit_code == ExitCode.USAGE


def test_error_lines_pass_through_a_later_stage_in_place():
    first = run(["score"], input='{"id": 1, "prompt": "hi"}\n[1]\n{"id": 3, "prompt": "yo"}\n')
    second = run(["score"], input=first.stdout)
    out = json_lines(second.stdout)
    assert [("error" in d) for d in out] == [False, True, False]
    assert out[1]["line"] == 2


def test_bad_input_gives_one_line_error_and_exit_code():
    cases = [
        b"",
        b"   \n",
        b"\x00\x01\x02binary",
        b"\xff\xfe\xfa",
        b'{"messages": [{"role": "user"}]}',
        b'{"messages": [{"role": "wizard", "content": "x"}]}',
        b'{"prompt": 5}',
        b"{oops",
    ]
    for raw in cases:
        result = run(["score"], input=raw)
        assert result.exit_code == ExitCode.USAGE, raw
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("r42: error: "), (raw, result.stderr)


def test_unknown_mode_is_a_usage_error():
    result = run(["rank", "--mode", "fastest"], input="hi")
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.startswith("r42: error: invalid value for '--mode'")
    assert result.stderr.endswith("(try r42 rank --help)\n")


def test_text_flag_reads_json_looking_text_as_a_prompt():
    result = run(["score", "--text"], input='{"this": "is my prompt"}')
    doc = orjson.loads(result.stdout)
    assert doc["messages"][0]["content"] == '{"this": "is my prompt"}'


def test_large_prompt_gives_a_normal_result():
    big = ("The committee reviewed the quarterly figures and the outlook. " * 170_000)[:10_000_000]
    result = run(["score"], input=big)
    assert result.exit_code == 0
    assert orjson.loads(result.stdout)["score"]["tokens"] > 2_000_000


def test_python_dash_m_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "r42", "score"], input=b"hello there", capture_output=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert orjson.loads(proc.stdout)["score"]["domain"] == "chat"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(
    extra=st.dictionaries(
        st.text(min_size=1, max_size=10).filter(lambda k: k not in ("messages", "prompt")), json_values, max_size=5
    ),
    text=st.text(min_size=1, max_size=200),
)
def test_documents_round_trip(extra, text):
    doc = {**extra, "messages": [{"role": "user", "content": text}]}
    items = read_items(dumps(doc))
    assert len(items) == 1 and items[0].doc == doc
