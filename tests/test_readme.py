"""The README's claims are the ones a fresh run shows: its examples are run here and their shapes
and counts compared with what the README prints (issue 20)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from r42.errors import ExitCode

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def r42(args: list[str], stdin: bytes = b"") -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "r42", *args]
    return subprocess.run(command, input=stdin, capture_output=True, env=os.environ.copy(), check=False)


def shape(value: Any) -> Any:
    """Keys and types, not values: dicts by key, lists by their first element."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return "number" if isinstance(value, (int, float)) and not isinstance(value, bool) else type(value).__name__


def number(text: str) -> int:
    return int(text.replace(",", ""))


# --- the quick start ----------------------------------------------------------------------------


def test_the_readme_test_command_is_the_ci_command():
    quick_start = re.search(r"```sh\n(.*?)```", README, re.S).group(1).splitlines()
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    ci = [line for line in ci_lines if line and not line.startswith(("#", "set ", "cd "))]
    # CI sets up, lints and type-checks in between; it starts with the README's set-up and ends with its tests
    setup, tests = quick_start[1].split(" && ")
    assert (setup, tests) == ("bash scripts/setup.sh --test", ".venv/bin/python -m pytest -q")
    assert setup in ci and ci[-1] == tests


def test_pytest_dash_q_with_the_projects_config_prints_how_many_passed(tmp_path):
    (tmp_path / "test_one.py").write_text("def test_one():\n    assert True\n")
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-c",
        str(ROOT / "pyproject.toml"),
        "--rootdir",
        str(tmp_path),
        "-p",
        "no:cacheprovider",
        str(tmp_path / "test_one.py"),
    ]
    proc = subprocess.run(command, capture_output=True, check=False)
    assert proc.returncode == 0, proc.stdout
    assert re.search(rb"^1 passed in [\d.]+s", proc.stdout, re.M), proc.stdout


def test_the_readme_says_how_to_put_r42_on_the_path_and_links_only_files_that_exist():
    assert "source .venv/bin/activate" in README
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", README):
        assert (ROOT / target).exists(), target
    assert "ARCHITECTURE.md" not in README or (ROOT / "ARCHITECTURE.md").exists()


@pytest.fixture(scope="module")
def catalog():
    from r42.catalog import load_catalog

    return load_catalog()


def test_the_catalog_counts_are_the_catalogs(catalog):
    pattern = r"It holds\s+([\d,]+) models: ([\d,]+) cloud chat models from (\d+) providers.*?and (\d+) local"
    total, cloud, providers, local = re.search(pattern, README, re.S).groups()
    models = catalog.models
    assert number(total) == len(models)
    assert number(cloud) == sum(1 for m in models if not m.local)
    assert number(local) == sum(1 for m in models if m.local)
    assert number(providers) == len({m.provider for m in models if not m.local})


def test_the_builtin_models_quality_is_the_catalogs(catalog):
    written = re.search(r"its catalog quality \(overall ([\d.]+), estimated", README).group(1)
    model = catalog.find("local/smollm2-135m-instruct")
    assert f"{model.quality['overall']:.2f}" == written


def test_the_exit_codes_table_is_the_enum():
    table = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", README.split("| exit code | meaning |", 1)[1], re.M))
    assert {int(code) for code in table} == {int(code) for code in ExitCode}
    assert "missing credentials" in table[str(int(ExitCode.NO_CREDENTIALS))]


def test_the_claude_code_section_says_what_claude_code_needs():
    section = README.split("**Claude Code**", 1)[1].split("**LibreChat**", 1)[0]
    assert "tools" in section and "50,000 tokens" in section


# --- the pipe example ---------------------------------------------------------------------------


def readme_rank_example() -> tuple[str, dict[str, Any]]:
    block = re.search(r"```console\n\$ (echo .*? --top 3)\n(.*?)```", README, re.S)
    command, printed = block.group(1), block.group(2)
    printed = re.sub(r",\s*\.\.\.", "", printed)  # "...": candidates left out for reading
    return command, orjson.loads(printed)


def test_the_rank_example_has_the_shape_and_counts_of_a_real_run(catalog):
    command, printed = readme_rank_example()
    prompt = re.match(r'echo "(.*?)"', command).group(1)
    assert command == f'echo "{prompt}" | r42 score | r42 rank --mode cost --include-unavailable --top 3'
    scored = r42(["score"], prompt.encode() + b"\n")
    ranked = r42(["rank", "--mode", "cost", "--include-unavailable", "--top", "3"], scored.stdout)
    assert ranked.returncode == 0, ranked.stderr
    real = orjson.loads(ranked.stdout)
    shown = printed["ranking"]["candidates"]
    assert shape(real["score"]) == shape(printed["score"])
    real_shape, printed_shape = shape(real["ranking"]), shape(printed["ranking"])
    real_shape.pop("candidates"), printed_shape.pop("candidates")
    assert real_shape == printed_shape
    assert shape(real["ranking"]["candidates"][0]) == shape(shown[0])
    assert len(real["ranking"]["candidates"]) == 3
    assert real["ranking"]["excluded"] == printed["ranking"]["excluded"]
    assert real["ranking"]["more"] == printed["ranking"]["more"]
    assert [c["model"] for c in real["ranking"]["candidates"][: len(shown)]] == [c["model"] for c in shown]
    # the counts add up to the catalog, and the README's sentence says the same numbers
    excluded = sum(printed["ranking"]["excluded"].values())
    assert excluded + 3 + printed["ranking"]["more"] == len(catalog.models)
    more = printed["ranking"]["more"]
    assert f"{excluded:,} models excluded + 3 shown + {more:,} more = {len(catalog.models):,}" in README


# --- asking with no keys: the built-in model ----------------------------------------------------


def _local_model_installed() -> bool:
    from r42 import localmodel

    return localmodel.installed()


@pytest.mark.skipif(not _local_model_installed(), reason="the built-in local model is not installed")
def test_the_quick_start_question_is_answered_by_the_builtin_model_with_its_note():
    question = re.search(r'echo "(What is the capital of France\?[^"]*)" \| \.venv/bin/r42 ask', README).group(1)
    proc = r42(["ask"], question.encode() + b"\n")
    assert proc.returncode == 0, proc.stderr
    doc = orjson.loads(proc.stdout)
    assert doc["route"]["model"] == "local/smollm2-135m-instruct"
    assert "Paris" in doc["response"]["choices"][0]["message"]["content"]
    notes = [line for line in proc.stderr.decode().splitlines() if line.startswith("r42: note: ")]
    assert len(notes) == 1 and notes[0] == f"r42: note: {doc['route']['note']}"
    pattern = r"`(r42: note: local/smollm2-135m-instruct answered, but .*?)…`"
    written = re.search(pattern, README.replace("\n", " "), re.S).group(1)
    assert re.sub(r"[\d.]+", "N", notes[0]).startswith(re.sub(r"[\d.]+", "N", written))
