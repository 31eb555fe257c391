"""The fast `r42 score` path (no click) and the click path agree byte for byte."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from r42.entry import parse_fast_score
from tests.helpers import run

CASES = [
    ([], b"Prove that the square root of 2 is irrational"),
    (["--json"], b'{"id": 9, "prompt": "hello"}'),
    (["--text"], b'{"not": "json to me"}'),
    (["--nl"], b'{"prompt": "a"}\n{"prompt": "b"}\n'),
    (["--scorer", "length"], b"some words here"),
    (["--scorer=random"], b"some words here"),
    ([], b'{"id": 1, "prompt": "ok"}\nnot json\n'),
    ([], b""),
    ([], b"\x00binary"),
    (["--scorer", "nope"], b"hi"),
]


@pytest.mark.parametrize("args, stdin", CASES)
def test_fast_path_matches_click(args, stdin):
    assert parse_fast_score(args) is not None
    proc = subprocess.run(
        [sys.executable, "-m", "r42", "score", *args],
        input=stdin,
        capture_output=True,
        env=os.environ.copy(),
        check=False,
    )
    clicked = run(["score", *args], input=stdin)
    assert proc.stdout.decode() == clicked.stdout
    assert proc.returncode == clicked.exit_code
    if proc.returncode:
        assert proc.stderr.decode().startswith("r42: error: ") and len(proc.stderr.decode().splitlines()) == 1


def test_other_lines_go_to_click():
    assert parse_fast_score(["--help"]) is None
    assert parse_fast_score(["--unknown"]) is None
    assert parse_fast_score(["a", "b"]) is None
    proc = subprocess.run([sys.executable, "-m", "r42", "score", "--help"], capture_output=True, check=False)
    assert proc.returncode == 0 and b"Usage:" in proc.stdout


def test_fast_path_does_not_import_click_or_sdks():
    code = (
        "import sys, runpy; sys.argv=['r42','score']; \n"
        "try:\n runpy.run_module('r42', run_name='__main__')\n"
        "except SystemExit: pass\n"
        "print(sorted(m for m in ('click','orjson','httpx','anthropic','yaml','tabulate') if m in sys.modules), "
        "file=sys.stderr)"
    )
    proc = subprocess.run([sys.executable, "-c", code], input=b"hi", capture_output=True, check=False)
    assert proc.stderr.decode().strip().splitlines()[-1] == "[]"


def test_file_argument(tmp_path):
    path = tmp_path / "prompt.txt"
    path.write_text("Write a haiku about the sea")
    proc = subprocess.run([sys.executable, "-m", "r42", "score", str(path)], capture_output=True, check=False)
    assert proc.returncode == 0 and b'"domain":"creative"' in proc.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "r42", "score", str(tmp_path / "nope.txt")], capture_output=True, check=False
    )
    assert missing.returncode == 2 and missing.stderr.decode().startswith("r42: error: ")


def _r42(args: list[str], stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "r42", *args], input=stdin, capture_output=True, check=False)


@pytest.mark.parametrize(
    "args, command",
    [
        (["score", "--bogus"], "r42 score"),  # the fast path hands it to click
        (["rank", "--top", "x"], "r42 rank"),
        (["ask", "--mode", "nope"], "r42 ask"),
        (["--bogus"], "r42"),
        (["nosuchcommand"], "r42"),
        (["keys", "nosuch"], "r42 keys"),
        (["score", "a", "b"], "r42 score"),
    ],
)
def test_a_bad_flag_is_one_line_saying_where_help_is_and_exits_2(args, command):
    proc = _r42(args, b"hi")
    lines = proc.stderr.decode().splitlines()
    assert proc.returncode == 2
    assert proc.stdout == b""
    assert len(lines) == 1, lines
    assert lines[0].startswith("r42: error: ") and lines[0].endswith(f"(try {command} --help)"), lines[0]
    assert "Usage:" not in lines[0]


def test_a_bare_group_still_shows_its_help():
    proc = _r42(["feedback"])
    assert b"Usage: r42 feedback" in proc.stdout + proc.stderr


@pytest.mark.parametrize("command", ["score", "rank", "ask"])
def test_empty_input_suggests_a_pipe_into_the_command_that_was_run(command):
    proc = _r42([command], b"")
    assert proc.returncode == 2
    assert proc.stderr.decode() == f'r42: error: empty input (pipe a prompt, e.g. echo "hello" | r42 {command})\n'


def test_error_lines_from_an_earlier_stage_fail_the_batch(tmp_path):
    bad = b'{"id": 1, "prompt": "hi"}\n{not json\n{"id": 3, "prompt": "Solve x^2 = 4"}\n'
    scored = _r42(["score"], bad)
    assert scored.returncode == 2
    ranked = _r42(["rank", "--include-unavailable", "--top", "1"], scored.stdout)
    out = [line for line in ranked.stdout.decode().splitlines() if line]
    assert len(out) == 3 and '"error"' in out[1] and '"ranking"' in out[0] and '"ranking"' in out[2]
    assert ranked.returncode == 2  # the first failing line's code (invalid JSON: usage)
    assert "r42: error: 1 of 3 lines failed; line 2: failed in an earlier stage: invalid JSON" in ranked.stderr.decode()
