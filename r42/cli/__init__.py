"""The `r42` command: a click group whose subcommands load only when called.

Lazy loading keeps `echo hi | r42 score` close to Python's own start-up: a subcommand's module
(and the SDKs it needs) is imported only when that subcommand runs.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from r42 import __version__
from r42.errors import EmptyInputError, ExitCode, R42Error

# name -> "module:attribute". Add a command here and in its own module under r42/cli/.
COMMANDS: dict[str, str] = {
    "score": "r42.cli.score:score",
    "rank": "r42.cli.rank:rank",
    "ask": "r42.cli.ask:ask",
    "keys": "r42.cli.keys:keys",
    "hooks": "r42.cli.hooks:hooks",
    "stats": "r42.cli.stats:stats",
    "log": "r42.cli.log:log_command",
    "serve": "r42.cli.serve:serve",
    "catalog": "r42.cli.catalog:catalog",
    "feedback": "r42.cli.feedback:feedback",
    "eval": "r42.cli.eval:eval_command",
    "store": "r42.cli.store:store",
}


class CliError(click.ClickException):
    """Carries an R42Error (or an interrupt) to click's exit handling with our format and code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file=None) -> None:  # noqa: ANN001 - click's signature
        click.echo(f"r42: error: {self.message}", err=True)  # same format as R42Error.message_line


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        return getattr(importlib.import_module(module_name), attribute)

    def make_context(self, info_name, args, parent=None, **extra):  # noqa: ANN001, ANN201 - click's signature
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:  # a bad flag of `r42` itself
            raise usage_error(exc) from None

    def invoke(self, ctx: click.Context):  # noqa: ANN201
        try:
            return super().invoke(ctx)
        except click.exceptions.NoArgsIsHelpError:
            raise  # a group run bare (`r42 keys`): its help, as click shows it
        except click.UsageError as exc:  # a bad flag, argument or command: one line, not click's usage block
            raise usage_error(exc) from None
        except R42Error as exc:
            if os.environ.get("R42_DEBUG"):
                raise
            if isinstance(exc, EmptyInputError) and ctx.invoked_subcommand:
                exc = exc.for_command(f"r42 {ctx.invoked_subcommand}")
            raise CliError(exc.one_line(), int(exc.exit_code)) from None
        except KeyboardInterrupt:
            raise CliError("interrupted", int(ExitCode.INTERRUPTED)) from None
        except BrokenPipeError:
            # The reader went away (e.g. `| head`): stop quietly, as Unix tools do.
            sys.stderr.close()
            raise click.exceptions.Exit(0) from None


def usage_error(exc: click.UsageError) -> CliError:
    """`r42: error: no such option: --bogus (try r42 score --help)`, exit 2."""
    text = " ".join(exc.format_message().split()).rstrip(".")
    text = text[:1].lower() + text[1:]
    path = exc.ctx.command_path.split()[1:] if exc.ctx is not None else []  # the root is r42 whatever its prog_name
    command = " ".join(["r42", *path])
    return CliError(f"{text} (try {command} --help)", int(ExitCode.USAGE))


def print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """--version: the version, the catalog's date and size, the scorer and the home directory."""
    if not value or ctx.resilient_parsing:
        return
    from r42.config import home_dir, load_settings
    from r42.scoring import DEFAULT_SCORER

    settings = load_settings()
    try:
        from r42.catalog import load_catalog

        catalog = load_catalog(settings.catalog)
        about = f"catalog {catalog.generated}, {len(catalog.models)} models ({', '.join(catalog.files)})"
    except R42Error as exc:
        about = f"catalog unreadable: {exc.one_line()}"
    scorer = DEFAULT_SCORER if settings.scorer == "default" else settings.scorer
    click.echo(f"r42 {__version__}\n{about}\nscorer {scorer}\nhome {home_dir()}")
    ctx.exit()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-V",
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=print_version,
    help="Show the version, catalog, scorer and home directory, and exit.",
)
def cli() -> None:
    """Route each prompt to the model that should answer it.

    \b
    Each command reads plain text, one JSON object or NDJSON on stdin and writes JSON on stdout:
      echo "prompt" | r42 score | r42 rank --mode cost | r42 ask
    """


def main() -> None:
    cli(prog_name="r42")
