"""The `r42` executable.

`r42 score` with only the plain flags runs here without importing click (~30 ms of imports), so
`echo hi | r42 score` starts almost as fast as Python itself. Every other command line, `--help`
included, goes to the click CLI, which accepts the same flags; tests/test_entry.py checks that
both paths give the same bytes and exit codes.
"""

from __future__ import annotations

import os
import sys

FAST_FLAGS = {"--json": ("force_json", True), "--nl": ("form", "nl"), "--text": ("form", "text")}


def parse_fast_score(args: list[str]) -> dict | None:
    """Options for a plain `r42 score ...`, or None when click should parse the line."""
    options: dict = {"force_json": False, "form": None, "scorer": None, "file": None}
    index = 0
    while index < len(args):
        arg = args[index]
        if arg in FAST_FLAGS:
            key, value = FAST_FLAGS[arg]
            options[key] = value
        elif arg == "--scorer" and index + 1 < len(args):
            options["scorer"] = args[index + 1]
            index += 1
        elif arg.startswith("--scorer="):
            options["scorer"] = arg.split("=", 1)[1]
        elif (arg == "-" or not arg.startswith("-")) and options["file"] is None:
            options["file"] = arg
        else:
            return None
        index += 1
    return options


def run_fast_score(options: dict) -> int:
    from r42.config import load_settings
    from r42.pipeline import run_pipe
    from r42.scoring import score_document
    from r42.terminal import Terminal
    from r42.views import render_score

    scorer = options["scorer"] or os.environ.get("R42_SCORER")
    settings = load_settings({"scorer": scorer})
    term = Terminal()
    if options["file"] in (None, "-"):
        raw = term.stdin.read()
    else:
        with open(options["file"], "rb") as handle:
            raw = handle.read()

    def stage(doc: dict) -> dict:
        return {**doc, "score": score_document(doc, settings)}

    return run_pipe(term, stage, render_score, raw, options["form"], options["force_json"])


def main() -> None:
    args = sys.argv[1:]
    options = parse_fast_score(args[1:]) if args[:1] == ["score"] else None
    if options is None:
        from r42.cli import main as click_main

        click_main()
        return
    from r42.errors import ExitCode, R42Error

    try:
        code = run_fast_score(options)
    except R42Error as exc:
        if os.environ.get("R42_DEBUG"):
            raise
        print(exc.message_line(), file=sys.stderr)
        code = int(exc.exit_code)
    except OSError as exc:  # an unreadable FILE argument
        if isinstance(exc, BrokenPipeError):
            sys.stderr.close()
            code = 0
        else:
            print(f"r42: error: {exc.filename}: {exc.strerror}", file=sys.stderr)
            code = int(ExitCode.USAGE)
    except KeyboardInterrupt:
        print("r42: error: interrupted", file=sys.stderr)
        code = int(ExitCode.INTERRUPTED)
    sys.exit(code)
