"""Shared plumbing of the pipe commands: input options, the per-document loop, output."""

from __future__ import annotations

from typing import Any, Callable

import click

from r42.document import Item, dumps, error_document, read_items
from r42.errors import R42Error
from r42.terminal import Terminal

Stage = Callable[[dict[str, Any]], dict[str, Any]]
Render = Callable[[dict[str, Any]], str]


def input_options(func: Callable) -> Callable:
    """FILE argument and the input/output format flags every pipe command shares."""
    func = click.option("--json", "force_json", is_flag=True, help="Write JSON even on a terminal.")(func)
    func = click.option(
        "--nl", "form", flag_value="nl", help="Read NDJSON: one request per line (detected when several lines hold objects)."
    )(func)
    func = click.option("--text", "form", flag_value="text", help="Read stdin as one plain-text prompt, even if it looks like JSON.")(func)
    func = click.argument("input_file", required=False, type=click.File("rb"), metavar="[FILE]")(func)
    return func


def terminal_of(ctx: click.Context) -> Terminal:
    """The Terminal in ctx.obj (tests pass their own), else the real one."""
    root = ctx.find_root()
    if not isinstance(root.obj, Terminal):
        root.obj = Terminal()
    return root.obj


def run_stage(ctx: click.Context, stage: Stage, render: Render, input_file, form: str | None, force_json: bool) -> None:
    """Read the input, run `stage` on each document, write each result as soon as it is ready.

    One document: its error is raised (one line on stderr, exit code). A batch: a failing line
    becomes an error object on that line and the batch goes on; the exit code is that of the
    first failure. Error objects from an earlier stage pass through unchanged.
    """
    term = terminal_of(ctx)
    raw = input_file.read() if input_file is not None else term.stdin.read()
    items = read_items(raw, form or "auto")
    as_json = force_json or not term.stdout_isatty
    if len(items) == 1 and items[0].doc is not None and "error" not in items[0].doc:
        _write(term, stage(items[0].doc), render, as_json)
        return
    first_failure: R42Error | None = None
    for item in items:
        out, failure = _run_item(stage, item)
        first_failure = first_failure or failure
        _write(term, out, render, as_json)
    if first_failure is not None:
        ctx.exit(int(first_failure.exit_code))


def _run_item(stage: Stage, item: Item) -> tuple[dict[str, Any], R42Error | None]:
    if item.error is not None:
        return error_document(item.error, item.line), item.error
    assert item.doc is not None
    if "error" in item.doc and "messages" not in item.doc and "prompt" not in item.doc:
        return item.doc, None  # an earlier stage's error line: keep it in its place
    try:
        return stage(item.doc), None
    except R42Error as exc:
        return error_document(exc, item.line, item.doc), exc


def _write(term: Terminal, doc: dict[str, Any], render: Render, as_json: bool) -> None:
    if as_json or "error" in doc and "line" in doc:
        term.write(dumps(doc) + b"\n")
    else:
        term.write(render(doc).encode() + b"\n")
