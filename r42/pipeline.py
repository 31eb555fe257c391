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


def is_error_line(doc: dict[str, Any]) -> bool:
    return "error" in doc and "messages" not in doc and "prompt" not in doc


class EarlierFailure:
    """An error line an earlier stage wrote: passed on unchanged, and it still fails the batch."""

    def __init__(self, doc: dict[str, Any]) -> None:
        error = doc.get("error") if isinstance(doc.get("error"), dict) else {}
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
