"""Click side of the pipe commands: the shared input options and the Terminal in ctx.obj."""

from __future__ import annotations

from typing import Callable

import click

from r42.pipeline import Render, Stage, run_pipe
from r42.terminal import Terminal


def input_options(func: Callable) -> Callable:
    """FILE argument and the input/output format flags every pipe command shares."""
    func = click.option("--json", "force_json", is_flag=True, help="Write JSON even on a terminal.")(func)
    func = click.option(
        "--nl",
        "form",
        flag_value="nl",
        help="Read NDJSON: one request per line (detected when several lines hold objects).",
    )(func)
    func = click.option(
        "--text", "form", flag_value="text", help="Read stdin as one plain-text prompt, even if it looks like JSON."
    )(func)
    func = click.argument("input_file", required=False, type=click.File("rb"), metavar="[FILE]")(func)
    return func


def terminal_of(ctx: click.Context) -> Terminal:
    """The Terminal in ctx.obj (tests pass their own), else the real one."""
    root = ctx.find_root()
    if not isinstance(root.obj, Terminal):
        root.obj = Terminal()
    return root.obj


def run_stage(ctx: click.Context, stage: Stage, render: Render, input_file, form: str | None, force_json: bool) -> None:
    term = terminal_of(ctx)
    raw = input_file.read() if input_file is not None else term.stdin.read()
    code = run_pipe(term, stage, render, raw, form, force_json)
    if code:
        ctx.exit(code)
