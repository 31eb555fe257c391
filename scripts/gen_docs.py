"""Generate the docs that must not drift from the code, from the click command tree:

- completions/: bash, zsh, fish and PowerShell scripts (click's completion protocol: the scripts
  call `r42` back, so model ids, modes, providers and user names complete dynamically);
- man/: r42(1) and one page per subcommand, with a pinned date and the package version;
- README.md: the command reference between the `<!-- commands:start -->` and `<!-- commands:end -->` markers.

    python scripts/gen_docs.py           # write
    python scripts/gen_docs.py --check   # exit 1 when a generated file differs (tests/test_docs.py)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import click
from click.shell_completion import get_completion_class

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from r42 import __version__  # noqa: E402
from r42.cli import cli  # noqa: E402
from r42.errors import ExitCode  # noqa: E402

DOC_DATE = "2026-11-22"  # pinned: bump with a release, not with every run
WIDTH = 100
COMPLETIONS = {"bash": "r42.bash", "zsh": "_r42", "fish": "r42.fish", "powershell": "r42.ps1"}
README_START, README_END = "<!-- commands:start -->", "<!-- commands:end -->"
SETTINGS_START, SETTINGS_END = "<!-- settings:start -->", "<!-- settings:end -->"
SETTING_LINE = re.compile(r"^    (\w+): [^=]+ = (.+?)\s+# (.+)$|^    (\w+): [^=]+ = (.+?)$")
EXIT_MEANINGS = {
    ExitCode.OK: "success",
    ExitCode.ERROR: "an unexpected error",
    ExitCode.USAGE: "bad flags or bad input",
    ExitCode.NO_CANDIDATE: "no model satisfies the prompt's needs and the constraints",
    ExitCode.NO_CREDENTIALS: "no provider has a credential and no local model is available",
    ExitCode.ALL_FAILED: "every candidate was tried and failed",
    ExitCode.CONFIG: "a broken config, catalog or store file",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}
COMMON_ENV = {
    "R42_HOME": "r42's home directory (default $XDG_CONFIG_HOME/r42, else ~/.config/r42), created 0700",
    "R42_DEBUG": "show a traceback instead of the one-line error",
    "NO_COLOR": "no colour on a terminal",
}
FILES = {
    "$R42_HOME/config.toml": "settings (below flags and R42_* variables)",
    "$R42_HOME/catalog.yaml": "your own catalog entries, merged over the shipped catalog",
    "$R42_HOME/r42.db": (
        "the store: gateway keys, encrypted provider credentials and webhook secrets, the routing log, the audit log"
    ),
    "$R42_HOME/master.key": "the key that encrypts stored credentials (mode 0600), unless R42_MASTER_KEY is set",
}


def commands():
    """(path, command, context) for `r42` and every subcommand, depth first, in name order."""
    # The root's context_settings (-h as well as --help) as the real CLI applies them: click caches
    # each command's help option the first time a context asks for it.
    root = click.Context(cli, info_name="r42", max_content_width=WIDTH, terminal_width=WIDTH, **cli.context_settings)
    yield from _group(cli, ("r42",), root, root)


def _group(group: click.Group, path: tuple[str, ...], parent: click.Context, ctx: click.Context | None = None):
    ctx = ctx or click.Context(group, info_name=path[-1], parent=parent, max_content_width=WIDTH, terminal_width=WIDTH)
    yield path, group, ctx
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        sub = click.Context(command, info_name=name, parent=ctx, max_content_width=WIDTH, terminal_width=WIDTH)
        if isinstance(command, click.Group):
            yield from _group(command, (*path, name), ctx)
        else:
            yield (*path, name), command, sub


def completion_scripts() -> dict[Path, str]:
    out = {}
    for shell, filename in COMPLETIONS.items():
        source = get_completion_class(shell)(cli, {}, "r42", "_R42_COMPLETE").source()
        out[ROOT / "completions" / filename] = source.rstrip() + "\n"
    return out


def roff(text: str) -> str:
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(("\\&" + line) if line.startswith((".", "'")) else line for line in text.splitlines())


def _description_and_example(command: click.Command) -> tuple[str, str]:
    help_text = click.unstyle(command.help or "").replace("\b\n", "").replace("\b", "")
    parts = re.split(r"\n\s*Examples?:\s*\n", help_text, maxsplit=1)
    description = "\n".join(line.strip() for line in parts[0].strip().splitlines())
    example = "\n".join(line.strip() for line in parts[1].strip().splitlines()) if len(parts) > 1 else ""
    return description, example


def man_page(path: tuple[str, ...], command: click.Command, ctx: click.Context) -> str:
    name = "-".join(path)
    description, example = _description_and_example(command)
    usage = " ".join(command.collect_usage_pieces(ctx))
    lines = [
        f'.TH {name.upper()} 1 "{DOC_DATE}" "r42 {__version__}" "r42 manual"',
        ".SH NAME",
        f"{roff(name)} \\- {roff(command.get_short_help_str(limit=200))}",
        ".SH SYNOPSIS",
        f".B {roff(' '.join(path))}",
        roff(usage),
        ".SH DESCRIPTION",
        roff(description).replace("\n\n", "\n.PP\n"),
    ]
    options = [p.get_help_record(ctx) for p in command.get_params(ctx)]
    options = [o for o in options if o]
    if options:
        lines.append(".SH OPTIONS")
        for flags, help_text in options:
            lines += [".TP", f".B {roff(flags)}", roff(help_text)]
    if isinstance(command, click.Group):
        lines.append(".SH COMMANDS")
        for sub in command.list_commands(ctx):
            sub_command = command.get_command(ctx, sub)
            lines += [".TP", f".B {roff(sub)}", roff(sub_command.get_short_help_str(limit=200))]
    env = {
        p.envvar: (p.help or "").split(".")[0]
        for p in command.get_params(ctx)
        if isinstance(getattr(p, "envvar", None), str)
    }
    lines.append(".SH ENVIRONMENT")
    for var, text in {**env, **COMMON_ENV}.items():
        lines += [".TP", f".B {roff(var)}", roff(text)]
    lines.append(".SH EXIT STATUS")
    for code, meaning in EXIT_MEANINGS.items():
        lines += [".TP", f".B {int(code)}", roff(meaning)]
    lines.append(".SH FILES")
    for file, meaning in FILES.items():
        lines += [".TP", f".I {roff(file)}", roff(meaning)]
    if example:
        lines += [".SH EXAMPLES", ".nf", roff(example), ".fi"]
    see_also = sorted({"r42"} | {"-".join(p) for p, _, _ in commands() if len(p) == 2} - {name})
    lines += [".SH SEE ALSO", ", ".join(f"\\fB{roff(s)}\\fR(1)" for s in see_also)]
    return "\n".join(lines) + "\n"


def man_pages() -> dict[Path, str]:
    return {ROOT / "man" / f"{'-'.join(path)}.1": man_page(path, command, ctx) for path, command, ctx in commands()}


def readme_reference() -> str:
    blocks = []
    for path, command, ctx in commands():
        blocks.append(f"### `{' '.join(path)}`\n\n```text\n{command.get_help(ctx).rstrip()}\n```\n")
    return "\n".join(blocks)


def _setting_lines(block: str):
    """The lines of the Settings block, a field that `ruff format` wrapped over several lines
    (`= (\n        None  # comment\n    )` or `field(\n        ...\n    )  # comment`) joined back into one."""
    wrapped: list[str] = []
    for line in block.splitlines():
        if not wrapped and line.partition("  # ")[0].count("(") <= line.partition("  # ")[0].count(")"):
            yield line
            continue
        wrapped.append(line)
        codes = [part.partition("  # ")[0] for part in wrapped]
        if sum(code.count("(") - code.count(")") for code in codes) > 0:
            continue
        code = codes[0].rstrip()
        for piece in (code.strip() for code in codes[1:]):
            code += (" " if code.endswith(",") else "") + piece
        code = re.sub(r" = \((.*)\)$", r" = \1", code)
        comments = [comment for part in wrapped if (comment := part.partition("  # ")[2])]
        yield code + ("  # " + " ".join(comments) if comments else "")
        wrapped = []


def settings_table() -> str:
    """Every field of r42/config.py's Settings with its variable, default and comment."""
    rows = ["| setting | environment | default | meaning |", "| --- | --- | --- | --- |"]
    source = (ROOT / "r42" / "config.py").read_text(encoding="utf-8")
    block = source[source.index("class Settings:") : source.index("\n    origin: ", source.index("class Settings:"))]
    for line in _setting_lines(block):
        match = SETTING_LINE.match(line)
        if match:
            name, default, meaning = (
                (match.group(1), match.group(2), match.group(3))
                if match.group(1)
                else (match.group(4), match.group(5), "")
            )
            rows.append(f"| `{name}` | `R42_{name.upper()}` | `{default}` | {meaning.replace('|', '/')} |")
    return "\n".join(rows)


def _replace_block(text: str, start_marker: str, end_marker: str, body: str) -> str:
    start, end = text.index(start_marker) + len(start_marker), text.index(end_marker)
    return text[:start] + "\n\n" + body + "\n" + text[end:]


def readme_with_reference() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    readme = _replace_block(readme, SETTINGS_START, SETTINGS_END, settings_table() + "\n")
    return _replace_block(readme, README_START, README_END, readme_reference())


def generated() -> dict[Path, str]:
    return {**completion_scripts(), **man_pages(), ROOT / "README.md": readme_with_reference()}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    stale = []
    expected = generated()
    for path, text in expected.items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            stale.append(path)
            if not args.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    orphans = [p for folder in ("man", "completions") for p in (ROOT / folder).glob("*") if p not in expected]
    for path in orphans:
        if not args.check:
            path.unlink()
    changed = stale + orphans
    for path in changed:
        print(f"{'stale' if args.check else 'wrote'}: {path.relative_to(ROOT)}", file=sys.stderr)
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
