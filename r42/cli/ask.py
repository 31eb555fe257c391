"""`r42 ask`: run each prompt on the best ranked model, falling back when one fails.

Piped: the pipe document plus `response` (an OpenAI chat.completion) and `route`; with --stream,
NDJSON events instead. On a terminal: the answer as it arrives, with the model, complexity and
cost on stderr. -i: an interactive chat (r42.cli.interactive).
"""

from __future__ import annotations

import sys
from typing import IO

import click

from r42.cli.answers import Asker, answer_to_terminal, events_of
from r42.cli.complete import complete_models
from r42.cli.options import SettingOption, max_cost_option, explain_option, mode_option, privacy_options, scorer_option
from r42.cli.pipe import input_options, run_stage, terminal_of
from r42.config import load_settings
from r42.document import Item, dumps, error_document, read_items
from r42.errors import R42Error
from r42.pipeline import for_each_item


@click.command()
@input_options
@mode_option
@scorer_option
@click.option(
    "--model",
    "model",
    metavar="PROVIDER/MODEL",
    default=None,
    shell_complete=complete_models,
    help="Ask this model directly (no ranking); an id or alias from the catalog.",
)
@click.option("--local", "force", flag_value="local", help="Only local models.")
@click.option("--cloud", "force", flag_value="cloud", help="Only cloud models.")
@max_cost_option
@click.option(
    "--max-attempts",
    type=click.IntRange(min=1),
    default=None,
    cls=SettingOption,
    envvar="R42_MAX_ATTEMPTS",
    show_envvar=True,
    help="Most models (and retries) to try per prompt [default: 4].",
)
@click.option(
    "--stream", "stream", is_flag=True, help="Piped: write NDJSON events (start, delta, done) as the answer arrives."
)
@click.option("--interactive", "-i", is_flag=True, help="Chat: history, and /info /route /mode /model /clear /exit.")
@privacy_options
@explain_option
@click.pass_context
def ask(
    ctx: click.Context,
    input_file,
    form,
    force_json,
    mode,
    scorer,
    model,
    force,
    max_cost,
    max_attempts,
    stream,
    interactive,
    sensitive_policy,
    explain,
) -> None:
    """Answer each prompt with the best ranked model, falling back when one fails.

    Scores and ranks first when the document has no `score`/`ranking` (a `ranking` already there is
    trusted: edit its candidates with jq). Adds `response` (an OpenAI chat.completion) and `route`
    (model, attempts, usage, cost_usd, latency_ms, ttft_ms).

    \b
    Exit codes: 3 no model fits, 4 no provider configured, 5 every candidate failed, 130 Ctrl-C.
    \b
    Examples:
      echo "What is the capital of France?" | r42 ask
      echo "Write a haiku" | r42 ask --stream --mode cost
      r42 ask -i
    """
    settings = load_settings(
        {"mode": mode, "scorer": scorer, "max_cost": max_cost, "sensitive_policy": sensitive_policy}
    )
    term = terminal_of(ctx)
    try:
        asker = Asker(settings, term, model, force, max_attempts, explain)
        if interactive or (input_file is None and term.stdin_isatty):
            from r42.cli.interactive import chat

            chat(asker)
        elif force_json or not term.stdout_isatty:
            if stream:
                _stream_events(ctx, asker, input_file, form)
            else:
                run_stage(ctx, asker.answer, lambda doc: "", input_file, form, True)
        else:
            _answer_on_terminal(ctx, asker, input_file, form)
    finally:
        _stop_local_model()


# --- on a terminal, and piped with --stream: the stage writes its own output -----------------------


def _items(asker: Asker, input_file: IO[bytes] | None, form: str | None) -> list[Item]:
    raw = input_file.read() if input_file is not None else asker.term.stdin.read()
    return read_items(raw, form or "auto")


def _answer_on_terminal(ctx: click.Context, asker: Asker, input_file: IO[bytes] | None, form: str | None) -> None:
    """Each answer as text on stdout (a blank line between two); a failing line of a batch is a
    note on stderr and the batch goes on."""
    term = asker.term
    items = _items(asker, input_file, form)

    def answer(item: Item) -> None:
        if item is not items[0]:
            term.write(b"\n")
        answer_to_terminal(asker, item.doc or {})

    def failed(item: Item, exc: R42Error) -> None:
        if item.error is not None and item is not items[0]:
            term.write(b"\n")  # the blank line between two answers, as answer() writes it
        if len(items) > 1:
            term.note(f"r42: error: line {item.line}: {exc.one_line()}")

    code = for_each_item(items, answer, failed)
    if code:
        ctx.exit(code)


def _stream_events(ctx: click.Context, asker: Asker, input_file: IO[bytes] | None, form: str | None) -> None:
    """NDJSON events per document; a failing document is an `error` event."""
    term = asker.term

    def emit(event: dict[str, object]) -> None:
        term.write(dumps(event) + b"\n")

    def failed(item: Item, exc: R42Error) -> None:
        emit({"event": "error", **error_document(exc, item.line, item.doc)})

    code = for_each_item(_items(asker, input_file, form), lambda item: events_of(asker, item.doc or {}, emit), failed)
    if code:
        ctx.exit(code)


def _stop_local_model() -> None:
    """Stop the built-in llama.cpp server if this command started it (atexit would, later)."""
    localmodel = sys.modules.get("r42.localmodel")
    if localmodel is not None:
        localmodel.stop_server()
