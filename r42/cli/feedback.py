"""`r42 feedback`: tell rank which answers were good or bad; it learns per user and domain."""

from __future__ import annotations

import json

import click

from r42.cli.pipe import terminal_of


class FeedbackGroup(click.Group):
    """`r42 feedback REQUEST_ID good|bad` and `r42 feedback reset`: a request id is not a subcommand."""

    def resolve_command(self, ctx: click.Context, args: list[str]):  # noqa: ANN201 - click's signature
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return "rate", self.commands["rate"], args
        return super().resolve_command(ctx, args)


@click.group(cls=FeedbackGroup, invoke_without_command=False)
def feedback() -> None:
    """Rate an answer so that rank learns which models serve you well, per domain.

    \b
    Example:
      r42 feedback 3f2a9c1e bad --reason "wrong answer"
      r42 feedback reset
    """


@feedback.command("rate", hidden=True)
@click.argument("request_id")
@click.argument("verdict", type=click.Choice(["good", "bad"]))
@click.option("--reason", help="Why (kept with the verdict, never sent anywhere).")
@click.pass_context
def rate(ctx: click.Context, request_id: str, verdict: str, reason: str | None) -> None:
    """Record VERDICT (good or bad) on the answer to REQUEST_ID (route.request_id, or `r42 log`).

    \b
    Example:
      r42 feedback 3f2a9c1e good
    """
    from r42.store.feedback import add_feedback

    entry = add_feedback(request_id, verdict, reason)
    terminal_of(ctx).write(json.dumps(entry, separators=(",", ":")).encode() + b"\n")


@feedback.command("reset")
@click.option("--user", help="A gateway user's learning (default: your own, the CLI's).")
@click.pass_context
def reset(ctx: click.Context, user: str | None) -> None:
    """Forget what rank learned: feedback and earlier errors stop counting.

    \b
    Example:
      r42 feedback reset --user alice
    """
    from r42.store.feedback import reset_learning

    removed = reset_learning(user)
    terminal_of(ctx).note(
        f"r42: forgot {removed} feedback entries"
        + (f" of user {user}" if user else "")
        + "; earlier errors no longer count"
    )
