"""Run one stage over the pipe input: the loop shared by the click commands and the fast path.

One document: its error is raised (one line on stderr, its exit code). A batch: a failing line
becomes an error object on that line and the batch goes on; the exit code is that of the first
failure. Error objects from an earlier stage pass through unchanged, in their place, and count as
failures too: `r42 score < bad.ndjson | r42 ask` does not exit 0 when lines failed.
"""

from __future__ import annotations

from typing import Any, Callable

from r42.document import Item, dumps, error_document, read_items
from r42.errors import R42Error
from r42.terminal import Terminal

Stage = Callable[[dict[str, Any]], dict[str, Any]]
Render = Callable[[dict[str, Any]], str]


def run_pipe(term: Terminal, stage: Stage, render: Render, raw: bytes, form: str | None, force_json: bool) -> int:
    """Returns the exit code for a batch (0 when every line worked); raises for one document."""
    items = read_items(raw, form or "auto")
    as_json = force_json or not term.stdout_isatty
    if len(items) == 1 and items[0].doc is not None and not is_error_line(items[0].doc):
        write_document(term, stage(items[0].doc), render, as_json)
        return 0
    failures: list[tuple[int, R42Error | EarlierFailure]] = []
    for item in items:
        out, failure = _run_item(stage, item)
        if failure is not None:
            failures.append((item.line, failure))
        write_document(term, out, render, as_json)
    if not failures:
        return 0
    line, first = failures[0]
    term.note(f"r42: error: {len(failures)} of {len(items)} lines failed; line {line}: {first.one_line()}")
    return int(first.exit_code)


def for_each_item(items: list[Item], handle: Callable[[Item], object], failed: Callable[[Item, R42Error], None]) -> int:
    """run_pipe's walk for stages that write their own output (`r42 ask` on a terminal and with
    --stream): `handle` each line; a failing line goes to `failed` and the batch goes on, one
    document's error is raised after `failed`. The exit code of the first failure, 0 when none."""
    first: R42Error | None = None
    for item in items:
        try:
            if item.error is not None:
                raise item.error
            handle(item)
        except R42Error as exc:
            failed(item, exc)
            if len(items) == 1:
                raise
            first = first or exc
    return 0 if first is None else int(first.exit_code)


def is_error_line(doc: dict[str, Any]) -> bool:
    return "error" in doc and "messages" not in doc and "prompt" not in doc


class EarlierFailure:
    """An error line an earlier stage wrote: passed on unchanged, and it still fails the batch."""

    def __init__(self, doc: dict[str, Any]) -> None:
        raw = doc.get("error")
        error: dict[str, Any] = raw if isinstance(raw, dict) else {}
        code = error.get("code")
        self.exit_code = code if isinstance(code, int) and 0 < code < 256 else 1
        self.message = str(error.get("message") or "failed")

    def one_line(self) -> str:
        return f"failed in an earlier stage: {' '.join(self.message.split())}"


def _run_item(stage: Stage, item: Item) -> tuple[dict[str, Any], R42Error | EarlierFailure | None]:
    if item.error is not None:
        return error_document(item.error, item.line), item.error
    assert item.doc is not None
    if is_error_line(item.doc):
        return item.doc, EarlierFailure(item.doc)
    try:
        return stage(item.doc), None
    except R42Error as exc:
        return error_document(exc, item.line, item.doc), exc


def write_document(term: Terminal, doc: dict[str, Any], render: Render, as_json: bool) -> None:
    if as_json or is_error_line(doc):
        term.write(dumps(doc) + b"\n")
    else:
        term.write(render(doc).encode() + b"\n")
