"""Small helpers shared by the tests."""

from __future__ import annotations

from typing import Any

import orjson
from click.testing import CliRunner

from r42.cli import cli


def run(args: list[str], input: str | bytes | None = None, env: dict[str, str] | None = None):
    """Invoke the CLI in-process; returns the click Result (stdout and stderr kept apart)."""
    return CliRunner().invoke(cli, args, input=input, env=env, catch_exceptions=False)


def json_lines(output: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in output.splitlines() if line.strip()]
