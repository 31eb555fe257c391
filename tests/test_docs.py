"""Generated docs (README command reference, completions, man pages) match the code, and every
command has help text and an example."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
gen = runpy.run_path(str(ROOT / "scripts" / "gen_docs.py"), run_name="gen_docs")


def test_generated_files_are_up_to_date():
    import difflib

    stale = {
        path: text
        for path, text in gen["generated"]().items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    }
    if stale:
        path, text = next(iter(stale.items()))
        current = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        diff = "\n".join(list(difflib.unified_diff(current, text.splitlines(), lineterm=""))[:20])
        raise AssertionError(f"run `python scripts/gen_docs.py`: {[str(p.relative_to(ROOT)) for p in stale]}\n{diff}")


def test_every_command_has_help_and_an_example():
    for path, command, _ in gen["commands"]():
        assert command.help and command.help.strip(), path
        if not isinstance(command, click.Group):
            assert "Example" in command.help, f"{' '.join(path)} has no example in its help"


def test_a_man_page_per_command_with_the_sections():
    for path, _, _ in gen["commands"]():
        page = (ROOT / "man" / f"{'-'.join(path)}.1").read_text()
        for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "ENVIRONMENT", "EXIT STATUS", "FILES"):
            assert f".SH {section}" in page, (path, section)


def test_dynamic_completion_of_modes():
    env = {
        "_R42_COMPLETE": "bash_complete",
        "COMP_WORDS": "r42 rank --mode co",
        "COMP_CWORD": "3",
        "PATH": "/usr/bin:/bin",
    }
    proc = subprocess.run([sys.executable, "-m", "r42"], env=env, capture_output=True, text=True, check=False)
    assert "plain,cost" in proc.stdout and "plain,coding" in proc.stdout


def test_dynamic_completion_of_model_ids_and_users(isolated_env):
    from tests.helpers import run

    assert run(["keys", "create", "alice"]).exit_code == 0
    env = {"R42_HOME": str(isolated_env), "PATH": "/usr/bin:/bin"}
    models = subprocess.run(
        [sys.executable, "-m", "r42"],
        env={
            **env,
            "_R42_COMPLETE": "bash_complete",
            "COMP_WORDS": "r42 ask --model anthropic/claude-son",
            "COMP_CWORD": "3",
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert "plain,anthropic/claude-sonnet-4-5" in models.stdout
    users = subprocess.run(
        [sys.executable, "-m", "r42"],
        env={**env, "_R42_COMPLETE": "bash_complete", "COMP_WORDS": "r42 keys rotate al", "COMP_CWORD": "3"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert "plain,alice" in users.stdout
