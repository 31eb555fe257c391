"""`r42 log`: recent rows of the routing log as NDJSON (never prompts or answers: none are kept)."""

from __future__ import annotations

import click

from r42.cli.pipe import terminal_of
from r42.document import dumps
from r42.store import read_routes
from r42.store.stats import parse_since


@click.command("log")
@click.option(
    "--limit", "-n", type=click.IntRange(min=1), default=20, show_default=True, help="How many of the most recent rows."
)
@click.option("--since", default=None, help="Only rows since then: 7d, 24h, 30m, or a date.")
@click.option("--user", default=None, help="Only this gateway user's rows.")
@click.pass_context
def log_command(ctx: click.Context, limit: int, since: str | None, user: str | None) -> None:
    """Print the most recent routing log rows as NDJSON, oldest first.

    \b
    Example:
      r42 log -n 100 | jq -r 'select(.status != "ok") | .error'
    """
    term = terminal_of(ctx)
    rows = read_routes(since=parse_since(since) if since else None, user=user, limit=limit)
    term.write(b"".join(dumps(row) + b"\n" for row in rows))
