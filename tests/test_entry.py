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
    proc = subprocess.run([sys.executable, "-m", "r42", "score", *args], input=stdin, capture_output=True, env=os.environ.copy(), check=False)
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
    code = "import sys, runpy; sys.argv=['r42','score']; \ntry:\n runpy.run_module('r42', run_name='__main__')\nexcept SystemExit: pass\nprint(sorted(m for m in ('click','orjson','httpx','anthropic','yaml','tabulate') if m in sys.modules), file=sys.stderr)"
    proc = subprocess.run([sys.executable, "-c", code], input=b"hi", capture_output=True, check=False)
    assert proc.stderr.decode().strip().splitlines()[-1] == "[]"


def test_file_argument(tmp_path):
    path = tmp_path / "prompt.txt"
    path.write_text("Write a haiku about the sea")
    proc = subprocess.run([sys.executable, "-m", "r42", "score", str(path)], capture_output=True, check=False)
    assert proc.returncode == 0 and b'"domain":"creative"' in proc.stdout
    missing = subprocess.run([sys.executable, "-m", "r42", "score", str(tmp_path / "nope.txt")], capture_output=True, check=False)
    assert missing.returncode == 2 and missing.stderr.decode().startswith("r42: error: ")
